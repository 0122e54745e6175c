"""Page test (AppTest) of app_pages/record.py: live prediction, silence, and building a dataset of recordings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from lib.dsp.audio import wav_bytes
from lib.settings import settings

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "record.py"


def speech(app_env, index: int = 0) -> bytes:
    """WAV bytes of a built-in clip (a spoken word)."""
    clips = sorted((Path(app_env["data_dir"]) / "builtin").glob("**/*.wav"))
    assert clips, "the app_env fixture should have generated the built-in set"
    return clips[index].read_bytes()


def silence(seconds: float = 1.0) -> bytes:
    return wav_bytes(torch.zeros(int(seconds * 16000)), 16000)


@pytest.fixture
def recordings(app_env):
    """The recordings folder with the test dataset removed before and after."""
    folder = settings().recordings_dir
    shutil.rmtree(folder / "test-ds", ignore_errors=True)
    yield folder
    shutil.rmtree(folder / "test-ds", ignore_errors=True)


def open_page() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def record(at: AppTest, data: bytes, name: str = "rec.wav") -> AppTest:
    at.audio_input(key="recorder").set_value((name, data, "audio/wav"))
    at.run()
    assert not at.exception, at.exception
    return at


def add_to(at: AppTest, dataset: str, label: str) -> AppTest:
    at.text_input(key="record_dataset").set_value(dataset)
    at.text_input(key="record_new_class").set_value(label)
    at.run()
    assert not at.exception, at.exception
    button = at.button(key="record_add")
    assert not button.disabled, [e.value for e in at.error] + [c.value for c in at.caption]
    button.click()
    at.run()
    assert not at.exception, at.exception
    return at


def class_names(app_env) -> list[str]:
    from lib.engine.runs import load_run

    return load_run(app_env["run_path"]).record.class_names


def test_renders_with_the_default_run_and_its_words(app_env):
    at = open_page()
    assert not at.error
    assert at.selectbox(key="record_run").value == "default"
    assert at.audio_input(key="recorder").sample_rate == 16000
    say = [md.value for md in at.markdown if md.value.startswith("Say one of")]
    assert say and all(word in say[0] for word in class_names(app_env))
    assert at.text_input(key="record_dataset").value == "my-recordings"
    assert at.button(key="record_add").disabled  # nothing recorded yet


def test_a_recording_is_classified(app_env):
    at = open_page()
    at.slider(key="record_threshold").set_value(0.0)  # 0: always the likeliest class (the test run is a weak one)
    record(at, speech(app_env))
    assert not at.error and not at.warning
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Heard"] in class_names(app_env)
    assert metrics["Confidence"].endswith("%") and metrics["Latency"].endswith("ms")
    assert len(at.get("plotly_chart")) >= 2  # probabilities and spectrogram


def test_a_silent_recording_warns_and_is_not_classified(app_env):
    at = record(open_page(), silence())
    assert any("silent" in w.value and "microphone" in w.value for w in at.warning)
    assert not at.metric
    at.text_input(key="record_new_class").set_value("quiet")
    at.run()
    assert at.button(key="record_add").disabled  # silent recordings are not saved


def test_an_empty_recording_warns(app_env):
    at = record(open_page(), wav_bytes(torch.zeros(0), 16000))
    assert any("silent" in w.value for w in at.warning)
    assert not at.error and not at.metric


def test_add_a_recording_to_a_new_class(app_env, recordings):
    at = record(open_page(), speech(app_env))
    add_to(at, "test-ds", "clap")
    files = list((recordings / "test-ds" / "clap").glob("*.wav"))
    assert len(files) == 1
    assert any("clap: 1" in s.value for s in at.success)
    assert at.selectbox(key="record_class").value == "clap"
    assert at.button(key="record_add").disabled  # the same recording cannot be saved twice
    # undo removes it again
    at.button(key="record_undo").click()
    at.run()
    assert not at.exception, at.exception
    assert not list((recordings / "test-ds" / "clap").glob("*.wav"))


def test_an_invalid_class_name_is_an_error(app_env, recordings):
    at = record(open_page(), speech(app_env))
    at.text_input(key="record_dataset").set_value("test-ds")
    at.text_input(key="record_new_class").set_value("../evil")
    at.run()
    assert not at.exception, at.exception
    assert any("not allowed" in e.value for e in at.error)
    assert at.button(key="record_add").disabled
    assert not (recordings / "test-ds").exists()


def test_use_the_folder_as_the_active_dataset(app_env, recordings):
    at = record(open_page(), speech(app_env, 0))
    add_to(at, "test-ds", "clap")
    assert at.button(key="record_use_dataset").disabled  # one class is not enough to train
    record(at, speech(app_env, 1), name="rec2.wav")
    add_to(at, "test-ds", "snap")
    assert {p.name for p in (recordings / "test-ds").iterdir()} == {"clap", "snap"}
    use = at.button(key="record_use_dataset")
    assert not use.disabled
    use.click()
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["dataset_source"] == {"kind": "folder", "path": str(recordings / "test-ds")}
    assert any("active dataset" in s.value for s in at.success)
    # the app's cached copy of the folder follows new recordings (its cache key fingerprints the folder)
    from ui.common import _fingerprint, _load_dataset, source_key

    source = at.session_state["dataset_source"]
    key = source_key(source)
    assert _load_dataset(key, _fingerprint(source)).class_counts() == {"clap": 1, "snap": 1}
    record(at, speech(app_env, 2), name="rec3.wav")
    add_to(at, "test-ds", "clap")
    assert _load_dataset(key, _fingerprint(source)).class_counts() == {"clap": 2, "snap": 1}


def test_no_run_still_lets_you_record(app_env, operator_folders, tmp_path, recordings):
    operator_folders(runs_dir=tmp_path)
    at = record(open_page(), speech(app_env))
    assert any("train" in w.value.lower() for w in at.warning)
    assert not at.metric
    add_to(at, "test-ds", "clap")
    assert len(list((recordings / "test-ds" / "clap").glob("*.wav"))) == 1



def test_an_unsure_answer_is_nothing_heard(app_env):
    """Above the likeliest class's probability, the confidence threshold answers "nothing heard" and says why."""
    from lib.serving.background import CONFIDENCE_THRESHOLD, NOTHING_HEARD

    at = open_page()
    assert at.slider(key="record_threshold").value == CONFIDENCE_THRESHOLD
    at.slider(key="record_threshold").set_value(0.95)
    record(at, speech(app_env))
    confidence = float(next(m.value for m in at.metric if m.label == "Confidence").rstrip("%")) / 100
    heard = next(m.value for m in at.metric if m.label == "Heard")
    assert heard == (NOTHING_HEARD if confidence < 0.95 else heard)
    if heard == NOTHING_HEARD:
        assert any("confidence threshold" in c.value for c in at.caption)


