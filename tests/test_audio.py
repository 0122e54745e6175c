"""Unit tests for lib.dsp.audio (fast, CPU only)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from lib.dsp import audio
from lib.dsp.audio import AudioDecodeError

SR = 16000


def tone(freq: float = 440.0, sample_rate: int = SR, seconds: float = 0.5, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sample_rate * seconds)) / sample_rate
    return amplitude * torch.sin(2 * math.pi * freq * t)


def stereo_clip() -> torch.Tensor:
    return torch.stack([tone(440.0), tone(660.0, amplitude=0.25)])  # (2, time)


def encode(waveform: torch.Tensor, fmt: str, sample_rate: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform.T.numpy(), sample_rate, format=fmt)
    return buffer.getvalue()


def can_write(fmt: str) -> bool:
    try:
        encode(tone()[None], fmt)
        return True
    except Exception:
        return False


# ------------------------------------------------------------------------------------------------ I/O

# Lossless formats must round-trip to within 16-bit quantisation; lossy ones only keep shape and rate.
FORMATS = [("WAV", "wav", 1e-4), ("FLAC", "flac", 1e-4), ("OGG", "ogg", None),
           pytest.param("MP3", "mp3", None, marks=pytest.mark.skipif(not can_write("MP3"), reason="no MP3 encoder"))]


@pytest.mark.parametrize("fmt, suffix, atol", FORMATS)
@pytest.mark.parametrize("how", ["path", "str", "bytes", "bytearray", "bytesio"])
def test_load_round_trip(tmp_path, fmt, suffix, atol, how):
    clip = stereo_clip()
    data = encode(clip, fmt)
    path = tmp_path / f"clip.{suffix}"
    path.write_bytes(data)
    source = {"path": path, "str": str(path), "bytes": data, "bytearray": bytearray(data),
              "bytesio": io.BytesIO(data)}[how]
    waveform, sample_rate = audio.load_audio(source)
    assert sample_rate == SR
    assert waveform.dtype == torch.float32
    assert waveform.ndim == 2 and waveform.shape[0] == 2
    if atol is not None:
        assert waveform.shape == clip.shape
        torch.testing.assert_close(waveform, clip, atol=atol, rtol=0)
    else:  # lossy codecs may add a little priming/padding
        assert abs(waveform.shape[1] - clip.shape[1]) < 0.1 * SR


def test_load_bytesio_after_read_position_moved():
    buffer = io.BytesIO(encode(tone()[None], "WAV"))
    buffer.read()  # e.g. a Streamlit rerun after a previous decode
    waveform, _ = audio.load_audio(buffer)
    assert waveform.shape == (1, tone().numel())


@pytest.mark.parametrize("channels", [1, 2])
def test_plain_pcm16_wav_is_read_without_libsndfile_to_the_same_values(channels):
    """A canonical 16-bit WAV (what save_wav writes: a built-in set is thousands) takes the fast path, and gives
    libsndfile's very float32 values; a WAV with another chunk before its data goes through libsndfile."""
    buffer = io.BytesIO()
    audio.save_wav(buffer, torch.rand(channels, 999, generator=torch.Generator().manual_seed(0)) * 2 - 1, 22050)
    data = buffer.getvalue()
    reference, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert audio._plain_pcm16_wav(data) is not None
    waveform, sample_rate = audio.load_audio(data)
    assert sample_rate == rate == 22050 and waveform.is_contiguous()
    assert torch.equal(waveform, torch.from_numpy(np.ascontiguousarray(reference.T)))
    with_chunk = data[:12] + b"LIST\x04\x00\x00\x00abcd" + data[12:]
    with_chunk = with_chunk[:4] + (len(with_chunk) - 8).to_bytes(4, "little") + with_chunk[8:]
    assert audio._plain_pcm16_wav(with_chunk) is None
    assert torch.equal(audio.load_audio(with_chunk)[0], waveform)


