"""Page test: Train (AppTest). Starts real background jobs on the tiny default built-in set."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.settings import settings

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "train.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _choose_fast_settings(at: AppTest) -> None:
    at.selectbox(key="train_model").set_value("tutorial_cnn")
    at.number_input(key="train_epochs").set_value(1)
    at.select_slider(key="train_batch").set_value(8)
    at.run()
    assert not at.exception, at.exception


def find(job_id):
    from lib.engine.jobs import JOB_QUEUE

    return next(j for j in JOB_QUEUE.jobs if j.job_id == job_id)


def _wait_for_job(at: AppTest, timeout: float = 120.0, job_id: int | None = None):
    """Rerun the page (as the live view's polling does) until the session's job (its latest, or ``job_id``) has
    ended."""
    job_id = job_id if job_id is not None else at.session_state["train_job_id"]
    assert job_id is not None
    job = find(job_id)
    deadline = time.monotonic() + timeout
    while not job.ended:
        assert time.monotonic() < deadline, f"training job {job_id} did not end in {timeout} s"
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    at.run()  # the run after the end draws the result (and reruns once to update the sidebar)
    assert not at.exception, at.exception
    return job


def test_train_page_renders(app_env):
    at = _page()
    assert at.title[0].value == "Train"
    assert at.selectbox(key="train_model").value
    assert not at.button(key="train_start").disabled
    assert at.button(key="train_stop").disabled  # no job yet
    assert any("Start a run" in i.value for i in at.info)
    # the feature summary names the input shape
    assert any("input shape" in m.value for m in at.markdown)


def test_train_start_finishes_and_saves_a_run(app_env, new_runs):
    from lib.engine.runs import list_runs

    at = _page()
    _choose_fast_settings(at)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    job = _wait_for_job(at)
    assert job.state == "finished", job.snapshot().done
    run_id = job.snapshot().done.run_id
    assert any(run_id in s.value for s in at.success), [s.value for s in at.success]
    assert at.session_state["run_id"] == run_id
    assert run_id in [r.run_id for r in list_runs(settings().runs_dir)]
    # the live view drew the step, learning-rate and epoch charts
    assert len(at.get("plotly_chart")) >= 4
    assert not at.button(key="train_start").disabled
    at.button(key="train_stop").click().run()  # stopping an ended run is harmless
    assert not at.exception, at.exception
    assert job.state == "finished" and any(run_id in s.value for s in at.success)


def test_train_diverging_learning_rate_ends_with_an_error(app_env, new_runs):
    at = _page()
    _choose_fast_settings(at)
    at.selectbox(key="train_optimizer").set_value("sgd")
    at.selectbox(key="train_scheduler").set_value("none")
    at.toggle(key="train_lr_type").set_value(True).run()
    at.number_input(key="train_lr_exact").set_value(1e8)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    job = _wait_for_job(at)
    assert job.state == "failed"
    assert any("learning rate" in e.value for e in at.error), [e.value for e in at.error]


def test_train_invalid_setting_shows_an_error(app_env):
    from lib.engine.jobs import JOB_QUEUE

    at = _page()
    at.toggle(key="train_lr_type").set_value(True).run()
    at.number_input(key="train_lr_exact").set_value(0.0)
    n_jobs = len(JOB_QUEUE.jobs)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert any("learning_rate must be a positive" in e.value for e in at.error), [e.value for e in at.error]
    assert len(JOB_QUEUE.jobs) == n_jobs  # nothing was submitted


def test_train_augmentation_edited_here(app_env):
    at = _page()
    assert any("Transform lab:" in c.value for c in at.caption)
    at.radio(key="train_aug_source").set_value("here").run()
    at.toggle(key="train_aug_noise_on").set_value(True).run()
    at.slider(key="train_aug_noise_probability").set_value(0.5)
    at.slider(key="train_aug_mixup_alpha").set_value(0.2)
    at.slider(key="train_aug_n_freq_masks").set_value(0)
    at.run()
    assert not at.exception, at.exception
    summary = next(c.value for c in at.caption if c.value.startswith("Training will use"))
    assert "noise 50%" in summary and "mixup α=0.2" in summary and "freq mask" not in summary


def test_train_equaliser_and_reverb_edited_here(app_env):
    at = _page()
    at.radio(key="train_aug_source").set_value("here").run()
    at.toggle(key="train_aug_eq_on").set_value(True)
    at.toggle(key="train_aug_reverb_on").set_value(True).run()
    at.slider(key="train_aug_eq_probability").set_value(0.5)
    at.slider(key="train_aug_eq_db").set_value(6.0)
    at.slider(key="train_aug_reverb_probability").set_value(0.25)
    at.slider(key="train_aug_rt60_sec_max").set_value(1.0)
    at.run()
    assert not at.exception, at.exception
    summary = next(c.value for c in at.caption if c.value.startswith("Training will use"))
    assert "EQ 50% (±6 dB per octave knot)" in summary and "reverb 25% (RT60 ≤1 s)" in summary, summary
    at.slider(key="train_aug_eq_db").set_value(0.0).run()  # no boost or cut: the EQ is off
    assert "EQ" not in next(c.value for c in at.caption if c.value.startswith("Training will use"))


def test_train_queues_named_runs_behind_a_busy_device_and_cancels_them(app_env, new_runs):
    """Start stays on while the session's run waits: a second job queues behind the first; a run name is checked
    before anything is submitted; a waiting job is cancelled from the list, the shown one with Stop."""
    from lib.data.sources import load_builtin
    from lib.dsp.features import FeatureConfig
    from lib.engine.jobs import JOB_QUEUE
    from lib.engine.train import TrainConfig
    from ui.common import default_builtin_spec

    dataset = load_builtin(default_builtin_spec(), settings().builtin_cache)
    blocker = JOB_QUEUE.submit(dataset, FeatureConfig(), TrainConfig(model="tutorial_cnn", epochs=500, batch_size=4),
                               runs_root=settings().runs_dir, run_id="train-blocker")
    try:
        deadline = time.monotonic() + 60
        while blocker.state == "queued":
            assert time.monotonic() < deadline, "the blocking job did not start"
            time.sleep(0.1)
        at = _page()
        assert any("other training job" in c.value for c in at.caption)
        _choose_fast_settings(at)
        n_jobs = len(JOB_QUEUE.jobs)
        for name, says in (("../escape", "cannot be a run name"), ("default", "already exists"),
                           ("train-blocker", "will save a run called")):
            at.text_input(key="train_run_name").input(name).run()
            at.button(key="train_start").click().run()
            assert any(says in e.value for e in at.error), (name, [e.value for e in at.error])
        assert len(JOB_QUEUE.jobs) == n_jobs  # nothing was submitted
        at.text_input(key="train_run_name").input("queued-first").run()
        at.button(key="train_start").click().run()
        assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
        assert any("Waiting in line: position 1" in i.value for i in at.info), [i.value for i in at.info]
        first = find(at.session_state["train_job_id"])
        assert first.run_id == "queued-first" and at.text_input(key="train_run_name").value == ""
        # Start stays on: a second job (automatic name) waits behind the first
        assert not at.button(key="train_start").disabled and not at.button(key="train_stop").disabled
        at.button(key="train_start").click().run()
        assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
        first_id, second_id = at.session_state["train_jobs"][-2:]
        assert first_id == first.job_id and find(second_id).snapshot().position == 2
        lines = [m.value for m in at.markdown if "· tutorial_cnn ·" in m.value]
        assert len(lines) == 2 and "queued-first" in lines[0] and "position 2" in lines[1], lines
        # while a run is under way its live view comes first, the settings fold away under it
        assert "Settings for the next run" in [e.label for e in at.expander]
        assert at.selectbox(key="train_model").value == "tutorial_cnn"  # the settings are kept inside
        at.button(key=f"train_cancel_{second_id}").click().run()
        assert find(second_id).wait(30) and find(second_id).state == "stopped"
        at.button(key="train_stop").click().run()  # the shown job: the first, still waiting
        job = _wait_for_job(at, timeout=30, job_id=first_id)
        assert job.state == "stopped"
        assert any("Nothing was saved" in w.value for w in at.warning), [w.value for w in at.warning]
    finally:
        blocker.stop()
        blocker.wait(60)


def test_a_pretrained_backbone_offers_fine_tuning_and_counts_parameters(app_env):
    """speech_embedding: a fine-tuning mode (frozen by default), the backbone's learning-rate scale when it trains,
    trainable / frozen counts, and the notes that it reads its own features and (frozen) skips augmentation."""
    at = _page()
    assert not [s for s in at.selectbox if s.key == "train_finetune"]     # the default model has no backbone
    at.selectbox(key="train_model").set_value("speech_embedding").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_finetune").value == "frozen"
    assert not [s for s in at.select_slider if s.key == "train_backbone_lr"]
    note = next(c.value for c in at.caption if "trainable" in c.value)
    assert "frozen parameters" in note and "own features" in note and "augmentation" in note
    trainable = int(note.split("**")[1].split()[0].replace(",", ""))
    at.selectbox(key="train_finetune").set_value("last").run()
    assert at.select_slider(key="train_backbone_lr").value == 0.1
    note = next(c.value for c in at.caption if "trainable" in c.value)
    assert int(note.split("**")[1].split()[0].replace(",", "")) > trainable and "augmentation" not in note
    at.number_input(key="train_steps").set_value(20).run()
    at.button(key="train_start").click().run()                        # the settings reach the job's TrainConfig
    assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
    from lib.engine.jobs import JOB_QUEUE

    job = next(j for j in JOB_QUEUE.jobs if j.job_id == at.session_state["train_job_id"])
    job.stop()  # no need to train: stopped before (or at) its first step
    config = job.train_config
    assert (config.model, config.finetune, config.backbone_lr_scale, config.steps) == ("speech_embedding", "last",
                                                                                       0.1, 20)
    assert job.wait(120)
    if job.snapshot().done.run_path:
        shutil.rmtree(job.snapshot().done.run_path, ignore_errors=True)


def test_an_imagenet_backbone_offline_shows_why_and_trains_from_scratch(app_env, monkeypatch):
    """resnet18 offline: the download button's error says where to put the file and offers training from scratch;
    unticking "Pretrained weights" reaches the job's TrainConfig."""
    from tests.fixtures_datasets import closed_port_url

    monkeypatch.setenv("AUDIOWB_WEIGHTS_MIRROR", closed_port_url("").rstrip("/"))
    at = _page()
    at.selectbox(key="train_model").set_value("resnet18").run()
    assert not at.exception, at.exception
    note = next(c.value for c in at.caption if "trainable" in c.value)
    assert "own features" not in note and at.checkbox(key="train_pretrained").value
    assert any("not on this machine yet" in c.value for c in at.caption)
    at.button(key="train_weights_download").click().run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert "resnet18-f37072fd.pth" in error and "from scratch" in error
    at.checkbox(key="train_pretrained").uncheck().run()
    assert not [b for b in at.button if b.key == "train_weights_download"]
    at.number_input(key="train_steps").set_value(1).run()
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
    from lib.engine.jobs import JOB_QUEUE

    job = next(j for j in JOB_QUEUE.jobs if j.job_id == at.session_state["train_job_id"])
    job.stop()
    assert (job.train_config.model, job.train_config.pretrained, job.train_config.finetune) == ("resnet18", False,
                                                                                               "frozen")
    assert job.wait(120)
    if job.snapshot().done.run_path:
        shutil.rmtree(job.snapshot().done.run_path, ignore_errors=True)


def test_run_embedding_picks_its_backbone_run(app_env):
    """run_embedding: a saved run to build on (app_env's "default"), its counts, and the choice reaches the job."""
    at = _page()
    at.selectbox(key="train_model").set_value("run_embedding").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="train_backbone_run").value == "default"
    note = next(c.value for c in at.caption if "trainable" in c.value)
    assert "own features" in note and "frozen parameters" in note
    at.number_input(key="train_steps").set_value(5).run()
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
    from lib.engine.jobs import JOB_QUEUE

    job = next(j for j in JOB_QUEUE.jobs if j.job_id == at.session_state["train_job_id"])
    job.stop()
    assert (job.train_config.model, job.train_config.backbone_run) == ("run_embedding", "default")
    assert job.wait(120)
    if job.snapshot().done.run_path:
        shutil.rmtree(job.snapshot().done.run_path, ignore_errors=True)
