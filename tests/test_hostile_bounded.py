"""Hostile inputs, bounded work: odd sample rates, many channels, long or lying files, NaN samples and archive bombs
cost bounded memory and time, or get a message that says what to do. Through lib (lib.dsp.audio, lib.serving.infer,
lib.serving.detect, lib.data.download) and the command line (lib.serving.predict.main in-process).
"""

from __future__ import annotations

import io
import struct
import tarfile
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

import lib.dsp.audio as audio
from lib.dsp.audio import AudioDecodeError, load_audio, resample, resample_rates
from lib.data.download import DownloadError, extract
from lib.serving.infer import WINDOW_BATCH, Classifier
from lib.serving.predict import main as predict_main
from tests.hostile_common import save_untrained_run, snapshot


def _wav(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _noise(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal((max(1, int(seconds * rate)), channels))).astype(
        np.float32)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An untrained tutorial_cnn run (what it answers does not matter here; what it costs does)."""
    return save_untrained_run(tmp_path_factory.mktemp("runs"), "bounded", class_names=("a", "b"))


@pytest.fixture(scope="module")
def classifier(run_dir):
    return Classifier.from_run(run_dir)


# ------------------------------------------------------------------------------------------- sample rates
ODD_RATES = [16001, 44101, 999983, 22051, 7919, 192001]


@pytest.mark.parametrize("rate", ODD_RATES)
def test_odd_sample_rates_resample_in_bounded_time(rate):
    """A 0.1 s clip at an odd rate: resampled through a ratio of small terms (was 5-64 GB and a traceback)."""
    orig_terms, new_terms = resample_rates(rate, 16000)
    assert max(orig_terms, new_terms) <= audio.MAX_RATE_TERM
    started = time.perf_counter()
    out = resample(torch.zeros(1, max(1, rate // 10)), rate, 16000)
    assert time.perf_counter() - started < 5 and abs(out.shape[-1] - 1600) <= 2


@pytest.mark.parametrize("rate", ODD_RATES[:3])
def test_odd_sample_rate_files_are_classified(classifier, rate):
    prediction = classifier.predict_file(_wav(_noise(0.2, rate), rate))
    assert prediction.n_windows == 1 and np.isfinite(prediction.probabilities).all()


@pytest.mark.parametrize("rate", [1, 3, 7])
def test_absurd_sample_rates_get_a_message(classifier, run_dir, tmp_path, capsys, rate):
    with pytest.raises(ValueError, match="convert the file to a common sample rate"):
        classifier.predict(torch.zeros(1, 100), rate)
    wav = tmp_path / f"rate{rate}.wav"
    wav.write_bytes(_wav(_noise(40, rate), rate))
    assert predict_main([str(run_dir), str(wav)]) == 1
    assert "common sample rate" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("channels", [65, 200])
def test_too_many_channels_are_refused_before_decoding(channels):
    with pytest.raises(AudioDecodeError, match=f"{channels} channels"):
        load_audio(_wav(_noise(0.01, 8000, channels), 8000))


def test_a_recording_longer_than_the_decode_limit_is_refused(monkeypatch):
    monkeypatch.setattr(audio, "MAX_DECODED_SAMPLES", 16000)
    with pytest.raises(AudioDecodeError, match="too long .* cut it into shorter files"):
        load_audio(_wav(_noise(2.0, 16000), 16000))
    waveform, rate = load_audio(_wav(_noise(0.5, 16000), 16000))  # under the limit: decoded whole
    assert waveform.shape == (1, 8000)
    with pytest.raises(AudioDecodeError, match="too long"):  # the limit counts every channel
        load_audio(_wav(_noise(0.6, 16000, 2), 16000))


def test_a_header_that_lies_about_its_length_costs_nothing():
    data = bytearray(_wav(_noise(0.1, 16000), 16000))
    index = data.find(b"data")
    data[index + 4:index + 8] = struct.pack("<I", 0x7FFFFFF0)  # "2 GB of samples follow"
    data[4:8] = struct.pack("<I", 0x7FFFFFF8)
    waveform, _ = load_audio(bytes(data))
    assert waveform.shape == (1, 1600)


@pytest.mark.parametrize("data,words", [(b"", "empty"), (b"hello, I am a text file", "not a readable audio file"),
                                        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "not a readable audio file"),
                                        (bytes(range(256)) * 64, "not a readable audio file")])
def test_what_is_not_audio_gets_a_message(run_dir, tmp_path, capsys, data, words):
    with pytest.raises(AudioDecodeError, match=words):
        load_audio(data)
    file = tmp_path / "upload.wav"
    file.write_bytes(data)
    assert predict_main([str(run_dir), str(file)]) == 1 and words in capsys.readouterr().err


def test_nan_samples_get_a_message(classifier):
    samples = _noise(0.2, 16000)
    samples[100] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        classifier.predict_file(_wav(samples, 16000, subtype="FLOAT"))


# ------------------------------------------------------------------------------------------- long recordings
def test_long_recordings_are_classified_in_bounded_batches(classifier, monkeypatch):
    seconds = 200  # 399 timeline windows and a window per burst: more than one batch
    t = np.arange(seconds * 16000) / 16000
    samples = (0.001 * np.random.default_rng(1).standard_normal(len(t))).astype(np.float32)
    burst = (t % 2.0) < 0.4
    samples[burst] += (0.3 * np.sin(2 * np.pi * 440 * t[burst])).astype(np.float32)
    sizes = []
    real = classifier.clip_probabilities

    def counting(clips):
        sizes.append(len(clips))
        return real(clips)

    monkeypatch.setattr(classifier, "clip_probabilities", counting)
    prediction = classifier.predict(torch.from_numpy(samples), 16000)
    assert prediction.n_windows == 399 and len(prediction.detections) == 100
    assert max(sizes) <= WINDOW_BATCH and sum(sizes) == 399 + 100


def test_sound_levels_measured_in_chunks_equal_all_at_once(monkeypatch):
    import lib.serving.detect as detect

    samples = np.random.default_rng(2).standard_normal(16000 * 3 + 123).astype(np.float32) * np.repeat(
        np.array([0.001, 0.5, 0.001, 0.3]), (16000 * 3 + 123) // 4 + 1)[:16000 * 3 + 123].astype(np.float32)
    whole = detect._frame_levels_db(samples, 16000)
    monkeypatch.setattr(detect, "LEVEL_CHUNK_FRAMES", 7)
    assert np.array_equal(detect._frame_levels_db(samples, 16000), whole)
    assert detect.sound_segments(samples, 16000) == detect.sound_segments(samples.astype(np.float64), 16000)


# ------------------------------------------------------------------------------------------- archives
def _zip(path, members: dict[str, bytes], symlinks: dict[str, str] | None = None):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return path


def _tar(path, members: dict[str, bytes], links: dict[str, str] | None = None, device: str | None = None):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        if device:
            info = tarfile.TarInfo(device)
            info.type = tarfile.CHRTYPE
            tar.addfile(info)
    return path


ARCHIVES = {
    "zip-dot-dot": (lambda p: _zip(p / "a.zip", {"ok/a.txt": b"a", "../evil.txt": b"x"}), "outside"),
    "zip-absolute": (lambda p: _zip(p / "a.zip", {"/tmp/evil.txt": b"x"}), "absolute"),
    "zip-link-out": (lambda p: _zip(p / "a.zip", {"ok/a.txt": b"a"}, {"ok/l": "../../etc/passwd"}), "outside"),
    "zip-bomb": (lambda p: _zip(p / "a.zip", {"zeros.wav": bytes(4_000_000)}), "zip bomb"),
    "tar-dot-dot": (lambda p: _tar(p / "a.tar.gz", {"../../evil.txt": b"x"}), "outside"),
    "tar-link-absolute": (lambda p: _tar(p / "a.tar.gz", {"a.txt": b"a"}, {"l": "/etc/passwd"}), "absolute"),
    "tar-device": (lambda p: _tar(p / "a.tar.gz", {"a.txt": b"a"}, device="dev"), "device"),
    "tar-bomb": (lambda p: _tar(p / "a.tar.gz", {"zeros.wav": bytes(4_000_000)}), "zip bomb"),
    "not-an-archive": (lambda p: (p / "a.zip").write_bytes(b"PK\x03\x04 truncated") and p / "a.zip", "damaged"),
}


@pytest.mark.parametrize("case", list(ARCHIVES))
def test_hostile_archives_extract_nothing(tmp_path, monkeypatch, case):
    import lib.data.download as download

    monkeypatch.setattr(download, "EXPANSION_SLACK_BYTES", 0)  # a 4 MB bomb stands for a 1 GB one
    make, words = ARCHIVES[case]
    (tmp_path / "in").mkdir()
    archive = make(tmp_path / "in")
    (tmp_path / "data").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(DownloadError, match=words):
        extract(archive, tmp_path / "data" / "set")
    assert snapshot(tmp_path) == before  # nothing extracted, no staging folder left


@pytest.mark.parametrize("rate", [48000, 44100, 8000, 44101])
def test_long_recordings_are_resampled_a_block_at_a_time_as_if_whole(monkeypatch, rate):
    monkeypatch.setattr(audio, "RESAMPLE_BLOCK_SECONDS", 1.0)
    samples = torch.from_numpy(_noise(7.3, rate)[:, 0])
    whole, blocks = resample(samples, rate, 16000), audio.resample_long(samples, rate, 16000)
    assert blocks.shape == whole.shape and float((blocks - whole).abs().max()) < 1e-6
    stereo = torch.stack([samples, -samples])  # (channels, time): blocks along the last axis
    assert torch.allclose(audio.resample_long(stereo, rate, 16000)[1], -blocks, atol=1e-6)
