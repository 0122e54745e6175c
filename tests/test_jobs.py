"""Background jobs: start, poll, stop, and one job per device with the rest in line."""

from lib.features import FeatureConfig
from lib.jobs import JobQueue
from lib.runs import load_run
from lib.train import TrainConfig

CONFIG = TrainConfig(model="tutorial_cnn", epochs=30, batch_size=8, device="cpu")


def test_second_job_waits_in_line_and_stop_saves(tiny_dataset, tmp_path):
    queue = JobQueue()
    first = queue.submit(tiny_dataset, FeatureConfig(), CONFIG, runs_root=tmp_path, run_id="first")
    second = queue.submit(tiny_dataset, FeatureConfig(), CONFIG.replace(epochs=1), runs_root=tmp_path, run_id="second")
    # wait until the first is training, then check the line
    for _ in range(600):
        snap = first.snapshot()
        if snap.steps:
            break
        first.wait(0.05)
    assert first.snapshot().state == "running" and second.snapshot().state == "queued"
    assert second.snapshot().position == 1 and queue.active() == [first, second]
    first.stop()
    assert first.wait(60) and second.wait(120)
    assert first.state == "stopped" and second.state == "finished"
    snap = first.snapshot()
    assert 0 < snap.progress <= 1 and snap.done.run_path
    assert load_run(snap.done.run_path).config["status"] == "stopped"


def test_cancel_a_waiting_job(tiny_dataset, tmp_path):
    queue = JobQueue()
    first = queue.submit(tiny_dataset, FeatureConfig(), CONFIG, runs_root=tmp_path)
    waiting = queue.submit(tiny_dataset, FeatureConfig(), CONFIG, runs_root=tmp_path)
    waiting.stop()
    assert waiting.wait(10) and waiting.state == "stopped" and "cancelled" in waiting.snapshot().done.message
    first.stop()
    assert first.wait(60)


def test_failure_is_reported_not_raised(tiny_dataset, tmp_path):
    queue = JobQueue()
    job = queue.submit(tiny_dataset, FeatureConfig(), CONFIG.replace(optimizer="sgd", learning_rate=1e8,
                                                                     scheduler="none"), runs_root=tmp_path)
    assert job.wait(60) and job.state == "failed" and "learning rate" in job.snapshot().done.message
