"""Home: what the workbench does, the pipeline, and where to start."""

import streamlit as st

# The title and the first words are sent before the imports below, which load PyTorch (seconds on a cold start):
# the first page is never blank.
TITLE = "Audio classification workbench"
st.title(TITLE)
st.caption("Walk the whole path of audio classification: data, features, training, evaluation and live use.")
st.markdown(
    "A sound becomes a **waveform** (samples over time), the waveform becomes a **spectrogram** (energy per "
    "frequency band over short frames), a small **CNN** reads the spectrogram like an image, and outputs one "
    "probability per **class**. Every page below is one step of that path.")

from lib.plots import fig_pipeline  # noqa: E402
from ui.common import active_dataset, active_run, page_link, sidebar  # noqa: E402

sidebar()
st.plotly_chart(fig_pipeline(), config={"displayModeBar": False})

left, right = st.columns(2)
with left:
    st.subheader("Your data")
    dataset = active_dataset(wait=False)  # a first start synthesizes the built-in set: its progress shows here
    if dataset is not None:
        st.metric("Clips", f"{len(dataset):,}", help=dataset.name)
        st.write(f"**{dataset.name}**: {dataset.n_classes} classes ({', '.join(dataset.class_names)}).")
with right:
    st.subheader("Your model")
    run = active_run()
    if run is None:
        st.info("No trained model yet: start on the Train page.")
    else:
        accuracy = run.test_accuracy
        st.metric("Test accuracy", f"{accuracy:.1%}" if accuracy is not None else "n/a", help=run.run_id)
        st.write(f"**{run.run_id}**: {run.model}, {run.n_parameters or 0:,} parameters.")

st.subheader("Where to start")
cols = st.columns(3)
steps = [("app_pages/dataset.py", "1. Explore the dataset", "Listen, look at spectrograms, see the classes."),
         ("app_pages/transforms.py", "2. Tune the features", "Mel bins, FFT and hop, SpecAugment, noise."),
         ("app_pages/train.py", "3. Train a model", "Live loss and accuracy; stop at any time."),
         ("app_pages/evaluate.py", "4. Evaluate it", "Confusion matrix, per-class F1, the clips it got wrong."),
         ("app_pages/record.py", "5. Say a word", "Record from your microphone and see it classified."),
         ("app_pages/inference.py", "6. Classify files", "Upload WAV, FLAC, OGG or MP3 files.")]
for i, (page, label, text) in enumerate(steps):
    with cols[i % 3]:
        page_link(page, label=label)
        st.caption(text)
