import csv
import json

import numpy as np
import pytest
import soundfile as sf

from lib.data.synth.builtin import BuiltinSpec, builtin_folder, generate_builtin
from lib.data.catalog import SILENCE_LABEL, UNKNOWN_LABEL
from tests.conftest import TINY_SPEC


def _manifest(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_layout_manifest_and_audio(builtin_cache):
    folder = builtin_folder(TINY_SPEC, builtin_cache)
    rows = _manifest(folder / "manifest.csv")
    assert len(rows) == TINY_SPEC.n_clips == 72
    assert {r["label"] for r in rows} == {"yes", "no", "up"}
    assert len({r["group"] for r in rows}) > 5  # several voices
    assert json.loads((folder / "spec.json").read_text())["words"] == ["yes", "no", "up"]
    info = sf.info(folder / rows[0]["path"])
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
    waveform, _ = sf.read(folder / rows[0]["path"])
    assert np.abs(waveform).max() > 0.1  # there is a word in it


def test_generation_is_deterministic(tmp_path, builtin_cache):
    again = generate_builtin(TINY_SPEC, tmp_path)
    first = builtin_folder(TINY_SPEC, builtin_cache)
    assert _manifest(again) == _manifest(first / "manifest.csv")
    for row in _manifest(again)[:10]:
        np.testing.assert_array_equal(sf.read(again.parent / row["path"])[0], sf.read(first / row["path"])[0])


def test_cache_is_reused_and_progress_reported(builtin_cache):
    calls = []
    manifest = generate_builtin(TINY_SPEC, builtin_cache, progress=lambda done, total: calls.append((done, total)))
    assert manifest.is_file() and calls == [(72, 72)]  # no work: straight to done


def test_unknown_and_silence_classes(tmp_path):
    spec = BuiltinSpec(words=("on", "off"), clips_per_word=6, include_unknown=True, include_silence=True,
                       n_speakers=4, seed=1)
    calls = []
    rows = _manifest(generate_builtin(spec, tmp_path, progress=lambda d, t: calls.append((d, t))))
    assert spec.class_names == ["on", "off", UNKNOWN_LABEL, SILENCE_LABEL]
    assert [r["label"] for r in rows].count(SILENCE_LABEL) == 6
    assert calls[-1] == (24, 24)
    silence = sf.read(tmp_path / builtin_folder(spec, tmp_path).name / rows[-1]["path"])[0]
    assert 0 < np.abs(silence).max() < 0.2  # background noise, no word


def test_own_words_and_other_language(tmp_path):
    spec = BuiltinSpec(words=("eins", "zwei"), clips_per_word=2, voices=("de",), n_speakers=2)
    rows = _manifest(generate_builtin(spec, tmp_path))
    assert [r["label"] for r in rows] == ["eins", "eins", "zwei", "zwei"]
    assert all(r["group"].startswith("de+") for r in rows)


@pytest.mark.parametrize("bad", [dict(words=()), dict(words=("yes",)), dict(words=("yes", "yes")),
                                 dict(clips_per_word=0), dict(voices=()), dict(female_share=1.5)])
def test_bad_spec_raises(bad):
    with pytest.raises(ValueError):
        BuiltinSpec(**bad)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_female_share_of_speakers(share):
    from lib.data.synth import espeak
    from lib.data.synth.builtin import _speakers

    speakers = _speakers(BuiltinSpec(n_speakers=60, female_share=share), np.random.default_rng(0))
    female = [s.variant in espeak.female_variants() for s in speakers]
    assert len(speakers) == 60 and len({s.group for s in speakers}) == 60
    assert np.mean(female) == pytest.approx(share)


def test_female_variants_are_read_from_the_variant_files():
    from lib.data.synth import espeak

    female = espeak.female_variants()
    assert {"f1", "f2", "f5"} <= female and not {"m1", "m3", "klatt"} & female


def test_a_set_of_other_words_is_not_called_speech_commands():
    from lib.data.synth.builtin import builtin_name

    assert builtin_name(BuiltinSpec()) == "Synthetic Speech Commands"
    assert builtin_name(BuiltinSpec(words=("cat", "dog", "bird"))) == "Synthetic keywords (cat, dog, bird)"
