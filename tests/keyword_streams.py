"""Keyword streams for the detection tests (lib.serving.stream, lib.serving.listen, the Listen page): built-in clips the shipped
model knows well, placed at known times in quiet noise. The fixtures ``shipped_classifier`` and ``clear_clips`` are
in tests/conftest.py."""

from __future__ import annotations

import numpy as np
import torch

RATE = 16000
PLACEMENTS = [("yes", 1.0), ("no", 4.5), ("up", 8.0), ("yes", 11.5), ("no", 15.0), ("up", 18.5)]


def clear_word_clips(dataset, classifier) -> dict[str, list[np.ndarray]]:
    """Per word of ``dataset``, the clips ``classifier`` gets right with probability > 0.95 whose word (samples
    over 5% of the peak) lasts 0.2 to 0.8 s: the word with 30 ms either side."""
    waveforms = torch.stack([torch.as_tensor(w).reshape(-1)[:RATE] for w in dataset.waveforms])
    probabilities = classifier.predict_batch(waveforms).numpy()
    clips: dict[str, list[np.ndarray]] = {}
    margin = int(0.03 * RATE)
    for waveform, label, p in zip(waveforms.numpy(), dataset.labels, probabilities):
        word = dataset.class_names[int(label)]
        loud = np.flatnonzero(np.abs(waveform) > 0.05 * np.abs(waveform).max())
        if classifier.class_names[int(p.argmax())] == word and p.max() > 0.95 \
                and 0.2 * RATE <= loud[-1] - loud[0] <= 0.8 * RATE:
            clips.setdefault(word, []).append(waveform[max(0, loud[0] - margin):loud[-1] + margin])
    return clips


def noise(seconds: float, rms: float = 0.003, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * rms).astype(np.float32)


def make_stream(clips: dict[str, list[np.ndarray]], placements: list[tuple[str, float]], seconds: float,
                seed: int = 0) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Clips placed at known times in quiet noise: the waveform and ``[(word, start_sec, end_sec)]``."""
    waveform, placed, used = noise(seconds, seed=seed), [], {}
    for word, start in placements:
        clip = clips[word][used.get(word, 0) % len(clips[word])]
        used[word] = used.get(word, 0) + 1
        first = int(start * RATE)
        waveform[first:first + len(clip)] += clip / np.abs(clip).max() * 0.5
        placed.append((word, start, start + len(clip) / RATE))
    return waveform, placed
