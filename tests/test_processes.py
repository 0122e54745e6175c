"""lib.processes: the app's helper processes are named, run below the server's priority, and end with it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lib.processes import HELPER_NICENESS, helper_pool

ROOT = Path(__file__).resolve().parents[1]


def test_a_helper_runs_below_the_servers_priority():
    pool = helper_pool("test")
    try:
        assert pool.submit(os.nice, 0).result(timeout=120) == min(19, os.nice(0) + HELPER_NICENESS)
        assert [p.name.startswith("audiowb-test-") for p in pool._processes.values()] == [True]
    finally:
        pool.shutdown()


def test_a_helper_exits_when_its_server_is_killed():
    server = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, sys.argv[1])
        from lib.processes import helper_pool
        pool = helper_pool("test")
        print(pool.submit(os.getpid).result(timeout=120), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean shutdown: the helper must notice by itself
    """)
    done = subprocess.run([sys.executable, "-c", server, str(ROOT)], capture_output=True, text=True, timeout=180)
    helper = int(done.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _running(helper) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(helper), "the helper outlived its server"


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (one that exited and waits to be reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "State:\tZ" not in status
