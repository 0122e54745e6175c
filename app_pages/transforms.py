"""Transforms: the Transform lab. One clip, every feature and augmentation setting, before and after."""

from __future__ import annotations

import hashlib

import streamlit as st

from lib.dsp.audio import ACCEPTED_FORMATS, AUDIO_EXTENSIONS, AudioDecodeError, fit_clip, load_audio, wav_bytes
from lib.augment import AugmentConfig, mixup_partner, preview_augment
from lib.dsp.features import FeatureConfig, frame_grid
from lib.plots import color_range, fig_eq, fig_spectrogram, fig_waveform
from ui.augment_editor import augment_editor
from ui.feature_editor import KINDS, edited_features, feature_editor, init_feature_editor
from ui.common import active_dataset, augment_config, feature_config, page_header, page_link, source_key

SOURCES = {"dataset": "From the dataset", "upload": "Upload a file", "record": "Record"}
LIGHT = {"displayModeBar": False}


# ------------------------------------------------------------------------------------- state
def _init_widgets() -> None:
    """Widget defaults from the session's saved feature settings (set once by
    :func:`ui.feature_editor.init_feature_editor`; the widgets own them then). The augmentation editor
    (:mod:`ui.augment_editor`) starts from the saved augmentation the same way."""
    st.session_state.setdefault("tf_source", "dataset")
    init_feature_editor(feature_config())
    st.session_state.setdefault("aug_seed", 0)


def _new_draw() -> None:
    st.session_state["aug_seed"] = int(st.session_state.get("aug_seed", 0)) + 1


def _use_for_training(feature: dict, augment: dict) -> None:
    st.session_state["feature_config"] = feature
    st.session_state["augment_config"] = augment


# ------------------------------------------------------------------------------------- caches
@st.cache_data(show_spinner=False, max_entries=16)
def _decode(data: bytes) -> tuple:
    """Decode an upload or a recording once (keyed by its bytes): ``(waveform (channels, time), sample_rate)``."""
    return load_audio(data)


@st.cache_data(show_spinner=False, max_entries=32)
def _model_input(clip_key: str, sample_rate: int, clip_seconds: float, _waveform, _rate: int):
    """What the model sees (:func:`lib.dsp.audio.fit_clip`): mono, at ``sample_rate``, centre cut/padded to
    ``clip_seconds``. ``(1, n_samples)``."""
    return fit_clip(_waveform, _rate, sample_rate, round(clip_seconds * sample_rate))


@st.cache_resource(show_spinner=False, max_entries=64)
def _figure(key: str, _build):
    """A figure built once per ``key`` (which must name everything it shows); Plotly figures take tens of ms to
    build, so a rerun rebuilds only the ones whose inputs changed. Shared read-only."""
    return _build()


# ------------------------------------------------------------------------------------- page
page_header("Transforms", "The transform lab: see and hear how one clip becomes the image a model reads, and "
                          "what augmentation does to it, one setting at a time.")
_init_widgets()

# -- 1. the clip
st.subheader("1. Pick a clip")
source = st.segmented_control("Clip", list(SOURCES), format_func=SOURCES.get, key="tf_source", required=True)
waveform = rate = None
if source == "dataset":
    dataset = active_dataset()
    if dataset is None:
        st.stop()
    c1, c2 = st.columns([1, 2])
    class_name = c1.selectbox("Class", dataset.class_names, key="tf_class")
    rows = dataset.class_indices(class_name)
    if not rows:
        st.warning(f"The class {class_name!r} has no clips: pick another class.")
        st.stop()
    position = 0
    if len(rows) > 1:
        # One slider per class and dataset: their lengths differ.
        position = c2.slider("Clip", 0, len(rows) - 1, 0, key=f"tf_clip_{source_key(dataset.source)}_{class_name}")
    index = rows[position]
    waveform, rate = dataset.clip(index)
    clip_key, clip_name = f"{source_key(dataset.source)}#{index}", dataset.paths[index]
else:
    if source == "upload":
        uploaded = st.file_uploader(f"Audio file ({', '.join(ACCEPTED_FORMATS)})",
                                    type=[suffix[1:] for suffix in AUDIO_EXTENSIONS],
                                    key="tf_upload")
    else:
        uploaded = st.audio_input("Record a clip", sample_rate=16000, key="tf_record")
    if uploaded is None:
        st.info("Upload a file to start." if source == "upload" else "Record a word or a sound to start.")
        st.stop()
    data = uploaded.getvalue()
    try:
        waveform, rate = _decode(data)
    except AudioDecodeError as error:
        st.error(f"{error} Try another file, or convert it to WAV.")
        st.stop()
    clip_key = hashlib.sha1(data).hexdigest()
    clip_name = getattr(uploaded, "name", None) or "recording"
st.caption(f"`{clip_name}`: {waveform.shape[-1] / rate:.2f} s, {rate} Hz, {waveform.shape[0]} channel(s).")

