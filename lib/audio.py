"""Audio I/O and waveform preprocessing: pure functions on torch tensors.

Decoding and encoding go through ``soundfile`` (libsndfile), which reads WAV, FLAC, OGG/Vorbis and MP3
without ffmpeg. Everything else works on float tensors whose last dimension is time.

Batch convention: where a function works per example, a waveform with three or more dimensions
``(batch, channels, time)`` has a leading batch dimension; a ``(channels, time)`` or ``(time,)`` waveform is
a single clip.

Randomness is split in two steps: ``draw_*`` functions (and ``make_noise``) draw parameters from an explicit
``torch.Generator``, and the functions that apply them (``time_shift``, ``apply_gain``, ``add_noise``) are
deterministic. Example:

    >>> generator = torch.Generator().manual_seed(0)
    >>> shifts = draw_shifts(len(batch), max_shift=1600, generator=generator)
    >>> batch = time_shift(batch, shifts, mode="roll")
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Sequence, Union

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio.functional
from torch import Tensor

__all__ = [
    "ACCEPTED_FORMATS", "NOISE_KINDS", "AudioDecodeError", "MAX_CHANNELS", "MAX_DECODED_SAMPLES",
    "load_audio", "save_wav", "wav_bytes", "duration_seconds",
    "to_mono", "to_channels", "resample", "resample_rates", "MAX_RATE_TERM", "pad_or_trim", "center_pad_or_trim",
    "draw_shifts", "draw_uniform", "seconds_to_samples", "shift_samples", "time_shift",
    "apply_gain", "make_noise", "add_noise", "normalize_peak", "normalize_rms",
]

ACCEPTED_FORMATS: tuple[str, ...] = ("WAV", "FLAC", "OGG", "MP3")
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "brown")

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

_EPS = 1e-12
MAX_CHANNELS = 64                    # more channels than any recording of a classroom needs
MAX_DECODED_SAMPLES = 120_000_000    # samples of all channels decoded at most (480 MB of float32: 2 h of mono 16 kHz)
MAX_RATE_TERM = 1000  # resample between rates whose ratio's terms are at most this (the kernel stays a few MB)
_PAD_MODES = ("left", "center", "random")
_SHIFT_MODES = ("roll", "zero")
# Power spectrum exponent: power ~ 1 / f**exponent.
_NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}


class AudioDecodeError(ValueError):
    """The input could not be decoded as audio (missing, empty, corrupt or not an audio file)."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        where = f" {name!r}" if name else ""
        super().__init__(f"Could not read audio{where}: {reason}. "
                         f"Accepted formats: {', '.join(ACCEPTED_FORMATS)}.")
        self.reason = reason
        self.name = name


# ---------------------------------------------------------------------------------------------- I/O


