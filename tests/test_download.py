"""lib.data.download against a loopback HTTP server: progress, resume, checksums, dead URLs, safe extraction, fetching
catalog datasets from fixture archives, and the command line. No internet."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lib.data.catalog import CATALOG, LOADERS
from lib.data.download import DownloadError, archive_path, download, extract, fetch_dataset, main
from tests.fixtures_datasets import (EVIL_KINDS, closed_port_url, make_evil_archive,
                                     make_speech_commands, make_tar, make_yesno, make_zip, sha256_of)

PAYLOAD_SIZE = 300_000


@pytest.fixture
def payload(server):
    data = np.random.default_rng(0).integers(0, 256, PAYLOAD_SIZE, dtype=np.uint8).tobytes()
    (server.directory / "blob.bin").write_bytes(data)
    return data


@pytest.fixture
def yesno_archive(server, tmp_path):
    return make_tar(make_yesno(tmp_path / "src"), server.directory / "waves_yesno.tar.gz")


# ------------------------------------------------------------------------------------------------ download
def test_download_reports_progress_and_records_checksum(server, payload, tmp_path):
    calls = []
    dest = download(server.url("blob.bin"), tmp_path / "out" / "blob.bin",
                    progress=lambda *a: calls.append(a), chunk_size=16_384)
    assert dest.read_bytes() == payload
    assert not (tmp_path / "out" / "blob.bin.part").exists()
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == PAYLOAD_SIZE
    assert all(c[1] == PAYLOAD_SIZE for c in calls)
    assert calls[-1][2] > 0 and calls[-1][3] == 0  # rate, ETA
    digest = sha256_of(dest)
    assert (tmp_path / "out" / "blob.bin.sha256").read_text().split()[0] == digest
    assert download(server.url("blob.bin"), dest, sha256=digest) == dest  # present and verified: no request
    assert len(server.gets("blob.bin")) == 1


def test_checksum_mismatch_deletes_the_file(server, payload, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError) as error:
        download(server.url("blob.bin"), dest, sha256="0" * 64)
    message = str(error.value)
    assert "0" * 64 in message and sha256_of(server.directory / "blob.bin") in message
    assert not dest.exists() and not (tmp_path / "blob.bin.part").exists()


def test_resumes_after_the_connection_drops(server, payload, tmp_path):
    server.drop_after = 100_000  # the first GET is cut after 100 kB
    dest = download(server.url("blob.bin"), tmp_path / "blob.bin", sha256=sha256_of(server.directory / "blob.bin"),
                    chunk_size=8192, retry_wait=0)
    assert dest.read_bytes() == payload
    gets = server.gets("blob.bin")
    assert len(gets) == 2 and gets[0]["range"] is None and gets[1]["range"] == "bytes=100000-"


def test_resumes_an_existing_part_file(server, payload, tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(payload[:1000])
    dest = download(server.url("blob.bin"), tmp_path / "blob.bin")
    assert dest.read_bytes() == payload
    assert [g["range"] for g in server.gets("blob.bin")] == ["bytes=1000-"]


def test_restarts_cleanly_when_the_server_ignores_range(server, payload, tmp_path):
    server.ignore_range = True
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 5000)  # stale bytes that must not survive
    dest = download(server.url("blob.bin"), tmp_path / "blob.bin")
    assert dest.read_bytes() == payload


def test_restarts_when_the_part_is_larger_than_the_file(server, payload, tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(b"x" * (PAYLOAD_SIZE + 10))  # 416 Range Not Satisfiable
    assert download(server.url("blob.bin"), tmp_path / "blob.bin").read_bytes() == payload


def test_gives_up_after_retries_and_keeps_the_part_for_later(server, payload, tmp_path):
    server.drop_after, server.drop_always = 50_000, True
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="resum"):
        download(server.url("blob.bin"), dest, retries=1, retry_wait=0, chunk_size=8192)
    part = tmp_path / "blob.bin.part"
    assert part.stat().st_size == 100_000 and not dest.exists()
    server.drop_after = None
    assert download(server.url("blob.bin"), dest).read_bytes() == payload
    assert server.gets("blob.bin")[-1]["range"] == "bytes=100000-"


def test_dead_url_names_the_url_and_where_to_put_a_manual_copy(tmp_path):
    url = closed_port_url("blob.bin")
    dest = tmp_path / "downloads" / "blob.bin"
    with pytest.raises(DownloadError) as error:
        download(url, dest, timeout=5)
    message = str(error.value)
    assert url in message and str(dest.resolve()) in message
    assert not dest.exists()


def test_http_error_names_the_status(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as error:
        download(server.url("missing.tar.gz"), tmp_path / "missing.tar.gz")
    assert server.url("missing.tar.gz") in str(error.value)


# ------------------------------------------------------------------------------------------------ extract
def test_extracts_tar_and_zip(tmp_path):
    source = make_yesno(tmp_path / "src")
    for archive in (make_tar(source, tmp_path / "a.tar.gz"), make_zip(source, tmp_path / "a.zip")):
        calls = []
        target = extract(archive, tmp_path / f"out-{archive.suffix}", progress=lambda *a: calls.append(a))
        assert sorted(p.name for p in (target / "waves_yesno").iterdir()) == sorted(p.name for p in source.iterdir())
        assert calls and calls[-1][0] == calls[-1][1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left


@pytest.mark.parametrize("kind", EVIL_KINDS)
def test_refuses_members_escaping_the_target(tmp_path, kind):
    archive = make_evil_archive(tmp_path / "arc" / ("evil.zip" if kind.startswith("zip") else "evil.tar.gz"), kind)
    work = tmp_path / "deep" / "er"
    with pytest.raises(DownloadError, match="unsafe"):
        extract(archive, work / "target")
    assert not (work / "target").exists()
    assert not list(work.iterdir())  # the staging folder is gone too
    for escaped in (tmp_path / "evil.txt", tmp_path / "deep" / "evil.txt", tmp_path / "deep" / "evil"):
        assert not escaped.exists()
    assert not os.path.exists("/tmp/audiowb-evil-absolute.txt")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_refuses_an_archive_that_expands_a_hundredfold(tmp_path, kind):
    """A zip bomb: 100 MB of zeros packs into ~100 KB; a dataset's audio packs 1-3 times, never 20."""
    import io
    import tarfile
    import zipfile

    archive = tmp_path / f"bomb.{kind}"
    zeros = bytes(100 * 2**20)
    if kind == "zip":
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("data/zeros.wav", zeros)
    else:
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo("data/zeros.wav")
            info.size = len(zeros)
            tar.addfile(info, io.BytesIO(zeros))
    assert archive.stat().st_size < 2**20
    with pytest.raises(DownloadError, match="zip bomb"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_refuses_a_non_empty_target_and_a_damaged_archive(tmp_path):
    archive = make_tar(make_yesno(tmp_path / "src"), tmp_path / "a.tar.gz")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(DownloadError, match="not empty"):
        extract(archive, tmp_path / "busy")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DownloadError, match="damaged"):
        extract(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ datasets
def test_fetch_dataset_downloads_extracts_then_skips(server, yesno_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOWB_URL_YESNO", server.url("waves_yesno.tar.gz"))
    monkeypatch.setenv("AUDIOWB_SHA256_YESNO", sha256_of(yesno_archive))
    calls = []
    root = fetch_dataset("yesno", tmp_path / "data", progress=lambda *a: calls.append(a))
    assert root == tmp_path / "data" / "yesno" / "waves_yesno"
    assert calls[-1][0] == yesno_archive.stat().st_size
    assert (tmp_path / "data" / "downloads" / "waves_yesno.tar.gz").is_file()
    record = json.loads((tmp_path / "data" / "yesno" / ".audiowb-source.json").read_text())
    assert record["sha256"] == sha256_of(yesno_archive) and record["verified"]
    assert len(LOADERS["yesno"](root)) == 8
    assert fetch_dataset("yesno", tmp_path / "data") == root  # already there: no second request
    assert len(server.gets("waves_yesno.tar.gz")) == 1


def test_fetch_dataset_checks_the_pinned_checksum(server, yesno_archive, tmp_path):
    # The card pins the real archive's SHA-256: the fixture archive does not match it.
    assert CATALOG["yesno"].sha256
    with pytest.raises(DownloadError, match=CATALOG["yesno"].sha256):
        fetch_dataset("yesno", tmp_path / "data", url=server.url("waves_yesno.tar.gz"))
    assert not archive_path("yesno", tmp_path / "data").exists()
    assert not (tmp_path / "data" / "yesno").exists()


def test_fetch_dataset_without_checksum_records_the_computed_one(server, yesno_archive, tmp_path):
    root = fetch_dataset("yesno", tmp_path / "data", url=server.url("waves_yesno.tar.gz"), sha256="")
    record = json.loads((tmp_path / "data" / "yesno" / ".audiowb-source.json").read_text())
    assert record["sha256"] == sha256_of(yesno_archive) and not record["verified"]
    assert root.name == "waves_yesno"


def test_fetch_dataset_dead_url_explains_manual_placement(tmp_path):
    url = closed_port_url("waves_yesno.tar.gz")
    with pytest.raises(DownloadError) as error:
        fetch_dataset("yesno", tmp_path / "data", url=url)
    message = str(error.value)
    expected = (tmp_path / "data" / "downloads" / "waves_yesno.tar.gz").resolve()
    assert url in message and str(expected) in message
    assert "existing_root" in message and "--archive" in message and "AUDIOWB_URL_YESNO" in message


def test_fetch_dataset_uses_a_manual_archive_or_an_existing_copy(tmp_path):
    source = make_yesno(tmp_path / "src")
    archive = make_tar(source, tmp_path / "elsewhere" / "my-copy.tar.gz")
    root = fetch_dataset("yesno", tmp_path / "data", local_archive=archive, sha256="none")
    assert root == tmp_path / "data" / "yesno" / "waves_yesno" and archive.is_file()
    # A manually downloaded archive dropped at the expected path is used as is.
    dropped = archive_path("yesno", tmp_path / "data2")
    dropped.parent.mkdir(parents=True)
    dropped.write_bytes(archive.read_bytes())
    assert fetch_dataset("yesno", tmp_path / "data2", sha256="none").name == "waves_yesno"
    # An existing copy is only checked.
    assert fetch_dataset("yesno", tmp_path / "nowhere", existing_root=tmp_path / "src") == source
    with pytest.raises(DownloadError, match="waves_yesno"):
        fetch_dataset("yesno", existing_root=tmp_path / "elsewhere")
    with pytest.raises(DownloadError, match="not found"):
        fetch_dataset("yesno", tmp_path / "data3", local_archive=tmp_path / "nope.tar.gz")


def test_fetch_a_preset_uses_its_parents_archive(server, tmp_path, monkeypatch):
    make_tar(make_speech_commands(tmp_path / "sc"), server.directory / "speech_commands_v0.02.tar.gz", prefix=".")
    monkeypatch.setenv("AUDIOWB_URL_SPEECH_COMMANDS_V2", server.url("speech_commands_v0.02.tar.gz"))
    monkeypatch.setenv("AUDIOWB_SHA256_SPEECH_COMMANDS_V2", "none")
    root = fetch_dataset("speech_commands_yes_no", tmp_path / "data")
    assert root == tmp_path / "data" / "speech_commands_v2"
    assert LOADERS["speech_commands_yes_no"](root, decode=False).class_names == ["yes", "no"]
    assert fetch_dataset("speech_commands_v2_12", tmp_path / "data") == root
    assert len(server.gets("speech_commands_v0.02.tar.gz")) == 1


def test_command_line(server, yesno_archive, tmp_path, capsys):
    assert main(["--list"]) == 0
    assert "urbansound8k" in capsys.readouterr().out
    code = main(["yesno", "--data-dir", str(tmp_path / "data"), "--url", server.url("waves_yesno.tar.gz"),
                 "--sha256", "none"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "is ready in" in out.out and sha256_of(yesno_archive) in out.out
    assert main(["yesno", "--data-dir", str(tmp_path / "d2"), "--url", closed_port_url()]) == 1
    assert "error:" in capsys.readouterr().err