# -- 2. the settings (widgets shown only for some feature kinds keep their values while hidden)
st.subheader("2. Settings")
left, right = st.columns(2)
with left, st.expander("Features", expanded=True, icon=":material/graphic_eq:"):
    kind = feature_editor()

with right, st.expander("Augmentation (training only)", expanded=True, icon=":material/shuffle:"):
    st.caption("Each training example gets its own random draw within these limits; here you see one draw, with "
               "every step that is on applied (training applies noise, reverb and EQ to their share of clips).")
    try:
        training, augment_error = augment_editor("tf", augment_config()), None
    except ValueError as error:
        training, augment_error = None, error
    if kind == "mfcc":
        st.caption("MFCCs have no frequency axis: the frequency warp is not applied to them, only the time "
                   "stretch.")
    st.button("New random draw", key="tf_reroll", on_click=_new_draw, icon=":material/casino:")

ss = st.session_state
try:
    config = edited_features(feature_config().power)
except ValueError as error:
    st.error(f"These feature settings do not work together: {error}. Change the setting it names.")
    st.stop()

if augment_error is not None:
    st.error(f"These augmentation settings do not work together: {augment_error}. Change the setting it names.")
    st.stop()
preview = training.every_step_on()   # the preview applies every step that is on to its clip

# -- 3. before / after
seed = int(ss["aug_seed"])
clean = _model_input(clip_key, config.sample_rate, config.clip_seconds, waveform, rate)     # (1, n_samples)
clips, partner = [clean], None
if source == "dataset":  # a batch-mate of another class (mixup's partner), as in a training batch
    labels = dataset.labels.tolist()
    partner = mixup_partner(labels, index, seed)
    if partner is not None:
        partner_wave, partner_rate = dataset.clip(partner)
        clips.append(_model_input(f"{source_key(dataset.source)}#{partner}", config.sample_rate,
                                  config.clip_seconds, partner_wave, partner_rate))
# The training engine's own stages for this draw: shift, gain, noise, reverb, EQ (on the frames, the power
# spectrogram or the waveform, as training will) -> features -> warp -> SpecAugment masks -> mixup.
result = preview_augment(clips, None, config, preview, seed)
before, after = result.clean, result.augmented                                               # (1, bins, frames)

st.subheader("3. Before and after augmentation")
eq_knots = result.eq_db
st.caption(f"Draw #{seed}: {', '.join(result.steps(config, preview))}. Press **New random draw** for another "
           "one; the same draw stays while you move the sliders.")
batch_source = preview.batch_source(config.power)
st.caption("The augmented audio plays the waveform steps (shift, gain, noise, reverb, EQ). The frequency warp, "
           "time stretch, masks and mixup act on the features, so you see them in the spectrogram but do not "
           "hear them."
           + (" With no waveform step on, training computes each clip's features once and shifts them by whole "
              "frames, rolled round: what leaves one end comes back at the other; the spectrogram shows exactly "
              "that, the audio is the clip rolled by as many samples." if batch_source == "features" else "")
           + (" Training applies the waveform steps to each clip's cached power spectrogram (fast); the spectrogram "
              "shows exactly that, the audio is the same draw played on the waveform (its room echo is one random "
              "room of the drawn size; the spectrogram uses the room's average)." if batch_source == "power" else "")
           + (" MFCCs have no frequency axis: the frequency warp is skipped for them." if config.kind == "mfcc"
              and preview.freq_warp > 0 else ""))
zmin, zmax = color_range(before, after)
# Cache keys: everything each figure depends on.
wave_key = f"{clip_key}|{config.sample_rate}|{config.clip_seconds}"
draw_key = f"{wave_key}|{seed}|{preview.to_dict()}|{partner}"
spec_key = f"{config.to_json()}|{zmin}|{zmax}"
col_before, col_after = st.columns(2)
for column, title, wave, spec, key in ((col_before, "Original", clean, before, wave_key),
                                       (col_after, "Augmented", result.waveform, after, draw_key)):
    with column:
        st.markdown(f"**{title}**")
        st.audio(wav_bytes(wave, config.sample_rate))
        st.plotly_chart(_figure(f"wave|{key}", lambda: fig_waveform(wave, config.sample_rate, max_points=2000,
                                                                    title="Waveform")),
                        key=f"tf_wave_{title}", config=LIGHT)
        st.plotly_chart(_figure(f"spec|{key}|{spec_key}", lambda: fig_spectrogram(
                            spec, config, title=f"{KINDS[config.kind]} features", zmin=zmin, zmax=zmax)),
                        key=f"tf_spec_{title}", config=LIGHT)
if eq_knots is not None:
    with col_after.expander("The equaliser of this draw", icon=":material/equalizer:"):
        st.plotly_chart(_figure(f"eq|{eq_knots}|{config.sample_rate}",
                                lambda: fig_eq(eq_knots, config.sample_rate / 2)), key="tf_eq_curve", config=LIGHT)

