"""Keyword detection quality of a run on long streams: misses and false accepts per hour (a DET curve).

Data, not a test. The streams are built from voices the model never trained on, with keywords at known times.
Two keyword sources, each in its own streams:

* **cross-synth**: every clip of the cross-synthesizer set (``data/cross_synth``, made by
  ``python bench/cross_synth.py build``: flite and festival voices, 350 clips), trimmed of silence;
* **espeak-unseen**: eSpeak NG (:mod:`lib.data.synth.espeak`) saying each keyword ``--per-word`` times with (accent, variant)
  identities that none of the run's training speakers has (:func:`unseen_espeak_identities` redraws the run's
  built-in speakers from its spec), at random rates and pitches.

Both get, between their keywords, as many utterances of **other speech**: eSpeak saying one to three words that
are not keywords (the Speech Commands auxiliary words of :data:`lib.data.synth.builtin.UNKNOWN_WORDS` and a few everyday
words, some close to a keyword, like "start" or "goal"), each by a random English identity; in random order with
0.5 to 2.5 s between utterances, each at an SNR of 10 to 30 dB over **background noise** that runs the whole way
(:func:`lib.augment.waveform.make_noise`, one colour per stream at -50 to -40 dBFS).

Each stream goes once through :class:`lib.serving.stream.StreamingDetector` without smoothing (every hop's posteriors);
each smoothing length of :data:`SMOOTHING` is then a moving average of those (:func:`lib.serving.stream.moving_average`)
and each threshold an :class:`lib.serving.stream.EventRule` over it, exactly as the detector fires live.

Scoring: an event is a **hit** when its word is a placed keyword's and it fires between the keyword's start and
its end plus one clip plus the smoothing length plus one hop (the last window that still holds the word, after
the smoothing delay); each keyword is hit at most once. Every other event is a **false accept** (a fire on other
speech or noise, a wrong word, a second fire on one keyword); a keyword with no hit is a **miss**.
FA/h = false accepts / hours of stream. "FA/h at 5% misses" is interpolated linearly between the two thresholds
whose miss rates bracket 5%, and so is the operating point's threshold (chosen on both sources together, with
the smoothing that gives the fewest FA/h there); the operating point is then measured at that threshold and
saved as the run's ``detector.json`` (:func:`lib.serving.stream.save_operating_point`).

Usage::

    python bench/detection.py models/default [--set data/cross_synth] [--streams 5] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.cross_synth import DEFAULT_SET, read_manifest, trim_silence  # noqa: E402
from bench.report import command_line, write_section  # noqa: E402
from lib.serving.infer import Classifier  # noqa: E402
from lib.serving.stream import (DEFAULT_REFRACTORY_SEC, DEFAULT_SMOOTHING_SEC, EventRule, KeywordEvent,  # noqa: E402
                        StreamingDetector, moving_average, save_operating_point)

SECTION = "detection-benchmark"
TARGET_MISS = 0.05
HOP_SEC = 0.1
SMOOTHING = (0.0, 0.2, 0.3, 0.5)
THRESHOLDS = tuple(np.round(np.concatenate([np.arange(0.50, 0.95, 0.01), np.arange(0.95, 0.999, 0.002)]), 3))
SNR_DB = (10.0, 30.0)
NOISE_DBFS = (-50.0, -40.0)
GAP_SEC = (0.5, 2.5)
OTHER_WORDS = ("hello", "water", "morning", "table", "window", "purple", "apple", "number", "music", "later",
               "maybe", "under", "open", "start", "next", "back", "again", "please", "thanks", "goal", "yellow",
               "never", "lift", "often", "note", "dawn", "rights", "step", "cup", "guess")


@dataclass
class Stream:
    """One test stream: ``waveform`` ``(time,)`` float32 at ``sample_rate``, the keywords placed in it
    (``[(word, start_sec, end_sec, voice)]``) and how many non-keyword utterances it has."""

    waveform: np.ndarray
    sample_rate: int
    keywords: list[tuple[str, float, float, str]]
    n_other: int

    @property
    def duration_sec(self) -> float:
        return len(self.waveform) / self.sample_rate


def keyword_clips(set_dir: Path, sample_rate: int) -> list[tuple[str, str, np.ndarray]]:
    """``[(word, voice group, samples (time,))]`` of the cross-synthesizer set, trimmed of silence."""
    import soundfile as sf

    from lib.dsp.audio import resample

    clips = []
    for row in read_manifest(set_dir):
        samples, rate = sf.read(row["full_path"], dtype="float32", always_2d=False)
        samples = resample(torch.from_numpy(samples), rate, sample_rate).numpy()
        clips.append((row["label"], row["group"], trim_silence(samples)))
    return clips


def _espeak_say(text: str, identity: tuple[str, str], rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """``text`` said by eSpeak's ``(accent, variant)`` at a random rate and pitch: ``(time,)`` at ``sample_rate``,
    trimmed of silence."""
    from lib.data.synth import espeak
    from lib.dsp.audio import resample

    speech, rate = espeak.synthesize(text, voice=identity[0], variant=identity[1], rate=int(rng.integers(130, 220)),
                                     pitch=int(rng.integers(20, 80)), pitch_range=int(rng.integers(20, 90)),
                                     seed=int(rng.integers(2**31)))
    return trim_silence(resample(torch.from_numpy(speech), rate, sample_rate).numpy())


def unseen_espeak_identities(run_path: Path) -> list[tuple[str, str]]:
    """eSpeak ``(accent, variant)`` identities of the run's built-in spec's accents that none of its training
    speakers has (the speakers are drawn as :func:`lib.data.synth.builtin._plan` draws them, from the spec's seed)."""
    from lib.data.synth import espeak
    from lib.data.synth.builtin import BuiltinSpec, _speakers
    from lib.engine.runs import load_run

    source = load_run(run_path).record.dataset.source
    if source.get("kind") != "builtin":
        raise ValueError(f"run {run_path.name} was not trained on the built-in set: no eSpeak voices to hold out")
    spec = BuiltinSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in source["spec"].items()})
    trained = {(s.voice, s.variant) for s in _speakers(spec, np.random.default_rng(spec.seed))}
    return [(v, x) for v in spec.voices for x in espeak.list_variants() if (v, x) not in trained]


