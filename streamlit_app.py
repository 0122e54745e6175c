"""Audio classification workbench: the router. Each step of the path is one page under app_pages/ (not pages/: Streamlit would then treat the folder as its old pages directory).

Before the navigation runs, a session types the class password when the operator set one (``AUDIOWB_PASSWORD`` or
``password`` in ``.streamlit/secrets.toml``); every page runs inside the page edge (:func:`ui.guard.run_page`):
an unexpected error becomes an ``st.error`` in the page and a traceback in the server's log.
"""

from pathlib import Path

import streamlit as st

from ui.guard import require_password, run_page

# A local favicon: a ":material/...:" page icon makes the browser fetch it from fonts.gstatic.com (fails offline).
FAVICON = Path(__file__).parent / "ui" / "favicon.png"
st.set_page_config(page_title="Audio classification workbench", page_icon=str(FAVICON), layout="wide")
require_password()

PAGES = {
    "Start": [st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Data": [st.Page("app_pages/dataset.py", title="Dataset", icon=":material/library_music:"),
             st.Page("app_pages/transforms.py", title="Transforms", icon=":material/tune:")],
    "Model": [st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
              st.Page("app_pages/sweep.py", title="Sweep", icon=":material/manage_search:"),
              st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
              st.Page("app_pages/runs.py", title="Runs", icon=":material/folder_open:")],
    "Use": [st.Page("app_pages/inference.py", title="Inference", icon=":material/upload_file:"),
            st.Page("app_pages/record.py", title="Record", icon=":material/mic:"),
            st.Page("app_pages/listen.py", title="Listen", icon=":material/hearing:")],
}

run_page(st.navigation(PAGES))
