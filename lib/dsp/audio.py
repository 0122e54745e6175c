"""Audio I/O and waveform preprocessing: pure functions on torch tensors.

Decoding and encoding go through ``soundfile`` (libsndfile), which reads WAV, FLAC, OGG/Vorbis and MP3
without ffmpeg. Everything else works on float tensors whose last dimension is time.

Batch convention: where a function works per example, a waveform with three or more dimensions
``(batch, channels, time)`` has a leading batch dimension; a ``(channels, time)`` or ``(time,)`` waveform is
a single clip.

Augmentation (time shift, gain, noise, reverb, EQ) is in :mod:`lib.augment`.
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio.transforms
from torch import Tensor, nn

__all__ = [
    "AUDIO_EXTENSIONS", "ACCEPTED_FORMATS", "INT16_SCALE", "AudioDecodeError", "MAX_CHANNELS", "MAX_DECODED_SAMPLES",
    "load_audio", "save_wav", "wav_bytes", "to_int16", "from_int16",
    "to_mono", "to_channels", "resample", "resample_rates", "MAX_RATE_TERM", "pad_or_trim", "center_pad_or_trim",
    "resample_long", "RESAMPLE_BLOCK_SECONDS", "StreamResampler", "fit_clip",
]

#: The audio files the workbench reads (``soundfile``), as file name suffixes: folders, uploads, recordings.
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
#: The same formats, as named to people ("WAV", ...).
ACCEPTED_FORMATS: tuple[str, ...] = tuple(suffix[1:].upper() for suffix in AUDIO_EXTENSIONS)
#: int16 sample ``k`` is the float ``k / INT16_SCALE`` (soundfile's and libsndfile's reading convention).
INT16_SCALE = 32768

AudioSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

MAX_CHANNELS = 64                    # more channels than any recording of a classroom needs
MAX_DECODED_SAMPLES = 120_000_000    # samples of all channels decoded at most (480 MB of float32: 2 h of mono 16 kHz)
MAX_RATE_TERM = 1000  # resample between rates whose ratio's terms are at most this (the kernel stays a few MB)
RESAMPLE_BLOCK_SECONDS = 60.0  # a long recording is resampled about a minute at a time (lib.dsp.audio.resample_long)
_PAD_MODES = ("left", "center", "random")


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
    plain = _plain_pcm16_wav(data)
    if plain is not None:
        return plain
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


def _plain_pcm16_wav(data: bytes) -> tuple[Tensor, int] | None:
    """The samples of a canonical 16-bit PCM WAV (mono or stereo; its 44-byte header is RIFF, a 16-byte ``fmt ``
    chunk, then ``data`` to the end of the file, as :func:`save_wav` and most tools write it), read without
    libsndfile in under half the time per file (a built-in set is thousands of them), the very float32 values
    (``int16 / INT16_SCALE``, as :func:`from_int16` and libsndfile scale them). None for any other file
    (:func:`load_audio` decodes it)."""
    if len(data) < 46 or data[:4] != b"RIFF" or data[8:16] != b"WAVEfmt " or data[36:40] != b"data":
        return None
    fmt_size, fmt, channels, rate, _, block, bits = struct.unpack_from("<IHHIIHH", data, 16)
    size = struct.unpack_from("<I", data, 40)[0]
    if (fmt_size, fmt, bits) != (16, 1, 16) or channels not in (1, 2) or block != 2 * channels or rate < 1 \
            or size != len(data) - 44 or size % block or size // 2 > MAX_DECODED_SAMPLES:
        return None
    samples = np.frombuffer(data, dtype="<i2", offset=44).reshape(-1, channels).T  # (channels, time) int16
    # from_int16's scale, in numpy: one pass that also copies the read-only bytes (1.7x faster than via torch)
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32) / np.float32(INT16_SCALE)), int(rate)


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


def to_int16(waveform: Tensor) -> Tensor:
    """Float samples as int16: ``round(x * INT16_SCALE)`` clipped to ``[-32768, 32767]`` (an int16 that
    :func:`from_int16` made comes back exactly).

    Args:
        waveform (Tensor): float, any shape.

    Returns:
        Tensor: int16, the same shape.
    """
    return (waveform * INT16_SCALE).round().clamp(-32768, 32767).to(torch.int16)


def from_int16(samples: Tensor) -> Tensor:
    """int16 samples as float32 ``k / INT16_SCALE``, in [-1, 1).

    Args:
        samples (Tensor): int16, any shape.

    Returns:
        Tensor: float32, the same shape.
    """
    return samples.to(torch.float32) / INT16_SCALE


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


@functools.lru_cache(maxsize=32)
def _resampler(orig_terms: int, new_terms: int, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A ``torchaudio.transforms.Resample`` whose sinc kernel is computed once per rate pair, device and dtype
    (in float64, then cast to ``dtype``), shared by every caller and thread."""
    kernel_dtype = torch.float64 if dtype == torch.float64 else None
    with torch.inference_mode(False):  # a normal kernel even when first asked for under inference mode
        return torchaudio.transforms.Resample(orig_terms, new_terms, dtype=kernel_dtype).to(device=device, dtype=dtype)