def espeak_keywords(words: tuple[str, ...], per_word: int, identities: list[tuple[str, str]],
                    rng: np.random.Generator, sample_rate: int) -> list[tuple[str, str, np.ndarray]]:
    """``[(word, "espeak:<accent>+<variant>", samples (time,))]``: each keyword ``per_word`` times, each time by a
    random one of ``identities``."""
    out = []
    for word in words:
        for _ in range(per_word):
            identity = identities[int(rng.integers(len(identities)))]
            out.append((word, f"espeak:{identity[0]}+{identity[1]}", _espeak_say(word, identity, rng, sample_rate)))
    return out


def other_speech(n: int, rng: np.random.Generator, sample_rate: int) -> list[np.ndarray]:
    """``n`` eSpeak utterances of one to three non-keywords by random English identities, ``(time,)`` each."""
    from lib.data.synth import espeak
    from lib.data.synth.builtin import UNKNOWN_WORDS

    words, variants = UNKNOWN_WORDS + OTHER_WORDS, espeak.list_variants()
    return [_espeak_say(" ".join(rng.choice(words, size=int(rng.integers(1, 4)))),
                        (str(rng.choice(espeak.english_voices)), str(rng.choice(variants))), rng, sample_rate)
            for _ in range(n)]


def build_stream(keywords: list[tuple[str, str, np.ndarray]], others: list[np.ndarray], rng: np.random.Generator,
                 sample_rate: int) -> Stream:
    """Keywords and other utterances in random order in background noise (see the module's description)."""
    from lib.augment.waveform import make_noise

    items = [(word, voice, samples) for word, voice, samples in keywords] + [(None, "", s) for s in others]
    order = rng.permutation(len(items))
    gaps = rng.uniform(*GAP_SEC, size=len(items) + 1)
    length = int((gaps.sum() + sum(len(s) for *_, s in items) / sample_rate) * sample_rate) + 1
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    noise_rms = 10 ** (rng.uniform(*NOISE_DBFS) / 20)
    waveform = make_noise(length, str(rng.choice(["white", "pink", "brown"])), generator).numpy() * noise_rms
    placed, position = [], gaps[0]
    for index, gap in zip(order, gaps[1:]):
        word, voice, samples = items[index]
        start = int(position * sample_rate)
        speech_rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) + 1e-12
        gain = noise_rms * 10 ** (rng.uniform(*SNR_DB) / 20) / speech_rms
        waveform[start:start + len(samples)] += samples * gain
        if word is not None:
            placed.append((word, start / sample_rate, (start + len(samples)) / sample_rate, voice))
        position += len(samples) / sample_rate + gap
    return Stream(np.clip(waveform, -1, 1).astype(np.float32), sample_rate, placed, len(others))


