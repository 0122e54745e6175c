"""A throwaway PostgreSQL server on loopback for the tests that share a sweep between workers over SQL.

The ``postgres_url`` fixture starts one server per test session in a temporary folder (``initdb`` + ``pg_ctl``,
listening on 127.0.0.1 only, trust authentication, a free port) and stops it at the end. PostgreSQL refuses to run as
root: as root the server runs as the ``postgres`` system user that Debian's package creates. When no server binary is
present the tests that use it are skipped with a message; CI installs Debian's ``postgresql`` first
(``.ci/ensure-postgres``), so there they always run.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["postgres_url", "server_binaries"]

_USER = "audiowb"
_DATABASE = "sweeps"


def server_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None when PostgreSQL's server is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    return next((Path(p) for p in folders if (Path(p) / "initdb").exists()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    """``command`` run as the ``postgres`` user when we are root (the server refuses root), else as is."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], **kwargs) -> None:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed ({done.returncode}): {done.stderr.strip()[-800:]}")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://audiowb@127.0.0.1:PORT/sweeps``) of a fresh server's empty database."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server is not installed (Debian: apt-get install postgresql; CI runs "
                    ".ci/ensure-postgres): the sweep-over-PostgreSQL test needs it")
    if os.geteuid() == 0:
        try:
            server_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' system user to run the server as")
    folder = Path(tempfile.mkdtemp(prefix="audiowb-pg-"))
    if os.geteuid() == 0:
        os.chown(folder, server_user.pw_uid, server_user.pw_gid)
    data, port = folder / "data", _free_port()
    _run([str(binaries / "initdb"), "-D", str(data), "-U", _USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
    _run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
          f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    try:
        _create_database(port)
        yield f"postgresql+psycopg://{_USER}@127.0.0.1:{port}/{_DATABASE}"
    finally:
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _create_database(port: int) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user=_USER, dbname="postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {_DATABASE}")