if preview.mixup_alpha > 0:
    with st.expander(f"Mixup (α = {preview.mixup_alpha:g}): this example blended with one of another class",
                     expanded=True, icon=":material/join:"):
        if source != "dataset":
            st.caption("Mixup blends dataset clips: pick a clip from the dataset to see it.")
        elif partner is None:
            st.caption("The dataset has only one class: there is nothing to mix with.")
        else:
            weight = result.mixup_weight
            other = dataset.class_names[labels[partner]]
            st.caption(f"{weight:.0%} of this augmented **{class_name}** example + {1 - weight:.0%} of "
                       f"`{dataset.paths[partner]}` (**{other}**, with its own draw, as in a training batch); the "
                       f"training target is {weight:.2f} × {class_name} + {1 - weight:.2f} × {other}. Weight = "
                       "max(u, 1 − u), u ~ Beta(α, α); training mixes each example with a random one of its batch.")
            st.plotly_chart(_figure(f"mix|{draw_key}|{spec_key}", lambda: fig_spectrogram(
                                result.batch_features[0], config, title=f"Mixed: {class_name} + {other}")),
                            key="tf_spec_mixup", config=LIGHT)

# -- 4. frames
st.subheader("4. From samples to frames")
sr, win, hop = config.sample_rate, config.effective_win_length, config.hop_length
overlap = 1 - hop / win
m = st.columns(5)
m[0].metric("Window (samples)", f"{win}", f"{1000 * win / sr:.1f} ms", delta_color="off", delta_arrow="off",
            help="win_length: the samples one frame looks at.")
m[1].metric("Hop (samples)", f"{hop}", f"{1000 * hop / sr:.1f} ms", delta_color="off", delta_arrow="off",
            help="hop_length: how far the window moves from one frame to the next.")
m[2].metric("Overlap", f"{overlap:.0%}" if overlap >= 0 else f"gap {-overlap:.0%}",
            help="How much two neighbouring windows share: 1 - hop / window.")
m[3].metric("Frames", f"{config.n_frames}", help="1 + n_samples // hop (the signal is padded by n_fft / 2 at "
                                                  "both ends, so frame i is centred on sample i × hop).")
m[4].metric("Feature bins", f"{config.n_bins}")
bins_text = {"mel": f"{config.n_fft // 2 + 1} FFT bins → {config.n_mels} mel bands",
             "mfcc": f"{config.n_fft // 2 + 1} FFT bins → {config.n_mels} mel bands → {config.n_mfcc} MFCCs",
             "linear": f"{config.n_fft // 2 + 1} FFT bins (n_fft / 2 + 1)"}[config.kind]
st.markdown(
    f"**Feature shape** `{config.feature_shape}` = (channel, bins, frames): {config.n_samples:,} samples "
    f"({config.clip_seconds:g} s at {sr:,} Hz) → 1 + {config.n_samples:,} // {hop} = **{config.n_frames} frames**; "
    f"each frame cuts {win} samples ({1000 * win / sr:.1f} ms) with a Hann window, zero-pads them to n_fft = "
    f"{config.n_fft} and takes an FFT: {bins_text}. Frames start every {hop} samples ({1000 * hop / sr:.1f} ms), "
    + (f"so neighbouring windows overlap by {overlap:.0%}." if overlap >= 0
       else f"so {hop - win} samples between windows are never looked at (hop > window).")
    + (f" Each frame's dB spectrum is then smoothed to its envelope: only its first {config.lifter} cepstral "
       "coefficients are kept (same shape)." if config.lifter else ""))
zoom = min(config.n_samples, max(round(0.1 * sr), win + 5 * hop))
grid_key = f"grid|{wave_key}|{config.n_fft}|{win}|{hop}"
st.plotly_chart(_figure(grid_key, lambda: fig_waveform(
                    clean[..., :zoom], sr, frame_grid=frame_grid(config, zoom), max_points=4000,
                    title=f"The first {1000 * zoom / sr:.0f} ms: shaded windows, one tick per frame centre")),
                key="tf_frames", config=LIGHT)

# -- 5. use it
st.subheader("5. Use these settings")
in_use = (FeatureConfig.from_dict(ss["feature_config"]) == config
          and AugmentConfig.from_dict(ss["augment_config"]) == training)
st.caption(f"Training would get: {training.summary()}"
           + (f"; features smoothed to {config.lifter} cepstral coefficients" if config.lifter else "") + ".")
st.button("Use for training", key="tf_use", type="primary", on_click=_use_for_training,
          args=(config.to_dict(), training.to_dict()), icon=":material/check:")
if in_use:
    st.success("These are the settings training uses (they are also what the Dataset page's spectrograms show).")
    page_link("app_pages/train.py", label="Go to the Train page", icon=":material/model_training:")
else:
    st.info("Training still uses the saved settings: press **Use for training** to replace them with these.")