def _read_source(source: AudioSource) -> tuple[bytes, str | None]:
    """Return the encoded bytes of ``source`` and its name (or None)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioDecodeError("file not found" if not path.exists() else "not a file", str(path))
        return path.read_bytes(), str(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        name = str(name) if isinstance(name, (str, os.PathLike)) else None
        # BytesIO-like objects (Streamlit's UploadedFile included) are decoded whole, whatever the read position.
        data = source.getvalue() if hasattr(source, "getvalue") else source.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise AudioDecodeError("the file object is not opened in binary mode", name)
        return bytes(data), name
    raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")


def load_audio(source: AudioSource) -> tuple[Tensor, int]:
    """Decode an audio file.

    Args:
        source: A path (str or Path), the encoded bytes, or a binary file-like object such as
            ``io.BytesIO`` or a Streamlit ``UploadedFile`` (objects with ``getvalue`` are decoded whole).

    Returns:
        tuple[Tensor, int]: ``waveform`` float32 ``(channels, time)`` with samples in [-1, 1] for integer
        formats, and ``sample_rate`` in Hz.

    Decoding is bounded whatever the header says: at most :data:`MAX_CHANNELS` channels and
    :data:`MAX_DECODED_SAMPLES` samples over all channels are ever decoded.

    Raises:
        AudioDecodeError: The file is missing, empty, not audio, corrupt, holds no samples, or has more
            channels or samples than the limits (the message says how long a recording may be).
    """
    data, name = _read_source(source)
    if not data:
        raise AudioDecodeError("the file is empty", name)
    try:
        with sf.SoundFile(io.BytesIO(data)) as audio:
            channels, sample_rate = audio.channels, audio.samplerate
            if channels > MAX_CHANNELS:
                raise AudioDecodeError(f"it has {channels} channels (at most {MAX_CHANNELS}): mix it down to mono "
                                       "or stereo first", name)
            most = MAX_DECODED_SAMPLES // channels  # frames; a header may lie about its length, so read one more
            samples = audio.read(most + 1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, EOFError) as error:
        if isinstance(error, AudioDecodeError):
            raise
        detail = str(error).split(": ", 1)[-1].strip().rstrip(".") or type(error).__name__
        raise AudioDecodeError(f"not a readable audio file ({detail})", name) from error
    if len(samples) > most:
        raise AudioDecodeError(f"it is too long to classify at once (more than {most / sample_rate / 60:,.0f} "
                               f"minutes at {sample_rate:,} Hz with {channels} channel(s)): cut it into shorter "
                               "files", name)
    if samples.size == 0:
        raise AudioDecodeError("the audio has no samples", name)
    return torch.from_numpy(np.ascontiguousarray(samples.T)), int(sample_rate)  # mono: no copy


def _as_2d(waveform: Tensor) -> Tensor:
    if waveform.ndim == 1:
        return waveform.unsqueeze(0)
    if waveform.ndim != 2:
        raise ValueError(f"expected a (channels, time) or (time,) waveform, got shape {tuple(waveform.shape)}")
    return waveform


def save_wav(destination: str | os.PathLike | BinaryIO, waveform: Tensor, sample_rate: int,
             subtype: str = "PCM_16") -> None:
    """Encode a waveform as WAV.

    A path is written atomically (a temporary file in the same folder, then ``os.replace``), creating
    missing parent folders. For integer subtypes the samples are clipped to [-1, 1].

    Args:
        destination: A file path, or a binary file-like object to write into.
        waveform (Tensor): ``(channels, time)`` or ``(time,)``.
        sample_rate (int): Sample rate in Hz.
        subtype (str): A libsndfile WAV subtype: ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``...

    Returns:
        None
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    samples = _as_2d(waveform).detach().to("cpu", torch.float32)
    if subtype.upper() not in ("FLOAT", "DOUBLE"):
        samples = samples.clamp(-1.0, 1.0)
    frames = samples.T.numpy()  # soundfile wants (time, channels)
    if not isinstance(destination, (str, os.PathLike)):
        sf.write(destination, frames, int(sample_rate), subtype=subtype, format="WAV")
        return
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, frames, int(sample_rate), subtype=subtype, format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def wav_bytes(waveform: Tensor, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    """WAV-encode a waveform in memory (for ``st.audio`` or a download button).

    Args:
        waveform (Tensor): ``(channels, time)`` or ``(time,)``.
        sample_rate (int): Sample rate in Hz.
        subtype (str): WAV subtype, as in :func:`save_wav`.

    Returns:
        bytes: The WAV file.
    """
    buffer = io.BytesIO()
    save_wav(buffer, waveform, sample_rate, subtype=subtype)
    return buffer.getvalue()


def duration_seconds(waveform: Tensor, sample_rate: int) -> float:
    """Duration of a waveform.

    Args:
        waveform (Tensor): ``(..., time)``.
        sample_rate (int): Sample rate in Hz.

    Returns:
        float: ``time / sample_rate`` seconds.
    """
    return waveform.shape[-1] / sample_rate


# ----------------------------------------------------------------------------------- channels and rate


def to_mono(waveform: Tensor) -> Tensor:
    """Average the channels.

    Args:
        waveform (Tensor): ``(..., channels, time)``.

    Returns:
        Tensor: ``(..., 1, time)``.
    """
    if waveform.ndim < 2:
        raise ValueError(f"expected (..., channels, time), got shape {tuple(waveform.shape)}")
    return waveform.mean(dim=-2, keepdim=True)


def to_channels(waveform: Tensor, n_channels: int) -> Tensor:
    """Give a waveform ``n_channels`` channels.

    The same count is returned unchanged; mono is repeated; any other count is mixed down to mono,
    then repeated.

    Args:
        waveform (Tensor): ``(..., channels, time)``.
        n_channels (int): The number of channels wanted (>= 1).

    Returns:
        Tensor: ``(..., n_channels, time)``.
    """
    if n_channels < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels}")
    if waveform.ndim < 2:
        raise ValueError(f"expected (..., channels, time), got shape {tuple(waveform.shape)}")
    if waveform.shape[-2] == n_channels:
        return waveform
    mono = waveform if waveform.shape[-2] == 1 else to_mono(waveform)
    return mono.expand(*mono.shape[:-2], n_channels, mono.shape[-1]).contiguous()


