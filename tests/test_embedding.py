"""lib.embedding: the 2-D maps (PCA, t-SNE) and the server's cache of maps computed ahead in a helper process."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

from lib import embedding
from lib.embedding import MapCache, embedding_2d


@pytest.mark.parametrize("method", ["pca", "tsne"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 25])
def test_embedding_2d_shapes(method, n):
    x = np.random.default_rng(n).normal(size=(n, 8))
    out = embedding_2d(x, method=method, seed=0)
    assert out.shape == (n, 2) and np.all(np.isfinite(out))
    if n == 1:
        np.testing.assert_array_equal(out, 0)


def test_embedding_2d_pca_separates_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 5)), rng.normal(6, 1, (20, 5))])
    out = embedding_2d(torch.tensor(x), "pca")
    assert abs(out[:20, 0].mean() - out[20:, 0].mean()) > 3
    np.testing.assert_array_equal(out, embedding_2d(x, "pca"))
    np.testing.assert_allclose(embedding_2d(x, "tsne", seed=1), embedding_2d(x, "tsne", seed=1))
    assert embedding_2d(np.ones((5, 1)), "pca").shape == (5, 2)  # one feature: zero second column
    with pytest.raises(ValueError):
        embedding_2d(x, "umap")


def test_embedding_2d_tsne_keeps_neighbours_and_classes_apart():
    """The short t-SNE (50 principal components, 150 iterations) still maps clusters of 80-number vectors apart and
    keeps each point's neighbours: 2-D nearest-neighbour accuracy of the clusters and trustworthiness near 1."""
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    x = rng.normal(0, 1, (200, 80)) + 3 * rng.normal(0, 1, (4, 80))[labels]
    points = embedding_2d(x, "tsne")
    assert cross_val_score(KNeighborsClassifier(5), points, labels, cv=5).mean() > 0.95
    assert trustworthiness(x, points, n_neighbors=10) > 0.9


@pytest.fixture
def maps():
    cache = MapCache(max_maps=3, max_waiting=2)
    yield cache
    cache.close()


def _vectors(seed: int, n: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 1, 4, 5)).astype(np.float32)  # (n, 1, bins, frames)


def test_a_map_asked_for_ahead_comes_from_the_helper_process_and_equals_one_computed_here(maps, monkeypatch):
    x = _vectors(0)
    expected = {method: embedding_2d(x, method) for method in ("pca", "tsne")}
    assert maps.prefetch("set|features", "pca", x) and maps.prefetch("set|features", "tsne", x)
    assert not maps.prefetch("set|features", "tsne", x)  # known: not again
    futures = dict(maps._maps)
    for future in futures.values():
        future.result(timeout=120)
    calls = []
    monkeypatch.setattr(embedding, "embedding_2d", lambda *args: calls.append(args))  # nothing computed here now
    for method in ("pca", "tsne"):
        np.testing.assert_allclose(maps.points("set|features", method, x), expected[method], rtol=1e-6, atol=1e-6)
    assert calls == []
    helpers = [p for p in maps._pool._processes.values()]
    assert [p.name.startswith("audiowb-maps-") for p in helpers] == [True]


def test_a_map_not_asked_for_is_computed_once_and_shared(maps, monkeypatch):
    calls = []
    real = embedding.embedding_2d
    monkeypatch.setattr(embedding, "embedding_2d", lambda x, m: calls.append(m) or real(x, m))
    x = _vectors(1)
    first = maps.points("a", "pca", x)
    assert maps.points("a", "pca", x) is first and calls == ["pca"]
    np.testing.assert_array_equal(first, real(x, "pca"))
    with pytest.raises(ValueError, match="umap"):  # a failure is not kept: asked again, it fails again
        maps.points("a", "umap", x)
    with pytest.raises(ValueError, match="umap"):
        maps.points("a", "umap", x)


def test_the_cache_is_bounded(maps):
    for i in range(5):
        maps.points(f"set{i}", "pca", _vectors(i, 8))
    assert list(maps._maps) == [("set2", "pca"), ("set3", "pca"), ("set4", "pca")]  # the 3 most recent
    maps.points("set2", "pca", _vectors(2, 8))  # used again: the most recent now
    maps.points("set5", "pca", _vectors(5, 8))
    assert list(maps._maps) == [("set4", "pca"), ("set2", "pca"), ("set5", "pca")]
    slow = _vectors(9, 200)
    assert maps.prefetch("big", "tsne", slow) and maps.prefetch("big2", "tsne", slow)
    assert not maps.prefetch("big3", "tsne", slow)  # two unfinished already: not started


def test_a_helper_that_dies_costs_only_time(maps):
    x = _vectors(3, 300)
    assert maps.prefetch("set", "tsne", x)
    deadline = time.monotonic() + 60
    while not maps._pool._processes and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in list(maps._pool._processes):
        os.kill(pid, signal.SIGKILL)
    np.testing.assert_allclose(maps.points("set", "tsne", x), embedding_2d(x, "tsne"), rtol=1e-6, atol=1e-6)
    assert maps.prefetch("set", "pca", x)  # a new helper
    np.testing.assert_allclose(maps.points("set", "pca", x), embedding_2d(x, "pca"))
    for pid in list(maps._pool._processes):  # a helper that dies between two maps
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not maps._pool._broken and time.monotonic() < deadline:
        time.sleep(0.05)
    assert maps.prefetch("other", "pca", x)  # a new helper again
    np.testing.assert_allclose(maps.points("other", "pca", x), embedding_2d(x, "pca"))
