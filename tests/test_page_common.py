"""The router and the shared sidebar: every page inside the navigation, and the data folder setting."""

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lib.device import page_threads, resolve_device, train_threads

ROOT = Path(__file__).resolve().parents[1]


def test_sidebar_changes_the_data_folder(app_env, tmp_path):
    import ui.common as common

    original = common.DATA_DIR
    try:
        at = AppTest.from_file(str(ROOT / "app_pages" / "runs.py"), default_timeout=60)
        at.run()
        sidebar = " ".join(md.value for md in at.sidebar.markdown)
        assert "CPU" in sidebar or "GPU" in sidebar or "MPS" in sidebar  # the compute device
        if resolve_device("auto").type == "cpu":  # how the cores are shared between training and the pages
            assert f"CPU: {train_threads()} training thread(s), {page_threads()} for the pages" in sidebar
        assert torch.get_num_threads() == page_threads()  # the pages' own torch work keeps to its share
        at.sidebar.text_input(key="data_dir_input").set_value(str(tmp_path / "elsewhere")).run()
        at.sidebar.button(key="data_dir_apply").click().run()
        assert not at.exception
        assert common.DATA_DIR == (tmp_path / "elsewhere").resolve()
        assert common.RECORDINGS_DIR == common.DATA_DIR / "recordings"
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        at.sidebar.text_input(key="data_dir_input").set_value(str(blocker / "sub")).run()
        at.sidebar.button(key="data_dir_apply").click().run()
        assert not at.exception and "Cannot use that folder" in at.sidebar.error[0].value
    finally:
        common.set_data_dir(original)


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
