"""The HTTP API (lib.serving.serve) through FastAPI's TestClient, and its command line on 127.0.0.1."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from lib.dsp.audio import wav_bytes
from lib.serving.infer import Classifier
from lib.serving.serve import ServeLimits, create_app, load_classifier, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def classifier(tiny_run):
    return Classifier.from_run(tiny_run)


@pytest.fixture(scope="module")
def client(classifier):
    return TestClient(create_app(classifier, ServeLimits(max_file_mb=0.5, max_files=3, max_duration_sec=4)))


def _encoded(waveform: torch.Tensor, rate: int, format: str) -> bytes:
    """``waveform`` (channels, time) encoded as WAV, FLAC, OGG or MP3 by soundfile."""
    buffer = io.BytesIO()
    sf.write(buffer, waveform.T.numpy(), rate, format=format)
    return buffer.getvalue()


def test_health_and_model_info(client, classifier):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/model").json()
    assert info["run_id"] == "tiny-export" and info["backend"] == "torch"
    assert info["class_names"] == classifier.class_names and info["sample_rate"] == 16000
    assert info["limits"] == {"max_file_mb": 0.5, "max_files": 3, "max_duration_sec": 4}


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/health", "/model"} <= set(paths)


def test_predict_one_file_matches_lib_infer(client, classifier, tiny_dataset):
    data = wav_bytes(tiny_dataset.waveforms[5], 16000)
    response = client.post("/predict?top=2", files={"files": ("yes.wav", data, "audio/wav")})
    assert response.status_code == 200, response.text
    body = response.json()
    (result,) = body["results"]
    expected = classifier.predict_file(data).top(2)
    assert result["file"] == "yes.wav" and [t["class_name"] for t in result["top"]] == [c for c, _ in expected]
    np.testing.assert_allclose([t["probability"] for t in result["top"]], [p for _, p in expected], atol=1e-5)
    assert result["duration_sec"] == pytest.approx(1.0) and result["n_windows"] == 1
    assert 0 < result["latency_ms"] <= body["latency_ms"]


def test_predict_batch_of_formats(client, classifier, tiny_dataset):
    """Several files in one request, in their order: WAV, FLAC and OGG (44.1 kHz stereo, 2.5 s: 4 windows)."""
    from lib.dsp.audio import resample

    long = torch.cat([tiny_dataset.waveforms[i] for i in (0, 30, 60)], dim=-1)[..., :40000]  # (1, 2.5 s)
    stereo = resample(torch.cat([long, long]), 16000, 44100)
    files = [("files", ("a.wav", _encoded(tiny_dataset.waveforms[1], 16000, "WAV"), "audio/wav")),
             ("files", ("b.flac", _encoded(tiny_dataset.waveforms[31], 16000, "FLAC"), "audio/flac")),
             ("files", ("c.ogg", _encoded(stereo, 44100, "OGG"), "audio/ogg"))]
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["file"] for r in results] == ["a.wav", "b.flac", "c.ogg"]
    assert [len(r["top"]) for r in results] == [3, 3, 3]
    assert results[2]["n_windows"] == 4 and results[2]["duration_sec"] == pytest.approx(2.5, abs=1e-3)
    for (_, (_, data, _)), result in zip(files, results):
        assert result["top"][0]["class_name"] == classifier.predict_file(data).top_class


def test_predict_mp3(client, tiny_dataset):
    try:
        data = _encoded(tiny_dataset.waveforms[2], 16000, "MP3")
    except (sf.LibsndfileError, TypeError, ValueError) as error:  # a libsndfile built without MP3
        pytest.skip(f"this libsndfile cannot write MP3: {error}")
    response = client.post("/predict", files={"files": ("d.mp3", data, "audio/mpeg")})
    assert response.status_code == 200, response.text


def test_limits_and_bad_input(client, tiny_dataset):
    clip = wav_bytes(tiny_dataset.waveforms[0], 16000)
    too_many = client.post("/predict", files=[("files", (f"{i}.wav", clip, "audio/wav")) for i in range(4)])
    assert too_many.status_code == 413 and "the limit is 3" in too_many.json()["detail"]
    big = wav_bytes(torch.zeros(1, 300_000), 16000)  # 600 kB > 0.5 MB
    too_big = client.post("/predict", files={"files": ("big.wav", big, "audio/wav")})
    assert too_big.status_code == 413 and "limit of 0.5 MB" in too_big.json()["detail"]
    huge = client.post("/predict", content=b"x" * 2_000_000,
                       headers={"content-type": "multipart/form-data; boundary=x"})
    assert huge.status_code == 413 and "the limit is 3 files of at most 0.5 MB" in huge.json()["detail"]
    long = wav_bytes(torch.zeros(1, 5 * 8000), 8000)  # 5 s, small as a file
    too_long = client.post("/predict", files={"files": ("long.wav", long, "audio/wav")})
    assert too_long.status_code == 422 and "lasts 5.0 s; the limit is 4 s" in too_long.json()["detail"]
    not_audio = client.post("/predict", files={"files": ("notes.txt", b"hello", "text/plain")})
    assert not_audio.status_code == 422 and "'notes.txt'" in not_audio.json()["detail"]
    assert "Accepted formats: WAV, FLAC, OGG, MP3" in not_audio.json()["detail"]
    assert client.post("/predict?top=9", files={"files": ("a.wav", clip, "audio/wav")}).status_code == 422
    assert client.post("/predict").status_code == 422  # no file


def test_serves_an_onnx_export(tiny_onnx_export, classifier, tiny_dataset):
    data = wav_bytes(tiny_dataset.waveforms[40], 16000)
    for int8, backend in ((False, "onnx"), (True, "onnx-int8")):
        with TestClient(create_app(load_classifier(tiny_onnx_export, int8=int8))) as export_client:
            assert export_client.get("/model").json()["backend"] == backend
            result = export_client.post("/predict", files={"files": ("x.wav", data, "audio/wav")}).json()
        probability = result["results"][0]["top"][0]["probability"]
        expected = classifier.predict_file(data)
        assert result["results"][0]["top"][0]["class_name"] == expected.top_class
        if not int8:
            assert probability == pytest.approx(expected.top_probability, abs=1e-4)


def test_limits_are_checked():
    with pytest.raises(ValueError, match="max_files"):
        ServeLimits(max_files=0)
    with pytest.raises(ValueError, match="max_duration_sec"):
        ServeLimits(max_duration_sec=float("inf"))


def test_command_line_errors(tiny_run, capsys):
    assert main(["no/such/run"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tiny_run), "--int8"]) == 2
    assert "int8 needs an ONNX export" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_command_line_serves_on_loopback(tiny_onnx_export, tiny_dataset):
    """``python -m lib.serving.serve EXPORT`` answers on 127.0.0.1 (its default host) until stopped."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "lib.serving.serve", str(tiny_onnx_export), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert json.load(response) == {"status": "ok"}
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the server did not start in 90 s"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=10) as response:
            assert json.load(response)["backend"] == "onnx"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in output