def build_streams(clips: list[tuple[str, str, np.ndarray]], n_streams: int, rng: np.random.Generator,
                  sample_rate: int) -> list[Stream]:
    """The keyword ``clips`` shuffled into ``n_streams`` streams, with as many other utterances each."""
    parts = np.array_split(rng.permutation(len(clips)), n_streams)
    return [build_stream([clips[i] for i in part], other_speech(len(part), rng, sample_rate), rng, sample_rate)
            for part in parts]


def score(events: list[KeywordEvent], keywords: list[tuple[str, float, float, str]], slack_sec: float
          ) -> tuple[int, int, list[bool]]:
    """``(hits, false_accepts, hit per keyword)``: an event hits the earliest unhit keyword of its word whose
    ``[start, end + slack_sec]`` holds its time; any other event is a false accept."""
    hit = [False] * len(keywords)
    false_accepts = 0
    for event in events:
        match = next((i for i, (word, start, end, _) in enumerate(keywords) if not hit[i] and word == event.word
                      and start <= event.time_sec <= end + slack_sec), None)
        if match is None:
            false_accepts += 1
        else:
            hit[match] = True
    return sum(hit), false_accepts, hit


def raw_posteriors(classifier: Classifier, streams: list[Stream]) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Each stream's window ends and unsmoothed posteriors ``((n,), (n, n_classes))``, and the seconds it took."""
    started, tracks = time.perf_counter(), []
    for stream in streams:
        detector = StreamingDetector(classifier, hop_sec=HOP_SEC, smoothing_sec=0.0)
        tracks.append(detector.posteriors(stream.waveform))
    return tracks, time.perf_counter() - started


def det_curve(classifier: Classifier, streams: list[Stream], tracks: list, smoothing_sec: float,
              thresholds: tuple[float, ...] = THRESHOLDS,
              refractory_sec: float = DEFAULT_REFRACTORY_SEC) -> list[dict]:
    """``[{threshold, miss_rate, fa_per_hour, misses, false_accepts}]`` for each threshold, in its order."""
    n_smooth = max(1, round(smoothing_sec / HOP_SEC))
    slack = classifier.feature_config.clip_seconds + smoothing_sec + HOP_SEC
    smoothed = [(times, moving_average(raw, n_smooth)) for times, raw in tracks]
    hours = sum(s.duration_sec for s in streams) / 3600
    n_keywords = sum(len(s.keywords) for s in streams)
    rows = []
    for threshold in thresholds:
        hits = false_accepts = 0
        for stream, (times, posteriors) in zip(streams, smoothed):
            events = EventRule(classifier.class_names, float(threshold), refractory_sec).step(times, posteriors)
            h, fa, _ = score(events, stream.keywords, slack)
            hits, false_accepts = hits + h, false_accepts + fa
        rows.append({"threshold": float(threshold), "miss_rate": 1 - hits / n_keywords, "misses": n_keywords - hits,
                     "false_accepts": false_accepts, "fa_per_hour": false_accepts / hours})
    return rows


def misses_by_voice(classifier: Classifier, streams: list[Stream], tracks: list, smoothing_sec: float,
                    threshold: float) -> dict[str, tuple[int, int]]:
    """``{voice: (misses, keywords)}`` at one operating point, voices in name order."""
    n_smooth = max(1, round(smoothing_sec / HOP_SEC))
    slack = classifier.feature_config.clip_seconds + smoothing_sec + HOP_SEC
    counts: dict[str, list[int]] = {}
    for stream, (times, raw) in zip(streams, tracks):
        events = EventRule(classifier.class_names, threshold).step(times, moving_average(raw, n_smooth))
        for (*_, voice), hit in zip(stream.keywords, score(events, stream.keywords, slack)[2]):
            counts.setdefault(voice, [0, 0])
            counts[voice][0] += not hit
            counts[voice][1] += 1
    return {voice: tuple(counts[voice]) for voice in sorted(counts)}


