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
# A step with a switch: its probability field, and the share a switched-on step starts from when it was off.
SWITCHED = {"noise": "noise_probability", "reverb": "reverb_probability", "eq": "eq_probability"}
DEFAULT_SHARE = 0.5
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
    kinds = tuple(get("noise_kinds"))
    if not kinds:
        raise ValueError("pick at least one noise colour")
    return initial.replace(**fields, snr_db_min=float(snr_min), snr_db_max=float(snr_max), noise_kinds=kinds,
                           domain=get("domain"))


def _slider(key: str, name: str, label: str, persist: str | None, **kwargs) -> None:
    """A slider over ``AUGMENT_RANGES[name]``, widened to hold the current value (a saved config may lie outside)."""
    bounds, value = AUGMENT_RANGES[name], st.session_state[f"{key}_{name}"]
    values = value if isinstance(value, (tuple, list)) else (value,)
    low, high = min(bounds.low, *values), max(bounds.high, *values)
    kind = int if name in INTEGER_FIELDS else float
    st.slider(label, kind(low), kind(high), step=kind(bounds.step), key=f"{key}_{name}", persist_state=persist,
              **kwargs)


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
    share = dict(persist=persist, help="Training applies this step to this share of its clips.")
    a, b = st.columns(2)
    with a:
        _slider(key, "time_shift_sec", "Max time shift (± s)", persist,
                help="Each clip moves by up to this much either way: whole frames, rolled round, when no waveform "
                     "step is on; otherwise zero-filled.")
    with b:
        _slider(key, "gain_db", "Max gain (± dB)", persist)
    st.toggle("Background noise", key=f"{key}_noise_on", persist_state=persist)
    a, b = st.columns(2)
    with a:
        _slider(key, "noise_probability", "Noise: share of training clips", disabled=not on["noise"], **share)
        _slider(key, "snr_db", "Noise SNR range (dB)", persist, disabled=not on["noise"],
                help="Signal-to-noise ratio, drawn in this range for each clip: lower is noisier.")
    with b:
        st.multiselect("Noise colours", NOISE_KINDS, key=f"{key}_noise_kinds", disabled=not on["noise"],
                       persist_state=persist, help="Each noisy clip gets one of these colours at random.")
    a, b = st.columns(2)
    with a:
        _slider(key, "freq_warp", "Max frequency warp (±)", persist,
                help="Vocal-tract length perturbation: the spectrogram's frequency axis is scaled by up to this "
                     "fraction either way (formants move, like another voice). MFCCs get no frequency warp.")
    with b:
        _slider(key, "time_stretch", "Max time stretch (±)", persist,
                help="The spectrogram's time axis is scaled by up to this fraction either way (faster or slower "
                     "speech).")
    st.toggle("Room reverb", key=f"{key}_reverb_on", persist_state=persist,
              help="The clip played in a synthetic room (decaying noise impulse response).")
    a, b = st.columns(2)
    with a:
        _slider(key, "reverb_probability", "Reverb: share of training clips", disabled=not on["reverb"], **share)
    with b:
        _slider(key, "rt60_sec_max", "Max reverb time RT60 (s)", persist, disabled=not on["reverb"],
                help="Time for the echo to fall by 60 dB; each room draws one up to this.")
    st.toggle("Random equaliser (EQ)", key=f"{key}_eq_on", persist_state=persist,
              help="A smooth random gain curve over frequency: the colour of another voice, microphone or room.")
    a, b = st.columns(2)
    with a:
        _slider(key, "eq_probability", "EQ: share of training clips", disabled=not on["eq"], **share)
    with b:
        _slider(key, "eq_db", "Max EQ boost/cut (± dB)", persist, disabled=not on["eq"],
                help="Largest boost or cut at each octave knot (" + ", ".join(f"{f:g}" for f in EQ_KNOTS_HZ)
                     + " Hz).")
    a, b = st.columns(2)
    with a:
        _slider(key, "n_freq_masks", "Frequency masks", persist)
        _slider(key, "n_time_masks", "Time masks", persist)
    with b:
        _slider(key, "freq_mask_param", "Max frequency mask width (bins)", persist)
        _slider(key, "time_mask_param", "Max time mask width (frames)", persist)
    _slider(key, "mixup_alpha", "Mixup α (0: off)", persist,
            help="Blend each example with another one and their labels by the same weight, drawn from Beta(α, α) "
                 "(0.2 is typical).")
    st.radio("Shift, gain, noise, reverb and EQ act on", AUGMENT_DOMAINS, format_func=DOMAINS.get,
             key=f"{key}_domain", horizontal=True, persist_state=persist,
             help="Training applies them to each clip's power spectrogram, cached once (fast: an epoch costs about "
                  "what the model costs), or to the waveform, featurised again every batch (exact, several times "
                  "slower). The two agree within about 1.5 dB per band.")
    return edited_augment(key, initial)