def resample(waveform: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Change the sample rate (torchaudio's windowed sinc, its kernel computed once per rate pair), in bounded
    memory whatever the rates (:func:`resample_rates`).

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
    return _resampler(orig_terms, new_terms, waveform.device, waveform.dtype)(waveform)


def resample_long(waveform: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """:func:`resample` of a long ``(..., time)`` recording, about :data:`RESAMPLE_BLOCK_SECONDS` at a time.

    Each block is resampled with enough neighbouring samples on both sides for torchaudio's sinc kernel (its
    ``lowpass_filter_width`` 6 and ``rolloff`` 0.99), starting on a multiple of the ratio's input term, so the result
    matches resampling the whole recording (to float rounding) while the padded copies torchaudio makes stay one
    block long instead of the recording's length.

    Returns:
        Tensor: ``(..., ceil(time * new / orig))`` for the ratio ``orig / new`` of :func:`resample_rates`; a clip
        shorter than two blocks is simply :func:`resample`'d.
    """
    orig, new = resample_rates(orig_sr, new_sr)
    block = max(1, round(RESAMPLE_BLOCK_SECONDS * orig_sr / orig)) * orig  # input samples, a multiple of orig
    length = waveform.shape[-1]
    if orig == new or length <= 2 * block:
        return resample(waveform, orig_sr, new_sr)
    context = _resample_context(orig, new)
    out = torch.empty(*waveform.shape[:-1], math.ceil(new * length / orig), dtype=waveform.dtype,
                      device=waveform.device)
    for start in range(0, length, block):
        lo = start - context
        piece = waveform[..., max(lo, 0):min(start + block + context, length)]
        if lo < 0:
            piece = torch.nn.functional.pad(piece, (-lo, 0))
        first, last = start // orig * new, min((start + block) // orig * new, out.shape[-1])
        offset = context // orig * new
        out[..., first:last] = resample(piece, orig_sr, new_sr)[..., offset:offset + last - first]
    return out


def _resample_context(orig: int, new: int) -> int:
    """Input samples a piece needs on each side to resample like the whole signal: the reach of torchaudio's sinc
    kernel (``lowpass_filter_width`` 6, ``rolloff`` 0.99) for the ratio ``orig / new`` in lowest terms, rounded up
    to a multiple of ``orig`` so that pieces start on the output grid."""
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))
    return (width // orig + 2) * orig


class StreamResampler:
    """:func:`resample` for a stream that arrives in chunks (a microphone's blocks): the same samples as resampling
    the whole stream at once (to float rounding), a few milliseconds behind.

    Each :meth:`push` keeps the input the sinc kernel still needs (0.5 ms from 48 kHz to 16 kHz; 40 ms from
    44.1 kHz, whose ratio 441/160 has a long period) and returns the output samples that are final. Memory stays a
    chunk long whatever the stream's length.

    Args:
        orig_sr: The stream's sample rate in Hz.
        new_sr: The wanted rate in Hz (the ratio as :func:`resample_rates` makes it).

    Raises:
        ValueError: If a rate is not positive or the pair cannot be resampled in bounded memory.
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        self.orig_sr, self.new_sr = int(orig_sr), int(new_sr)
        self._orig, self._new = resample_rates(self.orig_sr, self.new_sr)
        self._context = _resample_context(self._orig, self._new)
        self._pending = torch.zeros(self._context)  # the input from `context` before the next output's position

    def push(self, chunk: Tensor) -> Tensor:
        """The next ``(time,)`` float samples at ``orig_sr`` in; the resampled ``(time',)`` samples now final out
        (fewer than ``time * new_sr / orig_sr`` at first, the rest follows with the next chunks)."""
        chunk = torch.as_tensor(chunk, dtype=torch.float32).reshape(-1)
        if self._orig == self._new:
            return chunk
        pending = torch.cat([self._pending, chunk])
        ready = (len(pending) - 2 * self._context) // self._orig * self._orig  # inputs whose outputs are final
        if ready <= 0:
            self._pending = pending
            return chunk.new_zeros(0)
        offset, n_out = self._context // self._orig * self._new, ready // self._orig * self._new
        out = resample(pending[:ready + 2 * self._context], self.orig_sr, self.new_sr)[offset:offset + n_out]
        self._pending = pending[ready:]
        return out


def fit_clip(waveform: Tensor, sample_rate: int, target_rate: int, num_samples: int | None = None) -> Tensor:
    """Make the clip a model reads: mix the channels to mono, resample to ``target_rate``, then centre pad with
    silence or centre trim to ``num_samples``, in that order (mixing first: resampling is linear, and one
    channel costs less to resample than two). Training data, caches, inference and every page fit clips here.

    Args:
        waveform (Tensor): ``(..., channels, time)`` float, or ``(time,)`` for one mono clip.
        sample_rate (int): Its sample rate in Hz.
        target_rate (int): The model's sample rate in Hz.
        num_samples (int | None): The clip length in samples; None keeps the resampled length (a recording to
            be cut into windows).

    Returns:
        Tensor: ``(..., 1, num_samples)`` (``(1, num_samples)`` for a ``(time,)`` input); with ``num_samples``
        None, ``(..., 1, time')``, ``time'`` being ``ceil(time * target_rate / sample_rate)``.

    Raises:
        ValueError: If a rate is not positive, ``num_samples`` is below 1, or the waveform has no samples.
    """
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    if waveform.ndim == 1:
        waveform = waveform[None]
    if waveform.shape[-1] == 0:
        raise ValueError(f"the waveform has no samples (shape {tuple(waveform.shape)})")
    mono = waveform if waveform.shape[-2] == 1 else to_mono(waveform)
    mono = resample_long(mono, sample_rate, target_rate)  # a long recording a minute at a time: bounded memory
    return mono if num_samples is None else center_pad_or_trim(mono, num_samples)


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
    for any length: the exported models of :mod:`lib.serving.export` fit their input with it.

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
