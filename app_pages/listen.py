"""Listen: continuous keyword detection from the microphone, live (WebRTC on localhost, no outside server)."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from lib.serving.listen import Listener, ListenState, frame_samples
from lib.serving.stream import CONFIDENCE_FLOOR, StreamingDetector, detector_settings, operating_point
from ui.common import page_header, pick_classifier
from ui.microphone import audio_sink, live_microphone

REFRESH_SEC = 0.3       # the live view redraws this often while the microphone streams
STALL_SEC = 10.0        # no audio for this long while streaming: the page says so and stops redrawing
SHOWN_EVENTS = 10       # the latest detections listed

page_header("Listen", "Say keywords into the microphone and see them detected as you speak: the model classifies "
                      "the last second every 0.1 s, smooths its answers and fires a word when it crosses the "
                      "threshold.")

run, classifier = pick_classifier("listen_run")
try:
    point = operating_point(run.path) or {}
except ValueError as error:
    st.warning(f"{error}. Listening with the default detector settings.")
    point = {}


# ------------------------------------------------------------------------- one listener per session and run
def session_listener() -> dict:
    """This session's listener holder: ``{"key", "listener", "sink"}``. The media sink reads the holder at each
    block, so choosing another run swaps the listener without restarting the microphone."""
    holder = st.session_state.get("listen_holder")
    key = (run.run_id, id(classifier))  # the cached classifier is new when the run's files change
    if holder is None:
        holder = {"key": None, "listener": None}
        holder["sink"] = audio_sink(lambda frame: holder["listener"].feed(*frame_samples(frame)))
        st.session_state["listen_holder"] = holder
    if holder["key"] != key:
        if holder["listener"] is not None:
            holder["listener"].close()
        holder["listener"] = Listener(StreamingDetector(classifier, **detector_settings(run.path, point)))
        holder["key"] = key
    return holder


holder = session_listener()
listener: Listener = holder["listener"]

keywords = listener.detector.rule.words  # the classes that can fire (not _unknown_ or background)
st.caption(f"**{run.run_id}** listens for {len(keywords)} words: {', '.join(keywords)}.")
if "false_accepts_per_hour" in point:
    st.caption(f"Measured for this run at threshold {point['threshold']:.2f}: "
               f"{point['false_accepts_per_hour']:,.0f} false detections per hour of speech and noise and "
               f"{point['miss_rate']:.1%} of keywords missed (`{point.get('command', 'bench/detection.py')}`).")

default_threshold = float(point.get("threshold", listener.detector.threshold))
threshold = st.slider("Threshold", CONFIDENCE_FLOOR, 1.0, default_threshold, 0.01, key=f"listen_threshold_{run.run_id}",
                      help="The smoothed probability a word needs to fire. Lower: fewer missed words, more false "
                           "detections. The default is the run's measured operating point when it has one.")
listener.set_threshold(threshold)

playing = live_microphone("listen_microphone", holder["sink"])
if playing and not st.session_state.get("listen_was_playing"):
    listener.reset()  # a new Start: a new stream, from time 0
st.session_state["listen_was_playing"] = playing


# ------------------------------------------------------------------------- the live view
def show_state(state: ListenState) -> None:
    """The latest word, the class bars and the detections so far."""
    if state.error:
        st.error(f"Listening stopped: {state.error}. Press Stop, then Start listening again.")
    before, now = st.session_state.get("listen_shown_at", {}), time.monotonic()
    shown = {heard.detected_at: before.get(heard.detected_at, now) for heard in state.events}  # when first shown
    st.session_state["listen_shown_at"] = shown
    latest = state.events[0] if state.events else None
    left, right = st.columns([1, 2])
    with left:
        st.metric("Heard", latest.event.word if latest else "nothing yet",
                  delta=f"{latest.event.probability:.0%} at {latest.event.time_sec:.1f} s" if latest else None,
                  delta_arrow="off", delta_color="off")
        st.caption(f"{state.time_sec:.1f} s heard; level {state.level_dbfs:.0f} dBFS"
                   + (f"; {state.dropped_sec:.1f} s dropped (the server fell behind)" if state.dropped_sec else ""))
    with right:
        columns = st.columns(2)
        for i, name in enumerate(keywords):
            p = float(state.probabilities[state.class_names.index(name)])
            columns[i % 2].progress(min(p, 1.0), text=f"{name} {p:.0%}" + (" ✔" if p >= threshold else ""))
    if state.events:
        st.markdown("**Detected** (newest first; *shown after*: from the word's last audio reaching the server to "
                    "this page showing it)")
        st.table(pd.DataFrame({
            "word": [h.event.word for h in state.events[:SHOWN_EVENTS]],
            "at": [f"{h.event.time_sec:.1f} s" for h in state.events[:SHOWN_EVENTS]],
            "probability": [f"{h.event.probability:.0%}" for h in state.events[:SHOWN_EVENTS]],
            "shown after": [f"{h.delay_sec + shown[h.detected_at] - h.detected_at:.2f} s"
                            for h in state.events[:SHOWN_EVENTS]]}).set_index("word"))


def listen_live() -> None:
    """While the microphone streams: redraw the live view every :data:`REFRESH_SEC` (a loop in this script run,
    not a fragment: fragment reruns starve the WebRTC media of the server's event loop). Any widget change or
    Stop reruns the page and ends the loop; so does a closed tab. Audio that stops for :data:`STALL_SEC` ends it
    with a message."""
    view = st.empty()
    quiet_since = None
    while True:
        state = listener.state()
        with view.container():
            show_state(state)
        quiet_since = None if state.listening else (quiet_since or time.monotonic())
        if quiet_since is not None and time.monotonic() - quiet_since > STALL_SEC:
            st.warning(f"No audio has arrived for {STALL_SEC:g} s. Press Stop, then Start listening again "
                       "(and check that the browser may use the microphone).")
            return
        time.sleep(REFRESH_SEC)


if playing:
    listen_live()
else:
    st.info("Press **Start listening** and allow the microphone. Say the words above with a pause between them.")
    if listener.state().events:
        show_state(listener.state())
