"""The augmentation editor: one set of widgets for every :class:`lib.augment.AugmentConfig` setting, shared by the
Transform lab and the Train page. Ranges come from :data:`lib.augment.AUGMENT_RANGES`.

Widget keys are ``f"{key}_{field}"`` (``tf_time_shift_sec``, ``train_aug_mixup_alpha``...), plus
``{key}_noise_on``, ``{key}_reverb_on`` and ``{key}_eq_on`` (a step's switch; its share of training clips is the
``*_probability`` slider) and ``{key}_snr_db`` (the SNR range, a pair).
"""

from __future__ import annotations

import streamlit as st

from lib.augment import AUGMENT_DOMAINS, AUGMENT_RANGES, EQ_KNOTS_HZ, NOISE_KINDS, AugmentConfig

__all__ = ["augment_editor", "edited_augment"]

DOMAINS = {"spectrogram": "the power spectrogram (fast)", "waveform": "the waveform (exact)"}
# A step with a switch: its probability field (its share of training clips), and its title and help.
SWITCHED = {"noise": "noise_probability", "reverb": "reverb_probability", "eq": "eq_probability"}
SWITCHES = {
    "noise": ("Background noise", "Noise added at a random SNR."),
    "reverb": ("Room reverb", "The clip played in a synthetic room (decaying noise impulse response)."),
    "eq": ("Random equaliser (EQ)", "A smooth random gain curve over frequency: the colour of another voice, "
                                    "microphone or room."),
}
DEFAULT_SHARE = 0.5  # the share a switched-on step starts from when it was off
SHARE_HELP = "Training applies this step to this share of its clips."
LABELS = {
    "time_shift_sec": "Max time shift (± s)", "gain_db": "Max gain (± dB)",
    "noise_probability": "Noise: share of training clips", "snr_db": "Noise SNR range (dB)",
    "freq_warp": "Max frequency warp (±)", "time_stretch": "Max time stretch (±)",
    "reverb_probability": "Reverb: share of training clips", "rt60_sec_max": "Max reverb time RT60 (s)",
    "eq_probability": "EQ: share of training clips", "eq_db": "Max EQ boost/cut (± dB)",
    "n_freq_masks": "Frequency masks", "freq_mask_param": "Max frequency mask width (bins)",
    "n_time_masks": "Time masks", "time_mask_param": "Max time mask width (frames)", "mixup_alpha": "Mixup α (0: off)",
}
HELP = {
    "time_shift_sec": "Each clip moves by up to this much either way: whole frames, rolled round, when no waveform "
                      "step is on; otherwise zero-filled.",
    "snr_db": "Signal-to-noise ratio, drawn in this range for each clip: lower is noisier.",
    "freq_warp": "Vocal-tract length perturbation: the spectrogram's frequency axis is scaled by up to this fraction "
                 "either way (formants move, like another voice). MFCCs get no frequency warp.",
    "time_stretch": "The spectrogram's time axis is scaled by up to this fraction either way (faster or slower "
                    "speech).",
    "rt60_sec_max": "Time for the echo to fall by 60 dB; each room draws one up to this.",
    "eq_db": "Largest boost or cut at each octave knot (" + ", ".join(f"{f:g}" for f in EQ_KNOTS_HZ) + " Hz).",
    "mixup_alpha": "Blend each example with another one and their labels by the same weight, drawn from Beta(α, α) "
                   "(0.2 is typical).",
    **{field: SHARE_HELP for field in SWITCHED.values()},
}
INTEGER_FIELDS = ("n_freq_masks", "freq_mask_param", "n_time_masks", "time_mask_param")


def _initial_state(config: AugmentConfig) -> dict:
    """The widgets' values for ``config`` (without the key prefix)."""
    state = {name: getattr(config, name) for name in AUGMENT_RANGES if name != "snr_db"}
    for step, field in SWITCHED.items():
        state[f"{step}_on"] = getattr(config, field) > 0
        state[field] = float(getattr(config, field)) if getattr(config, field) > 0 else DEFAULT_SHARE
    state.update(snr_db=(float(config.snr_db_min), float(config.snr_db_max)), noise_kinds=list(config.noise_kinds),
                 domain=config.domain)
    return {k: (int(v) if k in INTEGER_FIELDS else float(v) if isinstance(v, (int, float))
                and not isinstance(v, bool) else v) for k, v in state.items()}