def resample_rates(orig_sr: int, new_sr: int) -> tuple[int, int]:
    """The pair of rates :func:`resample` hands to torchaudio: ``orig_sr / new_sr`` in lowest terms, or, where those
    terms are large (16,001 Hz to 16,000 Hz is 16001/16000, whose sinc kernel needs gigabytes), the nearest ratio of
    terms at most :data:`MAX_RATE_TERM`, which is within 0.1% (the audio plays that much faster or slower).

    Raises:
        ValueError: If a rate is not positive, or no such ratio is within 0.1% (an absurd pair of rates).
    """
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} and {new_sr}")
    g = math.gcd(orig_sr, new_sr)
    if max(orig_sr, new_sr) // g <= MAX_RATE_TERM:
        return orig_sr // g, new_sr // g
    # Bound the larger term: approximate small/large with a denominator of at most MAX_RATE_TERM.
    small, large = sorted((orig_sr, new_sr))
    ratio = Fraction(small, large).limit_denominator(MAX_RATE_TERM)
    if ratio == 0 or abs(float(ratio) * large / small - 1) > 1e-3:
        raise ValueError(f"cannot resample {orig_sr} Hz to {new_sr} Hz in bounded memory: convert the file to a "
                         "common sample rate (8, 16, 22.05, 44.1 or 48 kHz) first")
    terms = (ratio.numerator, ratio.denominator)
    return terms if orig_sr < new_sr else terms[::-1]