def at_miss_rate(rows: list[dict], target: float = TARGET_MISS) -> dict | None:
    """FA/h and threshold at miss rate ``target``, interpolated linearly between the two neighbouring thresholds
    whose miss rates bracket it; None when no threshold reaches misses that low."""
    for low, high in zip(rows, rows[1:]):
        if low["miss_rate"] <= target <= high["miss_rate"]:
            span = high["miss_rate"] - low["miss_rate"]
            w = 0.0 if span == 0 else (target - low["miss_rate"]) / span
            return {"fa_per_hour": low["fa_per_hour"] + w * (high["fa_per_hour"] - low["fa_per_hour"]),
                    "threshold": low["threshold"] + w * (high["threshold"] - low["threshold"]),
                    "between": (low["threshold"], high["threshold"])}
    return None


def fig_det(curves: dict[str, list[dict]]):
    """A plotly DET figure: miss rate against false accepts per hour, one line per smoothing length."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for name, rows in curves.items():
        figure.add_trace(go.Scatter(x=[r["fa_per_hour"] for r in rows], y=[100 * r["miss_rate"] for r in rows],
                                    mode="lines+markers", name=name,
                                    text=[f"threshold {r['threshold']:.3f}" for r in rows]))
    figure.update_layout(xaxis_title="false accepts per hour", yaxis_title="miss rate (%)",
                         title="Keyword detection: DET curve")
    return figure


CONDITIONS = {"cross-synth": "flite + festival keywords (the cross-synthesizer set)",
              "espeak-unseen": "eSpeak keywords, voices not among the run's training speakers",
              "both": "both together"}


def measure(run_path: Path, set_dir: Path, n_streams: int, seed: int, per_word: int) -> dict:
    """Builds the streams of each keyword source, runs the detector, sweeps smoothing and thresholds, chooses the
    operating point on both sources together; the result for :func:`report`."""
    classifier = Classifier.from_run(run_path)
    rate, rng = classifier.feature_config.sample_rate, np.random.default_rng(seed)
    identities = unseen_espeak_identities(run_path)
    keywords = {"cross-synth": keyword_clips(set_dir, rate),
                "espeak-unseen": espeak_keywords(tuple(classifier.class_names), per_word, identities, rng, rate)}
    groups, seconds = {}, 0.0
    for name, clips in keywords.items():
        streams = build_streams(clips, n_streams, rng, rate)
        tracks, took = raw_posteriors(classifier, streams)
        groups[name], seconds = (streams, tracks), seconds + took
        print(f"{name}: {len(streams)} streams, {sum(s.duration_sec for s in streams) / 60:.1f} min, "
              f"detector {took:.0f} s", flush=True)
    groups["both"] = tuple(sum((list(g[i]) for g in groups.values()), []) for i in (0, 1))
    curves = {name: {s: det_curve(classifier, streams, tracks, s) for s in SMOOTHING}
              for name, (streams, tracks) in groups.items()}
    at_target = {name: {s: at_miss_rate(rows) for s, rows in by_smoothing.items()}
                 for name, by_smoothing in curves.items()}
    reached = {s: point for s, point in at_target["both"].items() if point is not None}
    smoothing = min(reached, key=lambda s: reached[s]["fa_per_hour"]) if reached else DEFAULT_SMOOTHING_SEC
    threshold = round(reached[smoothing]["threshold"], 3) if reached else THRESHOLDS[0]
    chosen = {name: det_curve(classifier, streams, tracks, smoothing, (threshold,))[0]
              for name, (streams, tracks) in groups.items()}
    by_voice = misses_by_voice(classifier, *groups["cross-synth"], smoothing, threshold)
    return {"run": run_path.name, "model": classifier.model.__class__.__name__,
            "streams": {name: g[0] for name, g in groups.items()}, "n_identities": len(identities),
            "curves": curves, "at_target": at_target, "smoothing_sec": smoothing, "threshold": threshold,
            "chosen": chosen, "by_voice": by_voice, "detector_seconds": seconds, "threads": torch.get_num_threads(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _det_table(curves: dict[str, list[dict]]) -> list[str]:
    """The DET curves of the conditions side by side: every 0.05 of threshold, and every other step above 0.95."""
    names = list(curves)
    lines = ["| threshold | " + " | ".join(f"{n}: misses | {n}: FA/h" for n in names) + " |",
             "|---:|" + "---:|---:|" * len(names)]
    for i, row in enumerate(curves[names[0]]):
        t = row["threshold"]
        if round(t * 100, 6) % 5 == 0 or (t > 0.95 and i % 2 == 0):
            cells = [f"{_pct(curves[n][i]['miss_rate'])} | {curves[n][i]['fa_per_hour']:.1f}" for n in names]
            lines.append(f"| {t:.3f} | " + " | ".join(cells) + " |")
    return lines


def _at_target_cell(point: dict | None, rows: list[dict]) -> str:
    if point is None:
        return f"not reached (fewest misses {_pct(min(r['miss_rate'] for r in rows))})"
    return (f"**{point['fa_per_hour']:.1f}** (threshold {point['threshold']:.3f}, between "
            f"{point['between'][0]:.3f} and {point['between'][1]:.3f})")


def _headline(result: dict) -> str:
    """The section's answer: FA/h at 5% misses of each keyword source (its best smoothing), or the fewest misses."""
    parts = []
    for name in CONDITIONS:
        reached = {s: p for s, p in result["at_target"][name].items() if p is not None}
        if reached:
            s = min(reached, key=lambda k: reached[k]["fa_per_hour"])
            parts.append(f"{name} **{reached[s]['fa_per_hour']:.0f} FA/h** (smoothing {s:g} s, threshold "
                         f"{reached[s]['threshold']:.3f}, interpolated)")
        else:
            fewest = min(r["miss_rate"] for rows in result["curves"][name].values() for r in rows)
            parts.append(f"{name} **5% misses not reached** (the fewest: {_pct(fewest)}, at the floor threshold "
                         f"{THRESHOLDS[0]:g})")
    return ("**False accepts per hour at 5% misses:** " + "; ".join(parts) + ". The false accepts are fires on the "
            "other words, wrong words on keywords and second fires on one keyword (noise alone fires nothing: "
            "`tests/test_stream.py`). Without an `_unknown_` class the model names a keyword for every word it "
            "hears; a run trained with the built-in set's `_unknown_` class is the way to fewer false accepts.")


