"""The shared sidebar: dataset, run, device, and the data folder setting."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_sidebar_changes_the_data_folder(app_env, tmp_path):
    import ui.common as common

    original = common.DATA_DIR
    try:
        at = AppTest.from_file(str(ROOT / "app_pages" / "runs.py"), default_timeout=60)
        at.run()
        assert "CPU" in " ".join(md.value for md in at.sidebar.markdown)  # the compute device
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