def edited_augment(key: str, initial: AugmentConfig) -> AugmentConfig:
    """The settings the editor ``key`` holds (``initial`` where a widget has no value yet), without drawing it.

    Raises:
        ValueError: the settings are invalid (the message names the setting).
    """
    state, values = st.session_state, _initial_state(initial)
    get = lambda name: state.get(f"{key}_{name}", values[name])  # noqa: E731
    fields = {name: get(name) for name in AUGMENT_RANGES if name != "snr_db"}
    for step, field in SWITCHED.items():
        fields[field] = float(get(field)) if get(f"{step}_on") else 0.0
    snr_min, snr_max = get("snr_db")
    kinds = tuple(get("noise_kinds")) or initial.noise_kinds
    if not get("noise_kinds") and get("noise_on"):
        raise ValueError("pick at least one noise colour")
    return initial.replace(**fields, snr_db_min=float(snr_min), snr_db_max=float(snr_max), noise_kinds=kinds,
                           domain=get("domain"))


def _slider(key: str, name: str, persist: str | None, disabled: bool = False) -> None:
    """A slider over ``AUGMENT_RANGES[name]``, widened to hold the current value (a saved config may lie outside)."""
    bounds, value = AUGMENT_RANGES[name], st.session_state[f"{key}_{name}"]
    values = value if isinstance(value, (tuple, list)) else (value,)
    low, high = min(bounds.low, *values), max(bounds.high, *values)
    kind = int if name in INTEGER_FIELDS else float
    st.slider(LABELS[name], kind(low), kind(high), step=kind(bounds.step), key=f"{key}_{name}",
              persist_state=persist, disabled=disabled, help=HELP.get(name))


def _row(key: str, persist: str | None, left: tuple[str, ...], right: tuple[str, ...] = (),
         disabled: bool = False) -> st.delta_generator.DeltaGenerator:
    """Sliders in two columns; returns the right column (for a widget of another kind)."""
    columns = st.columns(2)
    for column, names in zip(columns, (left, right)):
        with column:
            for name in names:
                _slider(key, name, persist, disabled)
    return columns[1]


def augment_editor(key: str, initial: AugmentConfig, persist: str | None = None) -> AugmentConfig:
    """Draw a widget for every augmentation setting, in the current container, and return the settings.

    Args:
        key: prefix of the widgets' keys (one editor per prefix).
        initial: the settings the widgets start from (read once per session key).
        persist: the widgets' ``persist_state`` (None, ``"page"`` or ``"session"``).

    Returns:
        The edited settings.

    Raises:
        ValueError: the settings are invalid (the message names the setting).
    """
    for name, value in _initial_state(initial).items():
        st.session_state.setdefault(f"{key}_{name}", value)
    on = {step: bool(st.session_state[f"{key}_{step}_on"]) for step in SWITCHED}

    def switch(step: str) -> None:
        title, what = SWITCHES[step]
        st.toggle(title, key=f"{key}_{step}_on", persist_state=persist, help=what)

    _row(key, persist, ("time_shift_sec",), ("gain_db",))
    switch("noise")
    with _row(key, persist, ("noise_probability", "snr_db"), disabled=not on["noise"]):
        st.multiselect("Noise colours", NOISE_KINDS, key=f"{key}_noise_kinds", disabled=not on["noise"],
                       persist_state=persist, help="Each noisy clip gets one of these colours at random.")
    _row(key, persist, ("freq_warp",), ("time_stretch",))
    switch("reverb")
    _row(key, persist, ("reverb_probability",), ("rt60_sec_max",), disabled=not on["reverb"])
    switch("eq")
    _row(key, persist, ("eq_probability",), ("eq_db",), disabled=not on["eq"])
    _row(key, persist, ("n_freq_masks", "n_time_masks"), ("freq_mask_param", "time_mask_param"))
    _slider(key, "mixup_alpha", persist)
    st.radio("Shift, gain, noise, reverb and EQ act on", AUGMENT_DOMAINS, format_func=DOMAINS.get,
             key=f"{key}_domain", horizontal=True, persist_state=persist,
             help="Training applies them to each clip's power spectrogram, cached once (fast: an epoch costs about "
                  "what the model costs), or to the waveform, featurised again every batch (exact, several times "
                  "slower). The two agree within about 1.5 dB per band.")
    return edited_augment(key, initial)