def report(result: dict, command: str) -> str:
    """The markdown section of ``docs/benchmarks.md``."""
    streams, smoothing, chosen = result["streams"], result["smoothing_sec"], result["chosen"]

    def minutes(name: str) -> float:
        return sum(s.duration_sec for s in streams[name]) / 60

    lines = [f"## Keyword detection: misses and false accepts per hour ({result['date']})", "",
             f"Run `{result['run']}` ({result['model']}) as a streaming detector (`lib.serving.stream.StreamingDetector`: a "
             f"one-clip window every {HOP_SEC:g} s, moving-average smoothing, a threshold, refractory time "
             f"{DEFAULT_REFRACTORY_SEC:g} s) on long streams of keywords at known times between other speech, "
             f"in background noise. Two keyword sources, each in its own streams: "
             f"**cross-synth**, the {sum(len(s.keywords) for s in streams['cross-synth'])} clips of the "
             f"cross-synthesizer set (flite and festival voices: another synthesizer than the training data's), "
             f"{len(streams['cross-synth'])} streams, {minutes('cross-synth'):.1f} min; **espeak-unseen**, "
             f"{sum(len(s.keywords) for s in streams['espeak-unseen'])} keywords said by eSpeak NG voices "
             f"(accent + variant) none of the run's {result['run']} training speakers has "
             f"({result['n_identities']} such identities, random rate and pitch), "
             f"{len(streams['espeak-unseen'])} streams, {minutes('espeak-unseen'):.1f} min. Between keywords, "
             f"as many utterances of one to three other words by eSpeak NG (the Speech Commands auxiliary words "
             f"and everyday words, some close to a keyword: \"start\", \"goal\", \"cup\"), in random order, "
             f"{GAP_SEC[0]:g} to {GAP_SEC[1]:g} s apart; each utterance at {SNR_DB[0]:g} to {SNR_DB[1]:g} dB SNR "
             f"over white, pink or brown noise at {NOISE_DBFS[0]:g} to {NOISE_DBFS[1]:g} dBFS. The model has no "
             "`_unknown_` class: only the threshold keeps other words from firing.", "",
             _headline(result), "",
             "False accepts per hour at 5% misses (interpolated linearly between the two thresholds around 5%):",
             "", "| smoothing | " + " | ".join(CONDITIONS) + " |", "|---:|" + "---|" * len(CONDITIONS)]
    for s in SMOOTHING:
        cells = [_at_target_cell(result["at_target"][n][s], result["curves"][n][s]) for n in CONDITIONS]
        lines.append(f"| {s:g} s{' (chosen)' if s == smoothing else ''} | " + " | ".join(cells) + " |")
    lines += ["", f"DET curves with smoothing {smoothing:g} s (an event is a hit when its word is a placed keyword's "
              "and it fires between the word's start and its end plus one clip, the smoothing and one hop; every "
              "other event, a wrong word or a second fire included, is a false accept):", "",
              *_det_table({n: result["curves"][n][smoothing] for n in CONDITIONS}), "",
              f"Operating point, chosen on both sources together and saved as `models/{result['run']}/detector.json` "
              f"(the defaults of `StreamingDetector.from_run`): threshold {result['threshold']:.3f}, smoothing "
              f"{smoothing:g} s, refractory {DEFAULT_REFRACTORY_SEC:g} s, hop {HOP_SEC:g} s. Measured there: " +
              "; ".join(f"{n} {_pct(chosen[n]['miss_rate'])} misses, {chosen[n]['fa_per_hour']:.1f} FA/h "
                        f"({chosen[n]['false_accepts']} false accepts)" for n in CONDITIONS) + ". Cross-synth misses "
              "there by voice: " + ", ".join(f"{voice} {m}/{n}" for voice, (m, n) in result["by_voice"].items()) +
              ".", "",
              f"The detector classified {minutes('both'):.1f} minutes of stream in {result['detector_seconds']:.0f} s "
              f"({minutes('both') * 60 / result['detector_seconds']:.0f}x real time) on {result['threads']} torch "
              f"thread(s) of 2 CPU cores shared with other work (load average "
              f"{', '.join(f'{x:.1f}' for x in result['load'] or [])} at the end), no GPU. With "
              f"{minutes('both') / 60:.2f} h of stream in all, one false accept is "
              f"{60 / minutes('both'):.1f} per hour: read the figures to that precision.", "", f"Made by `{command}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the run folder, e.g. models/default")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="the cross-synthesizer set")
    parser.add_argument("--streams", type=int, default=5, help="streams of each keyword source")
    parser.add_argument("--per-word", type=int, default=35, help="eSpeak keywords of each word")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-save", action="store_true", help="do not write the run's detector.json")
    args = parser.parse_args(argv)
    result = measure(args.run, args.set, args.streams, args.seed, args.per_word)
    command = command_line("detection.py", argv)
    if not args.no_save:
        chosen, point = result["chosen"]["both"], result["at_target"]["both"][result["smoothing_sec"]]
        save_operating_point(args.run, {
            "threshold": result["threshold"], "smoothing_sec": result["smoothing_sec"],
            "refractory_sec": DEFAULT_REFRACTORY_SEC, "hop_sec": HOP_SEC,
            "false_accepts_per_hour": round(chosen["fa_per_hour"], 2), "miss_rate": round(chosen["miss_rate"], 4),
            "how": (f"threshold interpolated at {_pct(TARGET_MISS)} misses" if point else
                    f"{_pct(TARGET_MISS)} misses not reached: the lowest threshold") +
                   f" on {len(result['streams']['both'])} streams "
                   f"({sum(s.duration_sec for s in result['streams']['both']) / 60:.1f} min) of flite, festival and "
                   "unseen eSpeak keywords between eSpeak non-keywords in noise (bench/detection.py); FA/h and "
                   "miss rate measured at that threshold",
            "measured": result["date"], "command": command})
    write_section(args.out, SECTION, report(result, command))
    print(report(result, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
