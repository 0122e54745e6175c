"""The router and the shared sidebar: every page inside the navigation; the data folder shown, not set."""

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lib.device import page_threads, resolve_device, train_threads
from lib.settings import settings

ROOT = Path(__file__).resolve().parents[1]


def test_sidebar_shows_the_device_and_the_operators_data_folder(app_env):
    at = AppTest.from_file(str(ROOT / "app_pages" / "runs.py"), default_timeout=60)
    at.run()
    assert not at.exception
    sidebar = " ".join(md.value for md in at.sidebar.markdown)
    assert "CPU" in sidebar or "GPU" in sidebar or "MPS" in sidebar  # the compute device
    if resolve_device("auto").type == "cpu":  # how the cores are shared between training and the pages
        assert f"CPU: {train_threads()} training thread(s), {page_threads()} for the pages" in sidebar
    # The pages' own torch work keeps to its share, set on every page run: torch's thread count is per thread
    # (OpenMP), and each script run is a thread of its own.
    from ui.common import keep_page_threads

    torch.set_num_threads(page_threads() + 1)
    keep_page_threads()
    assert torch.get_num_threads() == page_threads()
    # The data folder is the operator's (AUDIOWB_DATA_DIR): shown, never set from a page.
    assert str(settings().data_dir) in sidebar
    assert not at.sidebar.text_input and not at.sidebar.button


# A widget each page shows (None: the page's title is enough).
PAGE_WIDGETS = {"home": None, "dataset": None, "transforms": None, "train": None, "evaluate": None, "runs": None,
                "inference": lambda at: at.file_uploader(key="inference_files"),
                "record": lambda at: at.audio_input(key="recorder")}


@pytest.mark.parametrize("page", list(PAGE_WIDGETS))
def test_every_page_inside_the_router(app_env, page):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    assert at.title
    if PAGE_WIDGETS[page] is not None:
        assert PAGE_WIDGETS[page](at)


# ------------------------------------------------------------------------------------- per-session state
@pytest.fixture
def newer_run(app_env):
    """A copy of the default run that is newer than it (as a student's experiment would be); removed after."""
    import json
    import shutil

    path = Path(app_env["runs_dir"]) / "newer-experiment"
    shutil.copytree(app_env["run_path"], path)
    config = json.loads((path / "config.json").read_text())
    config["created"] = "2099-01-01T00:00:00"
    (path / "config.json").write_text(json.dumps(config))
    yield path.name
    shutil.rmtree(path, ignore_errors=True)


def _sidebar_text(at: AppTest) -> str:
    return " ".join(md.value for md in at.sidebar.markdown)


def test_a_new_session_starts_on_the_default_run_not_the_newest(newer_run):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["run_id"] == "default"
    assert "**default**" in _sidebar_text(at) and newer_run not in _sidebar_text(at)


def test_one_sessions_choice_never_changes_another(newer_run):
    first = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    second = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    first.run(), second.run()
    first.switch_page("app_pages/inference.py").run()
    first.selectbox(key="inference_run").set_value(newer_run).run()  # the first session picks the newer run
    first.session_state["dataset_source"] = {"kind": "folder", "path": "/somewhere/else"}
    first.session_state["feature_config"] = {**first.session_state["feature_config"], "n_mels": 32}
    assert not first.exception, first.exception
    assert first.session_state["run_id"] == newer_run
    second.switch_page("app_pages/inference.py").run()
    assert not second.exception, second.exception
    assert second.selectbox(key="inference_run").value == "default"
    assert second.session_state["run_id"] == "default"
    assert second.session_state["dataset_source"]["kind"] == "builtin"
    assert second.session_state["feature_config"]["n_mels"] != 32


def test_a_deleted_active_run_falls_back_to_the_default(newer_run):
    import shutil

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.session_state["run_id"] = newer_run
    at.run()
    assert f"**{newer_run}**" in _sidebar_text(at)
    from lib.settings import settings

    shutil.rmtree(settings().runs_dir / newer_run)  # another session deletes it on the Runs page
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["run_id"] == "default" and "**default**" in _sidebar_text(at)


# ------------------------------------------------------------------------------------------- page edge
def test_an_unexpected_error_in_a_page_is_an_st_error_and_a_logged_traceback(app_env, monkeypatch):
    import logging

    import lib.plots
    from ui.guard import LOGGER

    def broken(*args, **kwargs):
        raise RuntimeError("root:x:0:0:secret first line")

    monkeypatch.setattr(lib.plots, "fig_pipeline", broken)  # the home page draws it first
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    LOGGER.addHandler(handler)
    try:
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
        at.run()
    finally:
        LOGGER.removeHandler(handler)
    assert not at.exception, at.exception
    [error] = at.error
    assert "Something went wrong on this page (RuntimeError)" in error.value and "Reload the page" in error.value
    assert "secret" not in error.value  # the exception's message is not shown: it may quote a file
    [record] = [r for r in records if r.exc_info]
    assert isinstance(record.exc_info[1], RuntimeError)
    assert record.getMessage().split("reference ")[1].rstrip(")") in error.value  # the reference to look up


def test_streamlit_control_flow_passes_the_page_edge(app_env, monkeypatch):
    import lib.plots

    draws = {"n": 0}
    real = lib.plots.fig_pipeline

    def rerun_once(*args, **kwargs):
        draws["n"] += 1
        if draws["n"] == 1:
            st.rerun()
        return real(*args, **kwargs)

    import streamlit as st

    monkeypatch.setattr(lib.plots, "fig_pipeline", rerun_once)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert draws["n"] == 2 and at.get("plotly_chart")  # the rerun happened and the page then drew everything

    monkeypatch.setattr(lib.plots, "fig_pipeline", lambda *a, **k: st.stop())
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert not at.get("plotly_chart") and not at.metric  # stopped where st.stop was called

    monkeypatch.setattr(lib.plots, "fig_pipeline", lambda *a, **k: st.switch_page("app_pages/runs.py"))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.title[0].value == "Runs"


# --------------------------------------------------------------------------------------------- password
def test_no_password_set_means_no_login(app_env, monkeypatch):
    monkeypatch.delenv("AUDIOWB_PASSWORD", raising=False)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    assert not at.exception and not [w for w in at.text_input if w.key == "password_typed"]
    assert at.title[0].value == "Audio classification workbench" and at.get("plotly_chart")


@pytest.mark.parametrize("where", ["environment", "secrets"])
def test_the_class_password_is_asked_before_any_page(app_env, monkeypatch, where):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    if where == "environment":
        monkeypatch.setenv("AUDIOWB_PASSWORD", "open sesame")
    else:
        monkeypatch.delenv("AUDIOWB_PASSWORD", raising=False)
        at.secrets["password"] = "open sesame"
    at.run()
    assert not at.exception, at.exception
    assert at.text_input(key="password_typed").value == "" and not at.get("plotly_chart") and not at.sidebar.markdown
    at.text_input(key="password_typed").set_value("open sesam").run()
    assert "not right" in at.error[0].value and not at.get("plotly_chart")
    assert at.text_input(key="password_typed").value == ""  # the typed text is not kept in the session
    at.text_input(key="password_typed").set_value("open sesame").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert at.get("plotly_chart") and not [w for w in at.text_input if w.key == "password_typed"]  # the home page
    at.switch_page("app_pages/runs.py").run()
    assert at.title[0].value == "Runs"
