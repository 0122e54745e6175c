"""Page tests for the "Real dataset" source of app_pages/dataset.py (AppTest): the card before any download,
downloading fixture archives from a loopback server, dead URLs, an existing copy and a manual archive.
No internet: the catalog URLs are overridden with AUDIOWB_URL_<KEY> / AUDIOWB_SHA256_<KEY>."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.settings import settings
from tests.conftest import metric_value
from tests.fixtures_datasets import LoopbackServer, build_archives, closed_port_url, make_yesno, sha256_of

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("allowed_tmp")  # the tests' folders are allowed folders (lib.paths)
PAGE = str(ROOT / "app_pages" / "dataset.py")


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    """Fixture archives of every catalog archive, named as the real ones."""
    base = tmp_path_factory.mktemp("archives")
    return build_archives(base / "work", base / "www")


@pytest.fixture
def server(archives):
    with LoopbackServer(next(iter(archives.values())).parent) as s:
        yield s


@pytest.fixture
def data_dir(tmp_path, operator_folders) -> Path:
    """A fresh data folder per test (downloads, extracted sets and the disk cache go there); the built-in set the
    app opens on is the session's (linked, not generated again)."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "builtin").symlink_to(settings().builtin_cache, target_is_directory=True)
    operator_folders(data_dir=folder)
    return folder


@pytest.fixture
def serve(server, archives, monkeypatch):
    """Point dataset ``key``'s URL (and checksum) at its fixture archive on the loopback server."""
    def point(key: str) -> str:
        archive = archives[key]
        url = server.url(archive.name)
        monkeypatch.setenv(f"AUDIOWB_URL_{key.upper()}", url)
        monkeypatch.setenv(f"AUDIOWB_SHA256_{key.upper()}", sha256_of(archive))
        return url
    return point


@pytest.fixture
def at(app_env, data_dir) -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=90)
    app.run()
    assert not app.exception
    return app


def _choose(at: AppTest, key: str) -> AppTest:
    at.segmented_control(key="ds_kind").set_value("catalog").run()
    at.selectbox(key="ds_cat_key").set_value(key).run()
    assert not at.exception
    return at


def _class_counts(at: AppTest) -> dict[str, int]:
    spec = next(s for s in (json.loads(el.proto.spec) for el in at.get("plotly_chart"))
                if s["data"][0]["type"] == "bar")
    return dict(zip(spec["data"][0]["x"], spec["data"][0]["y"]))


def _text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [c.value for c in at.code])


def test_card_then_download_yesno(at, serve, server):
    url = serve("yesno")
    _choose(at, "yesno")
    text = _text(at)
    assert "CC BY 4.0 (OpenSLR SLR1)" in text                 # licence
    assert "YESNO corpus, OpenSLR resource SLR1" in text      # citation, in a code block
    assert any("OpenSLR resource SLR1" in c.value for c in at.code)
    assert url in text                                        # the (overridden) source URL
    assert not server.gets("waves_yesno.tar.gz")              # nothing downloaded yet
    assert metric_value(at, "Clips") == "80"                       # the built-in set is still active

    at.button(key="ds_cat_download").click().run()
    assert not at.exception
    assert not at.error
    assert len(server.gets("waves_yesno.tar.gz")) == 1
    source = at.session_state["dataset_source"]
    assert source["kind"] == "catalog" and source["key"] == "yesno"
    assert source["clip_seconds"] == 6.0
    assert Path(source["root"]).name == "waves_yesno"
    assert metric_value(at, "Clips") == "8"
    assert metric_value(at, "Classes") == "2"
    assert _class_counts(at) == {"no": 4, "yes": 4}
    assert any("YESNO" in m.value for m in at.sidebar.markdown)
    assert len(at.get("audio")) >= 2

    # Already on disk now: an Open button instead of a download, and no second request.
    at.button(key="ds_cat_open").click().run()
    assert not at.exception
    assert len(server.gets("waves_yesno.tar.gz")) == 1
    assert at.session_state["dataset_source"]["key"] == "yesno"


def test_download_esc50(at, serve):
    serve("esc50")
    _choose(at, "esc50")
    assert "CC BY-NC 3.0" in _text(at)
    at.button(key="ds_cat_download").click().run()
    assert not at.exception
    assert not at.error
    assert at.session_state["dataset_source"]["kind"] == "catalog"
    assert metric_value(at, "Clips") == "40"
    assert metric_value(at, "Classes") == "4"
    assert _class_counts(at) == {"dog": 10, "rooster": 10, "pig": 10, "rain": 10}


def test_dead_url_shows_error_naming_it(at, monkeypatch):
    url = closed_port_url("waves_yesno.tar.gz")
    monkeypatch.setenv("AUDIOWB_URL_YESNO", url)
    _choose(at, "yesno")
    at.button(key="ds_cat_download").click().run()
    assert not at.exception
    assert any(url in e.value for e in at.error)
    # what to do in the app, not command-line flags or environment variables
    message = next(e.value for e in at.error if url in e.value)
    assert "Use a downloaded archive" in message and "I already have it" in message
    assert "--" not in message and "AUDIOWB_" not in message and "local_archive" not in message
    assert at.session_state["dataset_source"]["kind"] == "builtin"  # the previous set stays active
    assert metric_value(at, "Clips") == "80"


def test_existing_folder_wrong_then_right(at, tmp_path):
    _choose(at, "yesno")
    (tmp_path / "empty").mkdir()
    at.text_input(key="ds_cat_existing").set_value(str(tmp_path / "empty"))
    at.button(key="ds_cat_use_existing").click().run()
    assert not at.exception
    assert any("does not hold YESNO" in e.value for e in at.error)
    assert at.session_state["dataset_source"]["kind"] == "builtin"

    copy = make_yesno(tmp_path / "mine")
    at.text_input(key="ds_cat_existing").set_value(str(tmp_path / "mine"))
    at.button(key="ds_cat_use_existing").click().run()
    assert not at.exception
    assert not at.error
    assert at.session_state["dataset_source"]["root"] == str(copy)
    assert metric_value(at, "Clips") == "8"


def test_manual_archive(at, archives, monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIOWB_SHA256_YESNO", sha256_of(archives["yesno"]))
    _choose(at, "yesno")
    at.text_input(key="ds_cat_archive").set_value(str(tmp_path / "nope.tar.gz"))
    at.button(key="ds_cat_use_archive").click().run()
    assert not at.exception
    assert any("archive not found" in e.value for e in at.error)

    local = tmp_path / archives["yesno"].name  # an archive the page may read: inside an allowed folder
    local.write_bytes(archives["yesno"].read_bytes())
    at.text_input(key="ds_cat_archive").set_value(str(local))
    at.button(key="ds_cat_use_archive").click().run()
    assert not at.exception
    assert not at.error
    assert at.session_state["dataset_source"]["kind"] == "catalog"
    assert metric_value(at, "Clips") == "8"