def resample(waveform: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Change the sample rate (``torchaudio.functional.resample``, windowed sinc), in bounded memory whatever the
    rates (:func:`resample_rates`).

    Args:
        waveform (Tensor): ``(..., time)`` float.
        orig_sr (int): Current sample rate in Hz.
        new_sr (int): Wanted sample rate in Hz.

    Returns:
        Tensor: ``(..., ceil(time * new_sr / orig_sr))`` (within 0.1% for odd rate pairs); the input itself when the
        rates are equal.
    """
    orig_terms, new_terms = resample_rates(orig_sr, new_sr)
    if orig_terms == new_terms:  # equal rates, or within 0.1% of each other
        return waveform
    return torchaudio.functional.resample(waveform, orig_terms, new_terms)


# ------------------------------------------------------------------------------------ time operations


def _generator_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _gather_time(waveform: Tensor, start: Tensor, n_out: int, wrap: bool) -> Tensor:
    """``out[..., j] = waveform[..., j + start]``, per example, wrapped around or zero outside.

    Args:
        waveform (Tensor): ``(batch, ..., time)`` when ``start`` is ``(batch,)``; ``(..., time)`` when
            ``start`` is a scalar tensor.
        start (Tensor): int64, ``(batch,)`` or ``()``.
        n_out (int): Output length.
        wrap (bool): Index modulo ``time`` (circular) instead of zero-filling outside ``[0, time)``.

    Returns:
        Tensor: ``(..., n_out)``.
    """
    time = waveform.shape[-1]
    start = start.to(waveform.device, torch.int64).reshape(-1)
    batch = start.numel()
    rows = waveform.reshape(batch, -1, time)
    index = start[:, None] + torch.arange(n_out, device=waveform.device)  # (batch, n_out)
    if wrap:
        index = index % time
    else:  # point everything outside the clip at one appended zero
        rows = F.pad(rows, (0, 1))
        index = torch.where((index >= 0) & (index < time), index, time)
    out = rows.gather(-1, index[:, None, :].expand(batch, rows.shape[1], n_out))
    return out.reshape(*waveform.shape[:-1], n_out)


def pad_or_trim(waveform: Tensor, n_samples: int, mode: str = "center",
                generator: torch.Generator | None = None) -> Tensor:
    """Crop or zero-pad the time axis to exactly ``n_samples``.

    Modes: ``"left"`` keeps the start (or pads at the end); ``"center"`` crops the middle (or pads both
    sides equally, the extra sample at the end); ``"random"`` crops at a random offset (or places the clip at
    a random offset inside silence). In ``"random"`` mode a waveform with 3+ dims ``(batch, channels, time)``
    gets an independent offset per example; a ``(channels, time)`` or ``(time,)`` clip gets one offset.

    Args:
        waveform (Tensor): ``(..., time)``.
        n_samples (int): Output length (>= 0).
        mode (str): ``"left"``, ``"center"`` or ``"random"``.
        generator (torch.Generator | None): Source of the random offsets.

    Returns:
        Tensor: ``(..., n_samples)``.
    """
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {_PAD_MODES}, got {mode!r}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    time = waveform.shape[-1]
    if time == n_samples:
        return waveform
    if mode == "center":
        return center_pad_or_trim(waveform, n_samples)
    span = abs(time - n_samples)  # possible offsets: 0..span
    if mode == "random":
        batch = waveform.shape[0] if waveform.ndim >= 3 else 1
        offset = torch.randint(0, span + 1, (batch,), generator=generator,
                               device=_generator_device(generator))
    else:
        offset = torch.tensor(0 if mode == "left" else span // 2)
    # Trimming starts reading at +offset; padding places the clip at +offset, i.e. reads from -offset.
    start = offset if time > n_samples else -offset
    return _gather_time(waveform, start, n_samples, wrap=False)


def center_pad_or_trim(waveform: Tensor, n_samples: int) -> Tensor:
    """Crop the middle ``n_samples`` or zero-pad both sides equally (the extra sample at the end).

    :func:`pad_or_trim` with ``mode="center"``, written without a branch on the input's length (pad by
    ``n_samples`` on each side, then one slice), so that ``torch.export`` and ``torch.jit.trace`` record it
    for any length: the exported models of :mod:`lib.export` fit their input with it.

    Args:
        waveform (Tensor): ``(..., time)``, any ``time >= 1``.
        n_samples (int): Output length (>= 1).

    Returns:
        Tensor: ``(..., n_samples)``, a new tensor.
    """
    excess = waveform.shape[-1] - n_samples  # > 0: trim, < 0: pad
    span = abs(excess)
    # Trim: start at floor(excess / 2). Pad: place the clip at floor(-excess / 2), i.e. start reading at minus
    # that. Only non-negative numbers are divided (ONNX's integer Div truncates, Python's floors), and one of
    # the two terms is 0: (span + excess) / 2 = max(excess, 0), (span - excess) / 2 = max(-excess, 0).
    start = (span + excess) // 2 // 2 - (span - excess) // 2 // 2
    return F.pad(waveform, (n_samples, n_samples)).narrow(-1, n_samples + start, n_samples).contiguous()


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    """``round(seconds * sample_rate)``.

    Args:
        seconds (float): A duration in seconds.
        sample_rate (int): Sample rate in Hz.

    Returns:
        int: The number of samples.
    """
    return int(round(seconds * sample_rate))


def shift_samples(shift: float, sample_rate: int, n_samples: int, unit: str = "sec") -> int:
    """Convert a shift to samples.

    Args:
        shift (float): The shift, in seconds (``unit="sec"``) or as a fraction of the clip
            (``unit="fraction"``).
        sample_rate (int): Sample rate in Hz (used for seconds).
        n_samples (int): Clip length in samples (used for fractions).
        unit (str): ``"sec"`` or ``"fraction"``.

    Returns:
        int: ``round(shift * sample_rate)`` or ``round(shift * n_samples)``.
    """
    if unit == "sec":
        return seconds_to_samples(shift, sample_rate)
    if unit == "fraction":
        return int(round(shift * n_samples))
    raise ValueError(f"unit must be 'sec' or 'fraction', got {unit!r}")


def draw_shifts(batch_size: int, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw integer time shifts uniformly in ``[-max_shift, max_shift]`` samples.

    Args:
        batch_size (int): How many shifts.
        max_shift (int): Largest absolute shift in samples (>= 0).
        generator (torch.Generator | None): Source of randomness.

    Returns:
        Tensor: int64 ``(batch_size,)``, on the generator's device (CPU without one).
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    return torch.randint(-max_shift, max_shift + 1, (batch_size,), generator=generator,
                         device=_generator_device(generator), dtype=torch.int64)


def time_shift(waveform: Tensor, shift: int | Tensor, mode: str = "roll") -> Tensor:
    """Shift along time: positive shifts move the content later (like ``torch.roll``).

    Shifts are in samples; convert seconds or fractions of the clip with :func:`shift_samples`
    (a fraction is ``round(fraction * time)`` samples).

    Args:
        waveform (Tensor): ``(batch, ..., time)`` with a ``(batch,)`` shift, or ``(..., time)`` with
            one shift.
        shift (int | Tensor): Samples; an int or 0-d tensor for the whole tensor, or an int tensor
            ``(batch,)`` with one shift per example.
        mode (str): ``"roll"`` (circular) or ``"zero"`` (what is shifted in is silence).

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    if mode not in _SHIFT_MODES:
        raise ValueError(f"mode must be one of {_SHIFT_MODES}, got {mode!r}")
    shift = torch.as_tensor(shift)
    if shift.is_floating_point():
        raise TypeError("shift must be an integer number of samples (see shift_samples)")
    if shift.ndim > 1 or (shift.ndim == 1 and (waveform.ndim < 2 or shift.numel() != waveform.shape[0])):
        raise ValueError(f"shift of shape {tuple(shift.shape)} does not match waveform {tuple(waveform.shape)}")
    time = waveform.shape[-1]
    if time == 0:
        return waveform
    return _gather_time(waveform, -shift, time, wrap=mode == "roll")