def words_of(app_env, label: str) -> list[Path]:
    """The built-in set's clips of one word (synthetic voices), sorted."""
    return sorted((Path(app_env["data_dir"]) / "builtin").glob(f"**/{label}/*.wav"))


def test_background_class_gallery_and_training_on_my_recordings(app_env, recordings):
    """A few takes of 2 words, the one-click background class, a take deleted from the gallery, then the Record
    page's own training (frozen speech embedding, steps, no held-out takes): its run is tried live at once."""
    from lib.engine.jobs import JOB_QUEUE
    from lib.engine.runs import load_run

    for word in ("yes", "no"):
        for i, clip in enumerate(words_of(app_env, word)[:4]):
            (recordings / "test-ds" / word).mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, recordings / "test-ds" / word / f"take{i}.wav")
    at = open_page()
    at.text_input(key="record_dataset").set_value("test-ds")
    at.run()
    assert any("background" in i.value for i in at.info)               # the hint
    at.button(key="record_add_background").click().run()
    assert not at.exception, at.exception
    assert len(list((recordings / "test-ds" / "background").glob("*.wav"))) == 6
    assert at.selectbox(key="record_class").value == "background"
    assert not any(b.key == "record_add_background" for b in at.button)  # the hint is gone
    assert [e.label for e in at.expander if ":" in e.label and "take" in e.label] == [
        "background: 6 takes", "no: 4 takes", "yes: 4 takes"]
    at.button(key="record_delete_no/take3.wav").click().run()          # delete one take from the gallery
    assert not (recordings / "test-ds" / "no" / "take3.wav").exists()
    at.button(key="record_train").click().run()
    assert not at.exception, at.exception
    job = next(j for j in JOB_QUEUE.jobs if j.job_id == at.session_state["record_job_id"])
    assert job.train_config.model == "speech_embedding" and job.train_config.finetune == "frozen"
    assert job.train_config.steps and job.train_config.validation_fraction == 0 == job.train_config.test_fraction
    try:
        assert job.wait(120), "the Record page's training did not end in 120 s"
        done = job.snapshot().done
        assert done.status == "finished", done.message
        at.run()
        assert not at.exception, at.exception
        assert at.session_state["run_id"] == done.run_id                 # the new run is the session's run
        assert at.selectbox(key="record_run").value == done.run_id
        assert load_run(done.run_path).record.class_names == ["background", "no", "yes"]
        at.slider(key="record_threshold").set_value(0.0)
        record(at, words_of(app_env, "yes")[5].read_bytes())             # a take it has not trained on
        assert next(m.value for m in at.metric if m.label == "Heard") in ("yes", "no", "background")
        assert any("Trained" in s.value for s in at.success)
    finally:
        if job.snapshot().done and job.snapshot().done.run_path:
            shutil.rmtree(job.snapshot().done.run_path, ignore_errors=True)


