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
    assert torch.get_num_threads() == page_threads()  # the pages' own torch work keeps to its share
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
