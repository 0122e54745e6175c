"""The feature settings' widgets (the Transform lab's "Features" panel) and the
:class:`lib.dsp.features.FeatureConfig` they make.

:func:`init_feature_editor` sets the widgets' values once from a saved config (session keys ``tf_kind``,
``tf_sample_rate``, ``tf_n_fft``, ...); :func:`feature_editor` draws them; :func:`edited_features` reads them back.
Widgets shown only for some feature kinds keep their values while hidden.
"""

from __future__ import annotations

import streamlit as st

from lib.dsp.features import FeatureConfig

SAMPLE_RATES = [8000, 16000, 22050]
N_FFTS = [256, 512, 1024, 2048]
WIN_LENGTHS = [128, 200, 256, 320, 400, 512, 640, 800, 1024, 1536, 2048]
HOP_LENGTHS = [32, 64, 80, 100, 128, 160, 200, 256, 320, 400, 512, 1024]
KINDS = {"mel": "Mel", "mfcc": "MFCC", "linear": "Linear STFT"}
NORMS = {"none": "none (dB)", "per_clip": "per clip", "per_bin": "per bin (CMVN)"}


def init_feature_editor(fc: FeatureConfig) -> None:
    """The widgets' values from ``fc``, set once (the widgets own them then)."""
    defaults = {
        "tf_kind": fc.kind, "tf_sample_rate": fc.sample_rate, "tf_n_fft": fc.n_fft,
        "tf_win_length": fc.effective_win_length, "tf_hop_length": fc.hop_length, "tf_n_mels": fc.n_mels,
        "tf_n_mfcc": fc.n_mfcc, "tf_f_min": float(fc.f_min),
        "tf_f_max": None if fc.f_max is None else float(fc.f_max),
        "tf_clamp": fc.top_db is not None, "tf_top_db": float(fc.top_db or 80.0),
        "tf_clip_seconds": float(fc.clip_seconds), "tf_norm": fc.normalization, "tf_lifter": int(fc.lifter),
    }
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def _span(low, high, key: str) -> tuple:
    """A slider's ``(min, max)``, widened to hold the current value (a saved config may lie outside)."""
    value = st.session_state[key]
    return min(low, value), max(high, value)


def _options(values: list, current) -> list:
    """``values`` with the current value added (a saved config may hold one that is not in the list)."""
    return sorted(set(values) | {current})


def feature_editor() -> str:
    """Draw the feature widgets (in the current container); returns the feature kind chosen."""
    kind = st.segmented_control("Feature kind", list(KINDS), format_func=KINDS.get, key="tf_kind", required=True)
    a, b = st.columns(2)
    a.selectbox("Sample rate (Hz)", _options(SAMPLE_RATES, st.session_state["tf_sample_rate"]),
                key="tf_sample_rate", help="Clips are resampled to this rate; the highest frequency kept is half "
                                           "of it.")
    b.number_input("Clip length (s)", *_span(0.1, 10.0, "tf_clip_seconds"), step=0.1, key="tf_clip_seconds",
                   help="Every clip is cut or padded (centred) to this length before features are made.")
    st.select_slider("n_fft (FFT size, samples)", _options(N_FFTS, st.session_state["tf_n_fft"]), key="tf_n_fft",
                     help="Gives n_fft // 2 + 1 linear frequency bins.")
    st.select_slider("Window length (samples, must be <= n_fft)",
                     _options(WIN_LENGTHS, st.session_state["tf_win_length"]), key="tf_win_length",
                     help="The Hann window each frame is cut with; it is zero-padded to n_fft.")
    st.select_slider("Hop length (samples between frames)", _options(HOP_LENGTHS, st.session_state["tf_hop_length"]),
                     key="tf_hop_length", help="Smaller hop: more frames, finer time resolution.")
    if kind in ("mel", "mfcc"):
        a, b = st.columns(2)
        a.slider("Mel bands (n_mels)", *_span(8, 128, "tf_n_mels"), key="tf_n_mels", persist_state="page")
        if kind == "mfcc":
            b.slider("MFCC coefficients (n_mfcc)", *_span(4, 64, "tf_n_mfcc"), key="tf_n_mfcc",
                     help="At most n_mels.", persist_state="page")
        a, b = st.columns(2)
        a.number_input("f_min (Hz)", min_value=0.0, max_value=20000.0, step=10.0, key="tf_f_min",
                       persist_state="page")
        b.number_input("f_max (Hz, empty: half the sample rate)", min_value=0.0, max_value=20000.0, step=100.0,
                       key="tf_f_max", persist_state="page")
    a, b = st.columns(2)
    clamp = a.toggle("Clamp range", key="tf_clamp", help="Keep only top_db dB below each clip's loudest cell "
                                                          "(off: top_db = None, keep everything).")
    b.slider("top_db (dB)", *_span(10.0, 120.0, "tf_top_db"), step=5.0, key="tf_top_db", disabled=not clamp)
    st.radio("Normalisation", list(NORMS), format_func=NORMS.get, key="tf_norm", horizontal=True)
    st.number_input("Smooth envelope: keep first N cepstral coefficients (0 = off)", min_value=0,
                    max_value=2048, step=1, key="tf_lifter", disabled=kind == "mfcc",
                    help="Mel and linear only (MFCCs are cepstral coefficients already, so it is not used "
                         "for them): each frame's dB spectrum is smoothed to its envelope, without the pitch "
                         "harmonics; the shape stays the same. At most the number of bins.")
    return kind


def edited_features(power: float) -> FeatureConfig:
    """The :class:`FeatureConfig` of the widgets (``power``: the saved config's, not edited here). Raises ValueError
    with a message when the settings do not work together."""
    ss = st.session_state
    kind = ss["tf_kind"]
    return FeatureConfig(
        sample_rate=int(ss["tf_sample_rate"]), clip_seconds=float(ss["tf_clip_seconds"]), kind=kind,
        n_fft=int(ss["tf_n_fft"]), win_length=int(ss["tf_win_length"]), hop_length=int(ss["tf_hop_length"]),
        n_mels=int(ss["tf_n_mels"]), f_min=float(ss["tf_f_min"]),
        f_max=None if ss["tf_f_max"] is None else float(ss["tf_f_max"]),
        power=power, top_db=float(ss["tf_top_db"]) if ss["tf_clamp"] else None,
        n_mfcc=int(ss["tf_n_mfcc"]),
        normalization=ss["tf_norm"], lifter=0 if kind == "mfcc" else int(ss["tf_lifter"]))