def test_save_wav_round_trip_path_and_file_object(tmp_path):
    clip = stereo_clip()
    path = tmp_path / "new" / "folder" / "out.wav"
    audio.save_wav(path, clip, SR)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["out.wav"]  # no temp file left behind
    waveform, sample_rate = audio.load_audio(path)
    assert sample_rate == SR
    torch.testing.assert_close(waveform, clip, atol=1e-4, rtol=0)

    buffer = io.BytesIO()
    audio.save_wav(buffer, tone(), SR, subtype="FLOAT")
    waveform, _ = audio.load_audio(buffer.getvalue())
    assert waveform.shape == (1, tone().numel())
    torch.testing.assert_close(waveform[0], tone())


def test_save_wav_clips_pcm_and_wav_bytes():
    loud = torch.tensor([[2.0, -3.0, 0.5]])
    data = audio.wav_bytes(loud, SR)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    waveform, _ = audio.load_audio(data)
    torch.testing.assert_close(waveform, torch.tensor([[1.0, -1.0, 0.5]]), atol=1e-4, rtol=0)


def test_save_wav_rejects_bad_shape():
    with pytest.raises(ValueError):
        audio.wav_bytes(torch.zeros(1, 2, 10), SR)


def _assert_decode_error(source, *words):
    with pytest.raises(AudioDecodeError) as info:
        audio.load_audio(source)
    message = str(info.value)
    for fmt in audio.ACCEPTED_FORMATS:
        assert fmt in message
    for word in words:
        assert word in message
    return message


def test_decode_errors(tmp_path):
    wav = encode(tone()[None], "WAV")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(wav[:30])
    _assert_decode_error(truncated, "truncated.wav")

    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    _assert_decode_error(noise, "noise.wav")

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    _assert_decode_error(empty, "empty")
    _assert_decode_error(b"", "empty")

    text = tmp_path / "notes.wav"
    text.write_text("these are not the samples you are looking for\n" * 20)
    _assert_decode_error(text, "notes.wav")
    _assert_decode_error(io.BytesIO(text.read_bytes()))

    _assert_decode_error(tmp_path / "missing.wav", "file not found")


def test_zero_length_audio_is_an_error():
    _assert_decode_error(encode(torch.zeros(1, 0), "WAV"), "no samples")


def test_decode_error_is_value_error():
    assert issubclass(AudioDecodeError, ValueError)
    assert audio.ACCEPTED_FORMATS == ("WAV", "FLAC", "OGG", "MP3")


# ------------------------------------------------------------------------------------ channels / rate


def test_to_mono_and_to_channels_shapes():
    clip = stereo_clip()
    mono = audio.to_mono(clip)
    assert mono.shape == (1, clip.shape[1])
    torch.testing.assert_close(mono[0], clip.mean(0))
    assert audio.to_mono(torch.zeros(4, 3, 10)).shape == (4, 1, 10)

    two = audio.to_channels(mono, 2)
    assert two.shape == (2, clip.shape[1])
    torch.testing.assert_close(two[0], two[1])
    assert audio.to_channels(clip, 2) is clip
    torch.testing.assert_close(audio.to_channels(clip, 1), mono)
    assert audio.to_channels(torch.zeros(4, 3, 10), 2).shape == (4, 2, 10)
    assert audio.to_channels(torch.zeros(4, 1, 10), 5).shape == (4, 5, 10)


def test_resample_keeps_frequency():
    clip = tone(440.0, sample_rate=44100, seconds=1.0)[None]
    out = audio.resample(clip, 44100, 16000)
    assert out.shape == (1, 16000)
    assert out.dtype == torch.float32
    spectrum = torch.fft.rfft(out[0]).abs()
    peak_hz = spectrum.argmax().item() * 16000 / out.shape[-1]
    assert abs(peak_hz - 440.0) <= 1.0
    assert audio.resample(clip, 44100, 44100) is clip


@pytest.mark.parametrize("orig_sr, new_sr, terms", [(44100, 16000, (441, 160)), (48000, 16000, (3, 1)),
                                                     (16001, 16000, (1, 1)), (999_983, 16000, (125, 2))])
def test_resample_rates_stay_small_and_close(orig_sr, new_sr, terms):
    """Odd rates (16,001 Hz once cost 5 GB) resample through a nearby ratio of small terms, within 0.1%."""
    assert audio.resample_rates(orig_sr, new_sr) == terms
    a, b = terms
    assert max(a, b) <= audio.MAX_RATE_TERM and abs((b / a) / (new_sr / orig_sr) - 1) <= 1e-3


