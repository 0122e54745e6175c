"""Audio classification workbench: the router. Each step of the path is one page under pages/."""

import streamlit as st

st.set_page_config(page_title="Audio classification workbench", page_icon=":material/graphic_eq:", layout="wide")

PAGES = {
    "Start": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Data": [st.Page("pages/dataset.py", title="Dataset", icon=":material/library_music:"),
             st.Page("pages/transforms.py", title="Transforms", icon=":material/tune:")],
    "Model": [st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
              st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
              st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:")],
    "Use": [st.Page("pages/inference.py", title="Inference", icon=":material/upload_file:"),
            st.Page("pages/record.py", title="Record", icon=":material/mic:")],
}

st.navigation(PAGES).run()