# ------------------------------------------------------------------------------------- gain and noise


def _per_example(value: float | Tensor, waveform: Tensor) -> Tensor:
    """A scalar, or a ``(batch,)`` tensor reshaped to ``(batch, 1, ..., 1)`` to broadcast over ``waveform``."""
    value = torch.as_tensor(value, dtype=waveform.dtype, device=waveform.device)
    if value.ndim == 0:
        return value
    if value.ndim != 1 or waveform.ndim < 2 or value.numel() != waveform.shape[0]:
        raise ValueError(f"expected a scalar or ({waveform.shape[0]},) tensor, got shape {tuple(value.shape)}")
    return value.reshape(-1, *([1] * (waveform.ndim - 1)))


def _example_dims(waveform: Tensor, batched: bool) -> tuple[int, ...]:
    """The dims one example spans: all but the first when batched, else all."""
    return tuple(range(1 if batched else 0, waveform.ndim))


def draw_uniform(batch_size: int, low: float, high: float, generator: torch.Generator | None = None) -> Tensor:
    """Draw floats uniformly in ``[low, high)`` (e.g. SNRs or gains in dB).

    Args:
        batch_size (int): How many values.
        low (float): Lower bound.
        high (float): Upper bound.
        generator (torch.Generator | None): Source of randomness.

    Returns:
        Tensor: float32 ``(batch_size,)``, on the generator's device (CPU without one).
    """
    u = torch.rand(batch_size, generator=generator, device=_generator_device(generator))
    return low + (high - low) * u


def apply_gain(waveform: Tensor, gain_db: float | Tensor) -> Tensor:
    """Multiply by ``10 ** (gain_db / 20)``.

    Args:
        waveform (Tensor): ``(batch, ..., time)`` with a ``(batch,)`` gain, or any shape with a scalar gain.
        gain_db (float | Tensor): Gain in dB; a scalar or a ``(batch,)`` tensor.

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    return waveform * 10.0 ** (_per_example(gain_db, waveform) / 20.0)


def make_noise(shape: int | Sequence[int], kind: str = "white",
               generator: torch.Generator | None = None) -> Tensor:
    """Coloured Gaussian noise, shaped in the frequency domain.

    White noise has a flat power spectrum, pink noise power ~ 1/f and brown noise power ~ 1/f**2
    (the DC bin of coloured noise is zeroed). Each row (last dim) is normalised to unit RMS.

    Args:
        shape (int | Sequence[int]): ``(..., time)``.
        kind (str): ``"white"``, ``"pink"`` or ``"brown"``.
        generator (torch.Generator | None): Source of randomness; the noise is made on its device.

    Returns:
        Tensor: float32 of ``shape``.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    noise = torch.randn(shape, generator=generator, device=_generator_device(generator))
    time = shape[-1]
    if kind != "white" and time > 0:
        spectrum = torch.fft.rfft(noise, dim=-1)
        bins = torch.arange(spectrum.shape[-1], device=noise.device, dtype=noise.dtype)
        amplitude = bins.clamp_min(1.0) ** (-_NOISE_EXPONENT[kind] / 2.0)
        amplitude[0] = 0.0
        noise = torch.fft.irfft(spectrum * amplitude, n=time, dim=-1)
    rms = noise.pow(2).mean(dim=-1, keepdim=True).sqrt()
    return noise / rms.clamp_min(_EPS)