def test_a_word_said_three_times_in_one_take_is_saved_as_three_takes(app_env, recordings):
    """"yes ... yes ... yes" in one long take: one 1 s take centred on each, in order; undo removes all three."""
    from lib.dsp.audio import load_audio

    word, rate = load_audio(speech(app_env))
    word = word[:1, :rate]
    gap = torch.zeros(1, rate)
    take = torch.cat([gap, word, gap, word, gap, word, gap], dim=1)  # 7 s: the word at 1-2, 3-4 and 5-6 s
    at = record(open_page(), wav_bytes(take[0], rate), name="three.wav")
    add_to(at, "test-ds", "yes")
    files = sorted((recordings / "test-ds" / "yes").glob("*.wav"))
    assert [f.stem.rsplit("-", 1)[1] for f in files] == ["1", "2", "3"]
    for file in files:
        clip, clip_rate = load_audio(file)
        assert clip.shape[-1] == clip_rate == rate
        assert torch.allclose(clip.abs().amax(), word.abs().amax(), atol=1e-3)  # the word is in it
    assert any("Saved 3 takes" in s.value and "yes: 3" in s.value for s in at.success)
    at.button(key="record_undo").click().run()
    assert not at.exception, at.exception
    assert not list((recordings / "test-ds" / "yes").glob("*.wav"))


def test_a_long_take_is_saved_as_the_clip_around_its_word(app_env, recordings):
    """A word said inside a 3 s take is saved as the 1 s clip centred on it (what the live answer reads); a
    quiet take is refused for a word but kept for the background class."""
    from lib.dsp.audio import load_audio

    word, rate = load_audio(speech(app_env))
    take = torch.zeros(1, 3 * rate)
    take[:, 2 * rate - word.shape[-1] // 2:][:, :word.shape[-1]] = word[:1]
    at = record(open_page(), wav_bytes(take[0], rate), name="long.wav")
    add_to(at, "test-ds", "clap")
    saved, saved_rate = load_audio(next((recordings / "test-ds" / "clap").glob("*.wav")))
    assert saved.shape[-1] == saved_rate == rate
    quiet = wav_bytes(torch.full((rate,), 1e-4), rate)
    record(at, quiet, name="quiet.wav")
    assert at.button(key="record_add").disabled                       # silent: not a word
    at.text_input(key="record_new_class").set_value("background")
    at.run()
    assert not at.button(key="record_add").disabled                   # but the background class takes it
