"""Load test: eight browser sessions at once on one server (AppTest instances in threads).

Each session opens the app, uploads a clip and has it classified on the Inference page, changes its own training
settings and starts a training run, all at the same time; then every session waits for its own run. Checked:
every script run is answered without an exception or error, every answer is the one the model gives on its own,
the trainings wait in line (lib.engine.jobs) and are all saved, each session ends on its own run and settings and never
sees another's, and a new session still starts on the shipped default run. The peak memory of the server process
(and of it with its training processes) is printed and written to ``test-output/sessions-load.json``:
``.venv/bin/python -m pytest tests/test_sessions.py -s`` (docs/reliability.md, "Load test").

The sessions share what one server shares: one process, its caches, one (mock) Streamlit runtime with one script
cache, and the job queue. AppTest swaps a mock runtime, a config patch and a script cache in and out around each
run, which concurrent runs would undo for each other, so the test installs one of each for the whole load.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
N_SESSIONS = 8
TIMEOUT_SEC = 180.0   # one script run, under load
JOBS_TIMEOUT_SEC = 480.0  # all trainings, one after the other (each is a fresh process: seconds to start)
LEARNING_RATES = (1e-3, 2e-3, 5e-3, 1e-2)  # each session picks its own
REPORT = ROOT / "test-output" / "sessions-load.json"


# ------------------------------------------------------------------------------------------ harness
@contextmanager
def one_server():
    """One Streamlit runtime and config for every AppTest run in this block (as one server has)."""
    import streamlit.testing.v1.app_test as app_test
    import streamlit.testing.v1.local_script_runner as local_script_runner
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1.util import patch_config_options

    runtime = MagicMock(spec=Runtime)
    runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    runtime.cache_storage_manager = MemoryCacheStorageManager()
    runtime.dataframe_source_mgr = DataframeSourceManager()
    runtime.bidi_component_registry = BidiComponentManager()
    runtime.bidi_component_registry.discover_and_register_components(start_file_watching=False)

    class Sink:  # what AppTest sets and resets around each run lands here, not on the shared runtime
        _instance = None

    script_cache = ScriptCache()  # a server compiles each page once, under the cache's lock (concurrent compiles
    #                              hit CPython 3.11's "AST constructor recursion depth mismatch")
    app_test.Runtime, app_test.patch_config_options = Sink, lambda overrides: _nothing()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: script_cache
    Runtime._instance = runtime
    try:
        with patch_config_options({"global.appTest": True}):
            yield
    finally:
        app_test.Runtime, app_test.patch_config_options = Runtime, patch_config_options
        app_test.ScriptCache = local_script_runner.ScriptCache = ScriptCache
        Runtime._instance = None


@contextmanager
def _nothing():
    yield


class MemorySampler:
    """Samples the resident memory of this process and of its child processes (training jobs) every 50 ms."""

    def __init__(self) -> None:
        self.peak_self_mb = 0.0
        self.peak_total_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    @staticmethod
    def _rss_mb(pid: int | str) -> float:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _children(self) -> list[str]:
        me, found = str(os.getpid()), []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:  # the parent's pid
                found.append(stat.parent.name)
        return found

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            own = self._rss_mb("self")
            total = own + sum(self._rss_mb(pid) for pid in self._children())
            self.peak_self_mb, self.peak_total_mb = max(self.peak_self_mb, own), max(self.peak_total_mb, total)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def step(run, what: str) -> AppTest:
    """One script run (``run``: an AppTest's bound ``run``), answered: no exception element, no error message."""
    at = run()
    assert not at.exception, f"{what}: {at.exception}"
    assert not at.error, f"{what}: {[e.value for e in at.error]}"
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# --------------------------------------------------------------------------------------------- test
@pytest.fixture
def clips(app_env) -> list[tuple[str, bytes, str]]:
    """One built-in clip per session: name, WAV bytes and the class the default run answers on its own."""
    from lib.dsp.audio import load_audio
    from lib.serving.infer import Classifier

    paths = sorted(Path(app_env["data_dir"], "builtin").glob("**/*.wav"))[::7][:N_SESSIONS]
    assert len(paths) == N_SESSIONS
    classifier = Classifier.from_run(app_env["run_path"])
    return [(p.name, p.read_bytes(), classifier.predict(*load_audio(p.read_bytes())).top_class) for p in paths]


@pytest.fixture
def new_runs(app_env):
    """Removes the runs this test trained."""
    runs_dir = Path(app_env["runs_dir"])
    before = {p.name for p in runs_dir.iterdir()}
    yield runs_dir
    for path in runs_dir.iterdir():
        if path.name not in before:
            shutil.rmtree(path, ignore_errors=True)


def session(i: int, clip: tuple[str, bytes, str], start: threading.Barrier, log: dict) -> None:
    """One student: open the app, classify a clip, set their own training settings and start a run."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_SEC)
    start.wait()
    step(at.run, "home")
    assert at.session_state["run_id"] == "default"
    step(at.switch_page("app_pages/inference.py").run, "inference")
    name, data, expected = clip
    step(at.file_uploader(key="inference_files").set_value((name, data, "audio/wav")).run, "classify")
    assert metric(at, "Top class") == expected, f"session {i}: {metric(at, 'Top class')} for {name}, not {expected}"
    step(at.switch_page("app_pages/train.py").run, "train page")
    at.selectbox(key="train_model").set_value("tutorial_cnn")
    at.number_input(key="train_epochs").set_value(1)
    at.select_slider(key="train_lr").set_value(LEARNING_RATES[i % len(LEARNING_RATES)])
    at.select_slider(key="train_batch").set_value(16)
    step(at.number_input(key="train_seed").set_value(1000 + i).run, "settings")
    step(at.button(key="train_start").click().run, "start")
    from lib.engine.jobs import JOB_QUEUE

    job = next(j for j in JOB_QUEUE.jobs if j.job_id == at.session_state["train_job_id"])
    log[i] = {"at": at, "requests": 6, "job": job, "position": job.snapshot().position or 0}


def test_eight_sessions_at_once(app_env, clips, new_runs):
    from lib.engine.runs import list_runs

    log: dict[int, dict] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(N_SESSIONS)

    def worker(i: int) -> None:
        try:
            session(i, clips[i], start, log)
        except BaseException as error:  # noqa: BLE001: reported below
            errors.append(error)
            start.abort()

    baseline_mb = MemorySampler._rss_mb("self")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    with MemorySampler() as memory, one_server():
        threads = [threading.Thread(target=worker, args=(i,), name=f"session-{i}") for i in range(N_SESSIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT_SEC)
        assert not errors, errors
        assert len(log) == N_SESSIONS
        submitted = time.monotonic() - began
        jobs = {i: entry["job"] for i, entry in log.items()}
        assert len({job.job_id for job in jobs.values()}) == N_SESSIONS  # one job each, none shared
        waited = max(entry["position"] for entry in log.values())
        deadline = time.monotonic() + JOBS_TIMEOUT_SEC
        for job in jobs.values():
            assert job.wait(max(deadline - time.monotonic(), 0.1)), f"job {job.job_id} did not end"
        trained = time.monotonic() - began
        for i, entry in log.items():  # each session polls its own job once more and sees the result
            step(entry["at"].run, f"session {i} result")
            entry["requests"] += 1
        fresh = step(AppTest.from_file(APP, default_timeout=TIMEOUT_SEC).run, "a new session")
    elapsed = time.monotonic() - began
    cpu_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu, training_cpu = ((a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime) for a, b in zip(cpu_after,
                                                                                                     cpu_before))

    saved = {r.run_id for r in list_runs(new_runs) if r.error is None}
    for i, entry in log.items():
        job, at = jobs[i], entry["at"]
        done = job.snapshot().done
        assert job.state == "finished" and done.run_id in saved, (i, job.state, done)
        assert (job.train_config.seed, job.train_config.learning_rate) == (1000 + i, LEARNING_RATES[i % 4])  # its own
        assert at.session_state["run_id"] == done.run_id  # its own run, and nobody else's
        assert at.session_state["train_seed"] == 1000 + i
        assert any(done.run_id in s.value and "your active run" in s.value for s in at.success)
        assert f"**{done.run_id}**" in " ".join(md.value for md in at.sidebar.markdown)
    assert len({jobs[i].snapshot().done.run_id for i in log}) == N_SESSIONS
    assert fresh.session_state["run_id"] == "default"  # a new session is not handed anyone's run

    figures = {"sessions": N_SESSIONS, "script_runs": sum(e["requests"] for e in log.values()) + 1,
               "trainings_saved": len(saved & {jobs[i].snapshot().done.run_id for i in log}),
               "max_queue_position": waited, "submitted_sec": round(submitted, 1), "trained_sec": round(trained, 1),
               "total_sec": round(elapsed, 1), "cores": os.cpu_count(),
               "load_average": round(os.getloadavg()[0], 1), "server_cpu_sec": round(server_cpu, 1),
               "training_cpu_sec_per_job": round(training_cpu / N_SESSIONS, 1),
               "server_rss_before_mb": round(baseline_mb), "peak_server_rss_mb": round(memory.peak_self_mb), "peak_with_training_rss_mb": round(memory.peak_total_mb)}
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nload test: {json.dumps(figures)}")
