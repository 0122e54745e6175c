"""Cross-synthesizer evaluation: the ten keywords said by speech synthesizers other than eSpeak NG.

The built-in dataset (:mod:`lib.data.synth.builtin`) is spoken by eSpeak NG only, so a model trained on it has never heard
another voice. This script builds a small evaluation set from two other engines and measures a saved run on
it, next to an off-the-shelf recogniser (PocketSphinx) restricted to the same ten words.

Engines and voices (each engine's own voices; nothing is pitch-shifted or time-stretched afterwards):

* ``flite`` (Debian ``flite``): ``kal16`` (diphone), ``awb``, ``rms``, ``slt`` (clustergen). Left out: ``kal``
  (the 8 kHz copy of ``kal16``) and ``awb_time`` (a limited-domain talking clock that can only say times).
* ``festival`` (Debian ``festival`` + festvox packages): ``kal_diphone``, ``ked_diphone`` (diphone) and
  ``cmu_us_slt_arctic_hts`` (HMM). Voices whose package the archive does not have are skipped.

Each voice says each word in 5 variants, made with the engine's own controls: speaking rate (a duration
stretch: flite ``duration_stretch``, festival ``Duration_Stretch`` or the HTS engine's ``-r`` speed) and, where
the voice obeys it, pitch (flite ``f0_shift``, festival ``int_lr_params``). Voices that ignore pitch controls
(flite ``rms``, festival's HTS ``slt``) get five rates instead. Every clip is resampled to 16 kHz, trimmed of
leading/trailing silence, centred in 1.0 s (the middle kept if longer) and peak-normalised to 0.5, then written
as 16 kHz mono PCM16 WAV under ``<out>/<engine>-<voice>/<word>/<word>_<variant>.wav`` with ``manifest.csv``
(path, label, group = engine-voice, engine, voice, variant). The set is built in a temporary folder and
renamed into place, and it is deterministic (same packages: same bytes).

Usage::

    python bench/cross_synth.py build [--out data/cross_synth] [--force]     # installs flite/festival if missing
    python bench/cross_synth.py eval models/default [--set data/cross_synth] [--json out.json]
    python bench/cross_synth.py baseline [--set data/cross_synth] [--json out.json]   # PocketSphinx
    python bench/cross_synth.py baseline-espeak [--limit 300]   # PocketSphinx on built-in eSpeak clips
    python bench/cross_synth.py compare models/default [--out docs/benchmarks.md]   # both, one table

PocketSphinx is for evaluation only and never a dependency of the app: when the current interpreter cannot
import it, ``baseline`` creates ``bench/.venv-eval`` (``python3 -m venv``, then ``pip install pocketsphinx``)
and decodes there in a subprocess; scoring happens here with :mod:`lib.engine.metrics`.

Importable: :func:`evaluate_run` (``evaluate_run(run_path, set_dir) -> dict``) and the clip helpers
:func:`trim_silence`, :func:`centre_clip`, :func:`normalise_peak`, :func:`prepare_clip`, :func:`write_manifest`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Only the standard library at module level: the PocketSphinx worker (``_decode``) runs in a venv without
# torch or numpy. Everything else is imported where it is used.
import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0
PEAK = 0.5
TRIM_THRESHOLD = 0.01          # of the peak, as lib.data.synth.builtin trims eSpeak's output
RECIPE_VERSION = 1
DEFAULT_SET = ROOT / "data" / "cross_synth"
EVAL_VENV = ROOT / "bench" / ".venv-eval"
MANIFEST_COLUMNS = ("path", "label", "group", "engine", "voice", "variant")
NO_HYPOTHESIS = "(none)"

# flite: built-in English voices used, and those listed by `flite -lv` but left out on purpose.
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FLITE_SKIPPED = {"kal": "8 kHz copy of kal16", "awb_time": "limited-domain talking clock (says times only)"}
FLITE_NO_PITCH = {"rms"}       # ignores f0_shift and int_f0_target_mean (checked by ear and by F0 estimate)
# festival: voice function name -> (Debian package, short name, obeys int_lr_params pitch, is HTS)
FESTIVAL_VOICES = {
    "kal_diphone": ("festvox-kallpc16k", "kal", True, False),
    "ked_diphone": ("festvox-kdlpc16k", "ked", True, False),
    "rab_diphone": ("festvox-rablpc16k", "rab", True, False),
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", "slt_hts", False, True),
}
# Variants: (duration stretch, pitch factor); stretch > 1 is slower. Voices without a pitch control get rates.
PITCH_VARIANTS = ((1.0, 1.0), (0.8, 1.0), (1.25, 1.0), (1.0, 0.85), (1.0, 1.2))
RATE_VARIANTS = ((1.0, 1.0), (0.8, 1.0), (0.9, 1.0), (1.1, 1.0), (1.25, 1.0))


def _log(*parts: object) -> None:
    print(*parts, flush=True)


# ------------------------------------------------------------------------------------------ clip helpers


def trim_silence(waveform, threshold: float = TRIM_THRESHOLD):
    """Cut leading/trailing samples quieter than ``threshold`` of the peak. ``(time,)`` -> ``(time',)``.

    An all-zero (or empty) waveform is returned unchanged.
    """
    import numpy as np

    x = np.asarray(waveform, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak <= 0.0:
        return x
    loud = np.flatnonzero(np.abs(x) > threshold * peak)
    return x[loud[0]:loud[-1] + 1] if loud.size else x


def centre_clip(waveform, n_samples: int):
    """Place ``waveform`` ``(time,)`` in the middle of ``n_samples`` of silence, or keep its middle if it is longer
    (:func:`lib.dsp.audio.center_pad_or_trim`: the extra sample goes at the end). Returns float32 ``(n_samples,)``."""
    import numpy as np
    import torch

    from lib.dsp.audio import center_pad_or_trim

    return center_pad_or_trim(torch.from_numpy(np.asarray(waveform, dtype=np.float32)), n_samples).numpy()


def normalise_peak(waveform, peak: float = PEAK):
    """Scale so that the largest absolute sample is ``peak`` (silence stays silence)."""
    import numpy as np

    x = np.asarray(waveform, dtype=np.float32)
    top = float(np.abs(x).max()) if x.size else 0.0
    return x if top <= 0.0 else (x * (peak / top)).astype(np.float32)


def prepare_clip(waveform, sample_rate: int, target_rate: int = SAMPLE_RATE, clip_seconds: float = CLIP_SECONDS,
                 peak: float = PEAK):
    """Synthesizer output -> one evaluation clip: mono, resampled, trimmed, centred, peak-normalised.

    Args:
        waveform: ``(time,)`` or ``(time, channels)`` float samples (as ``soundfile`` reads them).
        sample_rate: Its rate in Hz.

    Returns:
        np.ndarray: ``(round(target_rate * clip_seconds),)`` float32.
    """
    import numpy as np
    import torch

    from lib.dsp.audio import fit_clip

    x = torch.from_numpy(np.asarray(waveform, dtype=np.float32).T)  # (channels, time) or (time,)
    x = trim_silence(fit_clip(x, int(sample_rate), int(target_rate))[0].numpy())  # mono at target_rate
    return normalise_peak(centre_clip(x, round(target_rate * clip_seconds)), peak)


def write_manifest(path: str | Path, rows: list[dict]) -> None:
    """Write ``manifest.csv``: :data:`MANIFEST_COLUMNS`, rows sorted by path (deterministic)."""
    rows = sorted(rows, key=lambda r: r["path"])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(MANIFEST_COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in MANIFEST_COLUMNS})


def read_manifest(set_dir: str | Path) -> list[dict]:
    """Rows of ``<set_dir>/manifest.csv`` (or of the CSV itself), each with ``full_path`` added (absolute).

    A missing ``engine`` column (e.g. the built-in eSpeak set) reads as ``espeak``.
    """
    manifest = Path(set_dir)
    if manifest.is_dir():
        manifest = manifest / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"no manifest at {manifest}: run `python bench/cross_synth.py build` first")
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        p = Path(row["path"])
        row["full_path"] = str(p if p.is_absolute() else manifest.parent / p)
        row["engine"] = (row.get("engine") or "").strip() or "espeak"
        row["group"] = (row.get("group") or "").strip() or row["full_path"]
        row["variant"] = (row.get("variant") or "").strip()
    return rows


def _variant_name(stretch: float, pitch: float) -> str:
    return f"s{stretch:.2f}_p{pitch:.2f}"


# ------------------------------------------------------------------------------------------ engines


def _apt_available(package: str) -> bool:
    try:
        out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return False
    return "Candidate:" in out and "Candidate: (none)" not in out


def _festival_voice_dir(voice: str) -> Path | None:
    for base in (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices")):
        hits = sorted(base.glob(f"*/{voice}")) if base.is_dir() else []
        if hits:
            return hits[0]
    return None


def ensure_engines(install: bool = True) -> None:
    """Install flite, festival and the festvox English voices with apt-get when they are missing."""
    wanted = []
    if not shutil.which("flite"):
        wanted.append("flite")
    if not shutil.which("festival"):
        wanted.append("festival")
    for voice, (package, _, _, _) in FESTIVAL_VOICES.items():
        if _festival_voice_dir(voice) is None:
            wanted.append(package)
    if not wanted:
        return
    if not install:
        raise RuntimeError(f"missing: {' '.join(wanted)} (install them with apt-get)")
    if not shutil.which("apt-get"):
        raise RuntimeError(f"missing {' '.join(wanted)} and no apt-get to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_available("flite"):  # no package lists yet (fresh machine) or stale ones
        _log("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    available = [p for p in wanted if _apt_available(p)]
    skipped = sorted(set(wanted) - set(available))
    if skipped:
        _log(f"not in the package archive, skipped: {' '.join(skipped)}")
    if available:
        _log(f"installing: apt-get install -y {' '.join(available)}")
        subprocess.run(["apt-get", "install", "-y", "-q", *available], check=True, env=env)
    for tool in ("flite", "festival"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is still missing after apt-get install")


def _flite_voices() -> list[str]:
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout
    listed = out.split(":", 1)[-1].split()
    for voice in listed:
        if voice not in FLITE_VOICES:
            reason = FLITE_SKIPPED.get(voice, "not in FLITE_VOICES")
            _log(f"flite voice {voice!r} left out: {reason}")
    return [v for v in FLITE_VOICES if v in listed]


@dataclass(frozen=True)
class _Job:
    engine: str          # "flite" | "festival"
    voice: str           # engine's voice name (flite -voice / festival voice_<name>)
    short: str           # voice name in folder and group
    word: str
    stretch: float
    pitch: float
    raw: str             # synthesizer output file (temporary)

    @property
    def variant(self) -> str:
        return _variant_name(self.stretch, self.pitch)

    @property
    def group(self) -> str:
        return f"{self.engine}-{self.short}"

    @property
    def rel_path(self) -> str:
        return f"{self.group}/{self.word}/{self.word}_{self.variant}.wav"


def _flite_jobs(raw_dir: Path) -> list[_Job]:
    jobs = []
    for voice in _flite_voices():
        variants = RATE_VARIANTS if voice in FLITE_NO_PITCH else PITCH_VARIANTS
        for word in WORDS:
            for stretch, pitch in variants:
                name = f"flite-{voice}-{word}-{_variant_name(stretch, pitch)}.wav"
                jobs.append(_Job("flite", voice, voice, word, stretch, pitch, str(raw_dir / name)))
    return jobs


def _run_flite(job: _Job) -> None:
    cmd = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={job.stretch}"]
    if job.pitch != 1.0:
        cmd += ["--setf", f"f0_shift={job.pitch}"]
    subprocess.run(cmd + ["-t", job.word, "-o", job.raw], check=True, capture_output=True)


def _festival_jobs(raw_dir: Path) -> list[_Job]:
    jobs = []
    for voice, (package, short, has_pitch, _) in FESTIVAL_VOICES.items():
        if _festival_voice_dir(voice) is None:
            _log(f"festival voice {voice!r} left out: not installed ({package} unavailable)")
            continue
        for word in WORDS:
            for stretch, pitch in (PITCH_VARIANTS if has_pitch else RATE_VARIANTS):
                name = f"festival-{short}-{word}-{_variant_name(stretch, pitch)}.wav"
                jobs.append(_Job("festival", voice, short, word, stretch, pitch, str(raw_dir / name)))
    return jobs


_FESTIVAL_PRELUDE = """
(define (cs_stretch factor)
  (let ((base (Parameter.get 'Duration_Stretch)))
    (Parameter.set 'Duration_Stretch (* factor (if base base 1.0)))))
(define (cs_scale_f0 factor)
  (set! int_lr_params
        (mapcar (lambda (p)
                  (if (or (eq? (car p) 'target_f0_mean) (eq? (car p) 'target_f0_std))
                      (list (car p) (* factor (car (cdr p))))
                      p))
                int_lr_params)))
(define (cs_hts_speed speed)
  (set! hts_engine_params (append hts_engine_params (list (list "-r" speed)))))
"""


def _run_festival_voice(jobs: list[_Job], script_path: Path) -> None:
    """One festival process per voice: select the voice afresh for every clip, set the variant, save."""
    voice = jobs[0].voice
    is_hts = FESTIVAL_VOICES[voice][3]
    lines = [_FESTIVAL_PRELUDE]
    for job in jobs:
        lines.append(f"(voice_{voice})")
        if is_hts:  # the HTS engine ignores Duration_Stretch; its own speed control is -r (speed = 1/stretch)
            if job.stretch != 1.0:
                lines.append(f"(cs_hts_speed {1.0 / job.stretch:.6f})")
        else:
            lines.append(f"(cs_stretch {job.stretch})")
            if job.pitch != 1.0:
                lines.append(f"(cs_scale_f0 {job.pitch})")
        lines.append(f'(utt.save.wave (SynthText "{job.word}") "{job.raw}" \'riff)')
    script_path.write_text("\n".join(lines) + "\n")
    result = subprocess.run(["festival", "-b", str(script_path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"festival failed for {voice}: {result.stderr.strip()[-2000:]}")


def _engine_versions() -> dict[str, str]:
    versions = {}
    for package in ["flite", "festival", *[p for p, *_ in FESTIVAL_VOICES.values()]]:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             check=False)
        if out.returncode == 0 and out.stdout:
            versions[package] = out.stdout
    return versions


def build(out: str | Path = DEFAULT_SET, force: bool = False, install: bool = True, workers: int = 8) -> Path:
    """Build the cross-synthesizer set into ``out`` (atomically); returns the manifest path.

    An existing set with the same recipe is reused unless ``force``.
    """
    import numpy as np
    import soundfile as sf

    out = Path(out).resolve()
    ensure_engines(install)
    recipe = {
        "version": RECIPE_VERSION, "words": list(WORDS), "sample_rate": SAMPLE_RATE, "clip_seconds": CLIP_SECONDS,
        "peak": PEAK, "trim_threshold": TRIM_THRESHOLD, "flite_voices": list(FLITE_VOICES),
        "festival_voices": list(FESTIVAL_VOICES), "pitch_variants": PITCH_VARIANTS,
        "rate_variants": RATE_VARIANTS, "packages": _engine_versions(),
    }
    recipe = json.loads(json.dumps(recipe))  # tuples -> lists, so it compares with the saved JSON
    if not force and (out / "manifest.csv").is_file() and (out / "recipe.json").is_file():
        if json.loads((out / "recipe.json").read_text()).get("recipe") == recipe:
            _log(f"{out} is up to date (same recipe); use --force to rebuild")
            return out / "manifest.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-tmp-", dir=out.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private
    try:
        raw_dir = staging / ".raw"
        raw_dir.mkdir()
        flite_jobs, festival_jobs = _flite_jobs(raw_dir), _festival_jobs(raw_dir)
        jobs = flite_jobs + festival_jobs
        _log(f"synthesizing {len(jobs)} clips ({len(flite_jobs)} flite, {len(festival_jobs)} festival)")
        by_voice: dict[str, list[_Job]] = {}
        for job in festival_jobs:
            by_voice.setdefault(job.voice, []).append(job)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_flite, job) for job in flite_jobs]
            futures += [pool.submit(_run_festival_voice, vjobs, raw_dir / f"{voice}.scm")
                        for voice, vjobs in by_voice.items()]
            for future in futures:
                future.result()
        rows, durations = [], []
        for job in jobs:
            if not Path(job.raw).is_file():
                raise RuntimeError(f"{job.engine} wrote no audio for {job.rel_path}")
            waveform, rate = sf.read(job.raw, dtype="float32", always_2d=False)
            speech = trim_silence(waveform if waveform.ndim == 1 else waveform.mean(axis=1))
            if speech.size == 0 or float(np.abs(speech).max()) == 0.0:
                raise RuntimeError(f"{job.engine} produced silence for {job.rel_path}")
            durations.append(speech.size / rate)
            clip = prepare_clip(waveform, rate)
            target = staging / job.rel_path
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, clip, SAMPLE_RATE, subtype="PCM_16")
            rows.append({"path": job.rel_path, "label": job.word, "group": job.group, "engine": job.engine,
                         "voice": job.short, "variant": job.variant})
        shutil.rmtree(raw_dir)
        write_manifest(staging / "manifest.csv", rows)
        durations_arr = np.asarray(durations)
        summary = {"recipe": recipe, "n_clips": len(rows),
                   "speech_seconds": {"min": round(float(durations_arr.min()), 3),
                                      "median": round(float(np.median(durations_arr)), 3),
                                      "max": round(float(durations_arr.max()), 3),
                                      "over_clip": int((durations_arr > CLIP_SECONDS).sum())}}
        (staging / "recipe.json").write_text(json.dumps(summary, indent=2) + "\n")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}-old-{os.getpid()}"
            out.rename(old)
        staging.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["group"]] = counts.get(row["group"], 0) + 1
    _log(f"wrote {len(rows)} clips to {out}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    _log(f"speech length before centring (s): {summary['speech_seconds']}")
    return out / "manifest.csv"


# ------------------------------------------------------------------------------------------ scoring


def _accuracy_table(rows: list[dict], correct: list[bool], key: str) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for row, ok in zip(rows, correct):
        entry = table.setdefault(row[key], {"n": 0, "correct": 0})
        entry["n"] += 1
        entry["correct"] += int(ok)
    for entry in table.values():
        entry["accuracy"] = entry["correct"] / entry["n"]
    return dict(sorted(table.items()))


def score(rows: list[dict], predicted: list[str], class_names: list[str], name: str) -> dict:
    """Overall/per-engine/per-voice/per-variant accuracy and :func:`lib.engine.metrics.classification_metrics`.

    ``predicted`` holds class names; anything not in ``class_names`` (no hypothesis) counts as wrong and is
    tallied in an extra :data:`NO_HYPOTHESIS` column of the confusion matrix.
    """
    from lib.engine.metrics import classification_metrics

    names = list(class_names)
    unknown_labels = sorted({r["label"] for r in rows} - set(names))
    if unknown_labels:
        raise ValueError(f"labels {unknown_labels} are not among the classes {names}")
    extra = any(p not in names for p in predicted)
    all_names = names + [NO_HYPOTHESIS] * extra
    index = {c: i for i, c in enumerate(all_names)}
    y_true = [index[r["label"]] for r in rows]
    y_pred = [index.get(p, len(names)) for p in predicted]
    correct = [t == p for t, p in zip(y_true, y_pred)]
    return {
        "name": name,
        "n": len(rows),
        "accuracy": sum(correct) / len(rows),
        "per_engine": _accuracy_table(rows, correct, "engine"),
        "per_voice": _accuracy_table(rows, correct, "group"),
        "per_variant": _accuracy_table(rows, correct, "variant") if all(r["variant"] for r in rows) else {},
        "metrics": classification_metrics(y_true, y_pred, all_names),
        "predictions": [{"path": r["path"], "label": r["label"], "predicted": p, "group": r["group"]}
                        for r, p in zip(rows, predicted)],
    }


def markdown_report(result: dict) -> str:
    """The result of :func:`score` as markdown tables."""
    n_correct = sum(e["correct"] for e in result["per_engine"].values())
    lines = [f"### {result['name']}", "",
             f"Overall accuracy: **{result['accuracy']:.1%}** ({n_correct}/{result['n']} clips)", ""]
    for title, key in (("engine", "per_engine"), ("voice (group)", "per_voice"), ("variant", "per_variant")):
        if not result.get(key):
            continue
        lines += [f"| {title} | clips | accuracy |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {v['n']} | {v['accuracy']:.1%} |" for k, v in result[key].items()]
        lines.append("")
    metrics = result["metrics"]
    names = metrics["class_names"]
    lines += ["Confusion matrix (rows: true word, columns: predicted):", "",
              "| true \\ pred | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
              for name, row in zip(names, metrics["confusion_matrix"]) if name != NO_HYPOTHESIS]
    lines += ["", "Recall per word: " + ", ".join(f"{c['class']} {c['recall']:.0%}" for c in metrics["per_class"]
                                                  if c["class"] != NO_HYPOTHESIS), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ eval


def evaluate_run(run_path: str | Path, set_dir: str | Path = DEFAULT_SET, device: str = "cpu") -> dict:
    """Classify every clip of a cross-synth set (or any manifest) with a saved run.

    The evaluation is :func:`lib.engine.evaluate.evaluate` with the run's own preprocessing and ``whole_recordings``:
    a clip longer than one clip is classified as the Inference page classifies a recording.

    Returns:
        dict: ``name``, ``n``, ``accuracy``, ``per_engine`` / ``per_voice`` / ``per_variant``
        (``{key: {n, correct, accuracy}}``), ``metrics`` (:func:`lib.engine.metrics.classification_metrics` over the
        run's classes), ``predictions``, plus ``run``, ``set``, ``failed``, ``probabilities`` (``n x classes``,
        in ``class_names`` order) and ``run_test_accuracy`` (the run's own held-out accuracy on eSpeak voices,
        when saved).
    """
    from lib.data.sources import load_csv
    from lib.engine.evaluate import evaluate
    from lib.serving.infer import Classifier
    from lib.engine.runs import load_run

    set_dir = Path(set_dir)
    manifest = set_dir / "manifest.csv" if set_dir.is_dir() else set_dir
    dataset = load_csv(manifest)
    by_path = {row["full_path"]: row for row in read_manifest(manifest)}
    rows = [by_path[p] for p in dataset.paths]
    classifier = Classifier.from_run(run_path, device=device)
    report = evaluate(classifier, dataset, whole_recordings=True)
    predicted = [classifier.class_names[p.pred] for p in report.predictions]
    result = score(rows, predicted, classifier.class_names, f"{classifier.run_id} on {manifest.parent.name}")
    for entry, p in zip(result["predictions"], report.predictions):
        entry["probability"] = p.confidence
    test_accuracy = getattr(load_run(run_path).report("test"), "accuracy", None)
    result.update(run=str(run_path), set=str(manifest), failed=[list(f) for f in dataset.failed],
                  probabilities=report.probabilities.tolist(), class_names=list(classifier.class_names),
                  run_test_accuracy=test_accuracy)
    return result


# ------------------------------------------------------------------------------------------ PocketSphinx


def _jsgf(words: list[str]) -> str:
    return "#JSGF V1.0;\ngrammar commands;\npublic <command> = " + " | ".join(words) + " ;\n"


def decode_pocketsphinx(paths: list[str], words: list[str]) -> list[str]:
    """Decode 16 kHz mono PCM16 WAV files with PocketSphinx restricted to ``words`` (a JSGF grammar).

    Standard library + ``pocketsphinx`` only (runs in the evaluation venv). Each clip is decoded as a whole
    utterance from the same initial cepstral mean, so results do not depend on the order. Returns the hypothesis
    per file ("" when none).
    """
    import wave

    from pocketsphinx import Decoder

    decoder = Decoder(lm=None, logfn=os.devnull)
    decoder.add_jsgf_string("commands", _jsgf(words))
    decoder.activate_search("commands")
    initial_cmn = decoder.get_cmn(False)
    hypotheses = []
    for path in paths:
        with wave.open(path, "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
                raise ValueError(f"{path}: need 16 kHz mono 16-bit PCM, got {w.getframerate()} Hz, "
                                 f"{w.getnchannels()} channel(s), {8 * w.getsampwidth()}-bit")
            raw = w.readframes(w.getnframes())
        decoder.set_cmn(initial_cmn)
        decoder.start_utt()
        decoder.process_raw(raw, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        hypotheses.append(hyp.hypstr.strip() if hyp is not None and hyp.hypstr else "")
    return hypotheses


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_eval_venv(venv: Path = EVAL_VENV) -> Path:
    """``bench/.venv-eval`` with pocketsphinx (evaluation only, never an app dependency); returns its python."""
    python = _venv_python(venv)
    ok = python.is_file() and subprocess.run([str(python), "-c", "import pocketsphinx"],
                                             capture_output=True, check=False).returncode == 0
    if ok:
        return python
    base = shutil.which("python3") or sys.executable
    _log(f"creating the evaluation venv {venv} ({base} -m venv) and installing pocketsphinx into it")
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    (venv / ".gitignore").write_text("*\n")  # keep it out of git (it is not a project file)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "pocketsphinx"], check=True)
    return python


def _pocketsphinx_version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('pocketsphinx'))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def run_baseline(set_dir: str | Path = DEFAULT_SET, name: str | None = None) -> dict:
    """PocketSphinx (JSGF grammar of the ten words) on a set; same result layout as :func:`evaluate_run`."""
    rows = read_manifest(set_dir)
    paths = [r["full_path"] for r in rows]
    try:
        import pocketsphinx  # noqa: F401
        python = sys.executable
        hypotheses = decode_pocketsphinx(paths, list(WORDS))
    except ImportError:
        python = str(ensure_eval_venv())
        with tempfile.TemporaryDirectory() as tmp:
            request, answer = Path(tmp) / "paths.json", Path(tmp) / "hyps.json"
            request.write_text(json.dumps({"paths": paths, "words": list(WORDS)}))
            subprocess.run([python, str(Path(__file__).resolve()), "_decode", str(request), str(answer)], check=True)
            hypotheses = json.loads(answer.read_text())
    predicted = [h if h in WORDS else NO_HYPOTHESIS for h in hypotheses]
    version = _pocketsphinx_version(python)
    set_name = Path(set_dir).name if Path(set_dir).is_dir() else Path(set_dir).parent.name
    result = score(rows, predicted, list(WORDS), name or f"PocketSphinx {version} (JSGF, 10 words) on {set_name}")
    for entry, hyp in zip(result["predictions"], hypotheses):
        entry["hypothesis"] = hyp
    result.update(set=str(set_dir), pocketsphinx=version, python=python,
                  no_hypothesis=sum(p == NO_HYPOTHESIS for p in predicted))
    return result


def espeak_subset(limit: int = 300, cache_dir: str | Path = ROOT / "data" / "builtin") -> Path:
    """A manifest of ``limit`` clips of the default built-in eSpeak set (evenly spread, equal per word).

    The set is generated first if it is not cached. Returns the path of a temporary manifest (absolute paths).
    """
    from lib.data.synth.builtin import BuiltinSpec, builtin_folder, generate_builtin

    spec = BuiltinSpec()
    folder = builtin_folder(spec, cache_dir)
    if not (folder / "manifest.csv").is_file():
        generate_builtin(spec, cache_dir)
    rows = read_manifest(folder)
    per_word = max(1, limit // len(WORDS))
    chosen = []
    for word in WORDS:
        mine = [r for r in rows if r["label"] == word]
        step = max(1, len(mine) // per_word)
        chosen += mine[::step][:per_word]
    out = Path(tempfile.mkdtemp(prefix="cross-synth-espeak-")) / "manifest.csv"
    # group by accent (the eSpeak language voice before "+variant"): 120 speakers would make a long table
    write_manifest(out, [dict(r, path=r["full_path"], group="espeak-" + r["group"].split("+")[0], engine="espeak",
                              voice=r["group"], variant="") for r in chosen])
    return out


# ------------------------------------------------------------------------------------------ compare


def latency_ms(run_path: str | Path, runs: int = 200) -> tuple[float, float]:
    """p50 and p95 of :meth:`lib.serving.infer.Classifier.predict` on a one-second clip (CPU, after a warm-up), in ms."""
    import numpy as np
    import torch

    from lib.serving.infer import Classifier

    classifier = Classifier.from_run(run_path, device="cpu")
    waveform = torch.randn(1, classifier.feature_config.n_samples) * 0.1
    for _ in range(10):
        classifier.predict(waveform, classifier.feature_config.sample_rate)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        classifier.predict(waveform, classifier.feature_config.sample_rate)
        times.append(1000 * (time.perf_counter() - started))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def unit_bootstrap_interval(result: dict, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the overall accuracy, resampling (voice, word) units rather than clips.

    A voice's variants of one word usually stand or fall together, so the clips are not independent: the
    350 clips are about 70 independent units, and the interval is wide.
    """
    import numpy as np

    units: dict[tuple[str, str], list[bool]] = {}
    for entry in result["predictions"]:
        units.setdefault((entry["group"], entry["label"]), []).append(entry["predicted"] == entry["label"])
    correct = np.array([sum(v) for v in units.values()], dtype=float)
    counts = np.array([len(v) for v in units.values()], dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(counts), size=(n_resamples, len(counts)))
    accuracies = correct[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(accuracies, [2.5, 97.5])
    return float(low), float(high)


def validation_by_voice_kind(metrics: dict) -> dict[str, tuple[float, int]]:
    """Validation accuracy and clip count of a run's eSpeak clips and of its neural-voice clips (if any).

    ``metrics`` is a run's metrics.json (or a :class:`lib.engine.train.DoneEvent`'s). The built-in set names
    neural-voice clips ``<word>_piper_NNNN.wav`` / ``<word>_kokoro_NNNN.wav``.
    """
    from lib.engine.evaluate import EvaluationReport

    validation = metrics.get("validation")
    kinds: dict[str, list[bool]] = {}
    for entry in EvaluationReport.from_dict(validation).predictions if validation else []:
        name = Path(entry.path).name
        kind = "Piper" if "_piper_" in name else "Kokoro" if "_kokoro_" in name else "eSpeak"
        kinds.setdefault(kind, []).append(entry.correct)
    return {kind: (sum(v) / len(v), len(v)) for kind, v in kinds.items()}


def compare_report(run_path: str | Path, set_dir: str | Path = DEFAULT_SET) -> str:
    """One table from one run: a saved run and PocketSphinx on the set, overall, per engine and per voice."""
    from lib.engine.runs import load_run

    model, sphinx = evaluate_run(run_path, set_dir), run_baseline(set_dir)
    run = load_run(run_path)
    p50, p95 = latency_ms(run_path)
    validation = validation_by_voice_kind(run.metrics)
    record, train = run.record, run.record.train_config
    name = f"`{Path(run_path).as_posix()}` ({record.model})"
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {len(model['predictions'])} clips; "
             f"command: `python bench/cross_synth.py compare {Path(run_path).as_posix()} --out docs/benchmarks.md`.",
             "", f"| | {name} | PocketSphinx {sphinx['pocketsphinx']} (JSGF grammar of the ten words) |",
             "|---|---|---|",
             f"| **overall** | **{model['accuracy']:.1%}** | **{sphinx['accuracy']:.1%}** |",
             "| 95% interval (bootstrap over voice × word units) | "
             + " | ".join("{:.0%} to {:.0%}".format(*unit_bootstrap_interval(r)) for r in (model, sphinx)) + " |"]
    for key in ("per_engine", "per_voice"):
        for group in model[key]:
            lines.append(f"| {group} ({model[key][group]['n']}) | {model[key][group]['accuracy']:.1%} | "
                         f"{sphinx[key][group]['accuracy']:.1%} |")
    lines += ["", f"The run: {record.n_parameters or 0:,} parameters, trained "
                  f"{(record.duration_sec or 0) / 60:.1f} min on {record.device or '?'}, "
                  f"{train.epochs if train else '?'} epochs, augmentation: "
                  f"{train.augment.summary() if train else 'unknown'}; validation accuracy (voices held out) "
                  + (", ".join(f"{kind} {acc:.1%} of {n}" for kind, (acc, n) in validation.items()) or "n/a")
                  + f"; one-second clip inference on this CPU p50 {p50:.2f} ms, p95 {p95:.2f} ms.",
              f"PocketSphinx gave no hypothesis for {sphinx['no_hypothesis']} clip(s) (counted as wrong)."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ CLI


def _write_json(path: str | None, result: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2) + "\n")
        _log(f"wrote {path}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="synthesize the cross-synthesizer set")
    p.add_argument("--out", default=str(DEFAULT_SET))
    p.add_argument("--force", action="store_true", help="rebuild even if the recipe is unchanged")
    p.add_argument("--no-install", action="store_true", help="fail instead of apt-get installing engines")
    p = sub.add_parser("eval", help="accuracy of a saved run on the set")
    p.add_argument("run")
    p.add_argument("--set", default=str(DEFAULT_SET))
    p.add_argument("--json", default=None)
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("baseline", help="PocketSphinx restricted to the ten words, on the set")
    p.add_argument("--set", default=str(DEFAULT_SET))
    p.add_argument("--json", default=None)
    p = sub.add_parser("compare", help="a saved run and PocketSphinx on the set: one markdown table")
    p.add_argument("run")
    p.add_argument("--set", default=str(DEFAULT_SET))
    p.add_argument("--out", default=None, help="write the table into this markdown file's cross-synth section")
    p = sub.add_parser("baseline-espeak", help="PocketSphinx on clips of the built-in eSpeak set (reference)")
    p.add_argument("--limit", type=int, default=300)
    p.add_argument("--json", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_decode"]:  # the PocketSphinx worker, run by the evaluation venv: _decode REQUEST ANSWER
        request = json.loads(Path(argv[1]).read_text())
        Path(argv[2]).write_text(json.dumps(decode_pocketsphinx(request["paths"], request["words"])))
        return 0
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    me = "python bench/cross_synth.py"
    if args.command == "build":
        manifest = build(args.out, force=args.force, install=not args.no_install)
        set_arg = shlex.quote(str(Path(args.out)))
        _log(f"\nnext:\n  {me} eval models/default --set {set_arg}\n  {me} baseline --set {set_arg}")
        _log(f"manifest: {manifest}")
    elif args.command == "eval":
        result = evaluate_run(args.run, args.set, device=args.device)
        if result["failed"]:
            _log(f"warning: {len(result['failed'])} clip(s) could not be read: {result['failed'][:3]}")
        _log(markdown_report(result))
        if result.get("run_test_accuracy") is not None:
            _log(f"(the run's own test accuracy on held-out eSpeak voices: {result['run_test_accuracy']:.1%})")
        _write_json(args.json, result)
    elif args.command == "compare":
        report = compare_report(args.run, args.set)
        _log(report)
        if args.out:
            from bench.report import write_section

            write_section(args.out, "cross-synth-compare", report)
            _log(f"wrote the cross-synth-compare section of {args.out}")
    elif args.command in ("baseline", "baseline-espeak"):
        if args.command == "baseline":
            result = run_baseline(args.set)
        else:
            manifest = espeak_subset(args.limit)
            try:
                result = run_baseline(manifest, name=f"PocketSphinx (JSGF, 10 words) on {args.limit} built-in "
                                                      "eSpeak clips")
            finally:
                shutil.rmtree(manifest.parent, ignore_errors=True)
        _log(markdown_report(result))
        _log(f"clips with no hypothesis: {result['no_hypothesis']}")
        _write_json(args.json, result)
    _log(f"\ncommands:\n  {me} build [--out DIR] [--force]\n  {me} eval RUN [--set DIR] [--json OUT]\n"
         f"  {me} baseline [--set DIR] [--json OUT]\n  {me} baseline-espeak [--limit N] [--json OUT]\n"
         f"  {me} compare RUN [--set DIR] [--out docs/benchmarks.md]")
    _log(f"total time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