def _fit_length(noise: Tensor, time: int) -> Tensor:
    """Tile or crop ``noise`` ``(..., noise_time)`` to ``(..., time)``."""
    if noise.shape[-1] == time:
        return noise
    if noise.shape[-1] == 0:
        raise ValueError("the noise clip is empty")
    repeats = math.ceil(time / noise.shape[-1])
    return noise.repeat(*([1] * (noise.ndim - 1)), repeats)[..., :time]


def add_noise(waveform: Tensor, noise: Tensor, snr_db: float | Tensor) -> Tensor:
    """Add ``noise`` scaled to a signal-to-noise ratio.

    The noise is scaled so that ``10 * log10(P_signal / P_noise) == snr_db`` per example, powers being mean
    squares over one example: all non-batch dims of a ``(batch, channels, time)`` waveform (or of any
    waveform given a ``(batch,)`` ``snr_db``), the whole clip otherwise. A silent signal gets no noise.

    Args:
        waveform (Tensor): ``(batch, channels, time)``, ``(channels, time)`` or ``(time,)``.
        noise (Tensor): Same shape as ``waveform``, or a ``(time',)`` / ``(channels, time')`` clip that is
            tiled or cropped to ``time`` and broadcast over ``waveform``.
        snr_db (float | Tensor): SNR in dB; a scalar or a ``(batch,)`` tensor.

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    noise = _fit_length(noise.to(waveform.device, waveform.dtype), waveform.shape[-1])
    try:
        noise = noise.broadcast_to(waveform.shape)
    except RuntimeError as error:
        raise ValueError(f"noise of shape {tuple(noise.shape)} does not broadcast to "
                         f"waveform {tuple(waveform.shape)}") from error
    snr = _per_example(snr_db, waveform)
    dims = _example_dims(waveform, batched=waveform.ndim >= 3 or snr.ndim > 0)
    signal_power = waveform.pow(2).mean(dim=dims, keepdim=True)
    noise_power = noise.pow(2).mean(dim=dims, keepdim=True).clamp_min(_EPS)
    scale = torch.sqrt(signal_power / (noise_power * 10.0 ** (snr / 10.0)))
    return waveform + scale * noise


# ------------------------------------------------------------------------------------------ loudness


def normalize_peak(waveform: Tensor, peak: float = 1.0) -> Tensor:
    """Scale so that the largest absolute sample equals ``peak``.

    Per example: a ``(batch, channels, time)`` waveform is normalised per example over (channels, time); a
    ``(channels, time)`` or ``(time,)`` waveform as a whole clip. Silence stays silence.

    Args:
        waveform (Tensor): ``(..., time)``.
        peak (float): Target peak amplitude.

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    dims = _example_dims(waveform, batched=waveform.ndim >= 3)
    current = waveform.abs().amax(dim=dims, keepdim=True)
    return waveform * (peak / current.clamp_min(_EPS))


def normalize_rms(waveform: Tensor, rms_db: float = -20.0) -> Tensor:
    """Scale so that the RMS level equals ``rms_db`` dBFS (``rms = 10 ** (rms_db / 20)``); no clipping.

    Per example: a ``(batch, channels, time)`` waveform is normalised per example over (channels, time); a
    ``(channels, time)`` or ``(time,)`` waveform as a whole clip. Silence stays silence.

    Args:
        waveform (Tensor): ``(..., time)``.
        rms_db (float): Target RMS level in dB relative to full scale.

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    dims = _example_dims(waveform, batched=waveform.ndim >= 3)
    rms = waveform.pow(2).mean(dim=dims, keepdim=True).sqrt()
    return waveform * (10.0 ** (rms_db / 20.0) / rms.clamp_min(_EPS))
