"""lib.models.weights: the cache, SHA-256 checks, the mirror, resumed downloads and the offline message, against
lib.data.download's loopback server (the ``server`` fixture of tests/conftest.py). No internet."""

from __future__ import annotations

import pytest
import torch

from lib.data.download import DownloadError
from lib.models.weights import (MIRROR_ENV, WeightsUnavailable, fetch_weights, load_state_file, mirror_url, weights_dir,
                         weights_path)
from tests.fixtures_datasets import closed_port_url, sha256_of

URL = "https://download.example.org/models/tiny-0123abcd.pth"


@pytest.fixture
def cache(tmp_path, operator_folders):
    operator_folders(data_dir=tmp_path / "data")
    return weights_dir()


@pytest.fixture
def weights_file(server):
    """A small state dict served at ``/models/tiny-0123abcd.pth``; returns its bytes."""
    path = server.directory / "models" / "tiny-0123abcd.pth"
    path.parent.mkdir(parents=True)
    torch.save({"w": torch.arange(50_000, dtype=torch.float32)}, path)
    return path.read_bytes()


def _mirror(monkeypatch, server):
    monkeypatch.setenv(MIRROR_ENV, server.url("").rstrip("/"))


def test_mirror_url_replaces_scheme_and_host(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert mirror_url(URL) == URL
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:8765/")
    assert mirror_url(URL) == "http://127.0.0.1:8765/models/tiny-0123abcd.pth"
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:8765/mirror")
    assert mirror_url(URL) == "http://127.0.0.1:8765/mirror/models/tiny-0123abcd.pth"


def test_downloads_through_the_mirror_then_hits_the_cache(cache, server, weights_file, monkeypatch):
    _mirror(monkeypatch, server)
    digest = sha256_of(server.directory / "models" / "tiny-0123abcd.pth")
    calls = []
    path = fetch_weights(URL, digest, progress=lambda *a: calls.append(a))
    assert path == cache / "tiny-0123abcd.pth" == weights_path(URL)
    assert path.read_bytes() == weights_file and calls[-1][0] == len(weights_file)
    assert fetch_weights(URL, digest) == path and fetch_weights(URL) == path  # cached: no second request
    assert len(server.gets("models/tiny-0123abcd.pth")) == 1
    assert torch.equal(load_state_file(path)["w"], torch.arange(50_000, dtype=torch.float32))


def test_hash_mismatch_raises_and_names_the_path(cache, server, weights_file, monkeypatch):
    _mirror(monkeypatch, server)
    with pytest.raises(WeightsUnavailable, match="0" * 64) as error:
        fetch_weights(URL, "0" * 64)
    assert str(cache / "tiny-0123abcd.pth") in str(error.value) and "scratch" in str(error.value)
    assert not (cache / "tiny-0123abcd.pth").exists()
    fetch_weights(URL)  # a cached file with another hash is refused too, with the same advice
    with pytest.raises(WeightsUnavailable, match="delete it"):
        fetch_weights(URL, "0" * 64)


def test_resumes_an_interrupted_download(cache, server, weights_file, monkeypatch):
    _mirror(monkeypatch, server)
    server.drop_after = 60_000
    digest = sha256_of(server.directory / "models" / "tiny-0123abcd.pth")
    import lib.data.download

    monkeypatch.setattr(lib.data.download.time, "sleep", lambda s: None)
    assert fetch_weights(URL, digest).read_bytes() == weights_file
    assert [g["range"] for g in server.gets("models/tiny-0123abcd.pth")] == [None, "bytes=60000-"]


def test_offline_says_where_to_put_the_file(cache, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, closed_port_url("").rstrip("/"))
    with pytest.raises(WeightsUnavailable) as error:
        fetch_weights(URL, "a" * 64)
    message = str(error.value)
    assert isinstance(error.value, DownloadError) and error.value.unreachable
    assert str(cache / "tiny-0123abcd.pth") in message and URL in message and "scratch" in message


def test_load_state_file_refuses_what_is_not_a_state_dict(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pt")
    assert set(load_state_file(tmp_path / "wrapped.pt")) == {"weight", "bias"}
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    for name in ("junk.pth", "list.pth", "missing.pth"):
        with pytest.raises(ValueError, match="state dict"):
            load_state_file(tmp_path / name)