def test_odd_rates_resample_in_bounded_memory():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    clip = tone(440.0, sample_rate=44101, seconds=0.5)[None]
    out = audio.resample(clip, 44101, 16000)
    assert abs(out.shape[-1] - 8000) <= 8                                      # within 0.1% of the exact length
    spectrum = torch.fft.rfft(out[0]).abs()
    assert abs(spectrum.argmax().item() * 16000 / out.shape[-1] - 440.0) <= 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000   # KiB: well under 200 MB more
    same = audio.resample(clip, 16001, 16000)
    assert same is clip                                                        # 16001/16000 ~ 1: left as it is


def test_absurd_rates_are_refused_with_a_message():
    with pytest.raises(ValueError, match="common sample rate"):
        audio.resample(torch.zeros(1, 10), 3, 16000)
    with pytest.raises(ValueError, match="positive"):
        audio.resample(torch.zeros(1, 10), 0, 16000)


def test_resample_kernel_is_computed_once_and_works_under_inference_mode_and_autograd():
    import torchaudio

    clip = stereo_clip()
    assert torch.equal(audio.resample(clip, 44100, 16000), torchaudio.transforms.Resample(441, 160)(clip))
    with torch.inference_mode():
        audio.resample(torch.rand(1, 100), 12000, 16000)  # the first kernel of a pair made in inference mode
    x = torch.rand(1, 1200, requires_grad=True)
    audio.resample(x, 12000, 16000).sum().backward()  # ... is a normal tensor outside it
    assert x.grad.shape == (1, 1200)
    assert audio.resample(clip.double(), 44100, 16000).dtype == torch.float64


# ---------------------------------------------------------------------------------------- the clip a model reads


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100])
@pytest.mark.parametrize("shape", [(1, None), (2, None), (3, 2, None)])
def test_fit_clip_is_mono_then_resample_then_centre(rate, shape):
    waveform = torch.rand(*shape[:-1], int(rate * 0.7), generator=torch.Generator().manual_seed(rate)) - 0.5
    out = audio.fit_clip(waveform, rate, 16000, 16000)
    assert out.shape == (*shape[:-2], 1, 16000)
    expected = audio.pad_or_trim(audio.resample(audio.to_mono(waveform), rate, 16000), 16000, mode="center")
    assert torch.equal(out, expected)  # one order, bit for bit
    longer = audio.fit_clip(waveform, rate, 16000, 4000)  # trimmed: the middle
    assert torch.equal(longer, audio.pad_or_trim(audio.resample(audio.to_mono(waveform), rate, 16000), 4000))
    whole = audio.fit_clip(waveform, rate, 16000)  # no length: the recording at the model's rate
    assert whole.shape == (*shape[:-2], 1, math.ceil(waveform.shape[-1] * 16000 / rate))


def test_fit_clip_of_a_mono_vector_and_bad_input():
    x = tone(seconds=0.25)
    assert torch.equal(audio.fit_clip(x, SR, SR, 8000), audio.pad_or_trim(x[None], 8000))  # (time,) -> (1, 8000)
    assert torch.equal(audio.fit_clip(x, SR, SR), x[None])
    with pytest.raises(ValueError, match="num_samples"):
        audio.fit_clip(x, SR, SR, 0)
    with pytest.raises(ValueError, match="no samples"):
        audio.fit_clip(torch.zeros(2, 0), SR, SR, 100)
    with pytest.raises(ValueError, match="positive"):
        audio.fit_clip(x, 0, SR, 100)


def test_int16_scale_round_trips_and_clips():
    k = torch.arange(-32768, 32768, dtype=torch.int16)
    assert torch.equal(audio.to_int16(audio.from_int16(k)), k)  # every int16 comes back exactly
    assert audio.from_int16(k).min() == -1.0 and audio.from_int16(k).max() == 32767 / 32768
    assert audio.to_int16(torch.tensor([1.0, 2.0, -1.0, -3.0, 0.5])).tolist() == [32767, 32767, -32768, -32768,
                                                                                  16384]
    samples = np.array([[-32768], [-1], [0], [12345], [32767]], dtype=np.int16)
    buffer = io.BytesIO()
    sf.write(buffer, samples, SR, subtype="PCM_16", format="WAV")
    decoded, _ = audio.load_audio(buffer.getvalue())  # soundfile reads int16 k as k / 32768 too
    assert torch.equal(audio.to_int16(decoded), torch.from_numpy(samples.T.copy()))


def test_one_list_of_audio_formats():
    assert audio.AUDIO_EXTENSIONS == (".wav", ".flac", ".ogg", ".mp3")
    assert audio.ACCEPTED_FORMATS == ("WAV", "FLAC", "OGG", "MP3")


# ---------------------------------------------------------------------------------------- pad / trim


@pytest.mark.parametrize("mode", ["left", "center", "random"])
@pytest.mark.parametrize("shape", [(100,), (2, 100), (3, 2, 100)])
@pytest.mark.parametrize("n_samples", [40, 100, 157])
def test_pad_or_trim_lengths(mode, shape, n_samples):
    waveform = torch.randn(shape)
    out = audio.pad_or_trim(waveform, n_samples, mode=mode, generator=torch.Generator().manual_seed(0))
    assert out.shape == (*shape[:-1], n_samples)
    assert out.dtype == waveform.dtype


def test_pad_or_trim_left_and_center_content():
    x = torch.arange(1.0, 11.0)  # 1..10
    torch.testing.assert_close(audio.pad_or_trim(x, 4, "left"), torch.tensor([1.0, 2, 3, 4]))
    torch.testing.assert_close(audio.pad_or_trim(x, 4, "center"), torch.tensor([4.0, 5, 6, 7]))
    torch.testing.assert_close(audio.pad_or_trim(x[:3], 6, "left"), torch.tensor([1.0, 2, 3, 0, 0, 0]))
    torch.testing.assert_close(audio.pad_or_trim(x[:3], 6, "center"), torch.tensor([0.0, 1, 2, 3, 0, 0]))


def _offsets(out: torch.Tensor, trimming: bool) -> list[int]:
    """Per-example offsets of cropped/placed rows whose samples were 1-based indices (1, 2, 3, ...)."""
    rows = out[:, 0]
    return [int(row[0]) - 1 if trimming else int(row.nonzero()[0]) for row in rows]


@pytest.mark.parametrize("n_samples, trimming", [(50, True), (400, False)])
def test_pad_or_trim_random_per_example(n_samples, trimming):
    batch = torch.arange(1.0, 201.0).expand(16, 2, 200)  # 16 identical examples
    out = audio.pad_or_trim(batch, n_samples, "random", generator=torch.Generator().manual_seed(1))
    again = audio.pad_or_trim(batch, n_samples, "random", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, again)
    torch.testing.assert_close(out[:, 0], out[:, 1])  # channels of one example share the offset
    offsets = _offsets(out, trimming)
    assert len(set(offsets)) > 1
    for offset, row in zip(offsets, out[:, 0]):
        if trimming:
            torch.testing.assert_close(row, batch[0, 0, offset:offset + n_samples])
        else:
            torch.testing.assert_close(row[offset:offset + 200], batch[0, 0])
            assert row.abs().sum() == batch[0, 0].sum()  # the rest is silence


@pytest.mark.parametrize("time", [1, 2, 5, 6, 9, 10, 11, 12, 17, 40])
@pytest.mark.parametrize("n_samples", [5, 10])
def test_center_pad_or_trim_matches_slicing(time, n_samples):
    """The branch-free centre fit equals plain slicing: the middle kept, or the clip placed at floor(pad / 2)."""
    x = torch.arange(1, time + 1, dtype=torch.float32).expand(2, 3, time)
    if time >= n_samples:
        start = (time - n_samples) // 2
        expected = x[..., start:start + n_samples]
    else:
        expected = torch.zeros(2, 3, n_samples)
        offset = (n_samples - time) // 2
        expected[..., offset:offset + time] = x
    torch.testing.assert_close(audio.center_pad_or_trim(x, n_samples), expected)
    torch.testing.assert_close(audio.pad_or_trim(x, n_samples, "center"), expected)
