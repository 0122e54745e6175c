"""2-D maps of clips: PCA and t-SNE of their vectors (features, or what a model learned), and the server's cache of
maps, computed ahead in a helper process while the user looks at something else.

Only numpy and scikit-learn (no torch, no plotly), so that the helper process starts in about a second.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from lib.processes import helper_pool

__all__ = ["embedding_2d", "MapCache", "MAPS", "TSNE_INPUT_DIMS", "TSNE_MAX_ITER", "TSNE_EXAGGERATED_ITER",
           "TSNE_ANGLE", "TSNE_LEARNING_RATE_DIVISOR"]

#: t-SNE reads at most this many principal components of the standardised features (PCA first, as is usual: the
#: neighbours of 4,040-number spectrograms cost little more to find in 50 dimensions, and are nearly the same).
TSNE_INPUT_DIMS = 50
#: t-SNE's iterations (the first :data:`TSNE_EXAGGERATED_ITER` with early exaggeration), its Barnes-Hut angle and
#: learning rate ``n / TSNE_LEARNING_RATE_DIVISOR``. With a large learning rate (Belkina et al. 2019) 150 iterations
#: and angle 0.9 reach the map scikit-learn's defaults (n / 48, 1,000 iterations, 250 exaggerated, angle 0.5) reach:
#: on 2,000 built-in clips the same trustworthiness (0.994 for a model's learned vectors, 0.985 for input features)
#: and the same 10-nearest-neighbour accuracy of the classes in 2-D (0.987; 0.33), in about an eighth of the time
#: (1.8 s and 2.7 s on one thread, most of it the Barnes-Hut gradient; 250 iterations at angle 0.7 and n / 12, the
#: settings before: 3.0 s and 5.1 s).
TSNE_MAX_ITER = 150
TSNE_EXAGGERATED_ITER = 40
TSNE_ANGLE = 0.9
TSNE_LEARNING_RATE_DIVISOR = 8


def embedding_2d(features: Any, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Projects ``(n, d)`` features (an array, or a CPU tensor) to 2-D for :func:`lib.plots.fig_embedding`.

    Features are standardised (zero mean, unit variance per dimension; non-finite values become 0; in float32 for
    t-SNE, which computes in float32: half the time for 2,000 x 4,040 input features),
    then ``"pca"`` keeps the first two principal components and ``"tsne"`` runs t-SNE on the first
    :data:`TSNE_INPUT_DIMS` principal components (perplexity ``min(30, (n - 1) / 3)``, ``init="pca"``, learning
    rate ``max(n / 8, 50)``, :data:`TSNE_MAX_ITER` iterations, angle :data:`TSNE_ANGLE`, ``random_state=seed``).
    Small inputs are handled: ``n <= 1`` gives zeros, missing components are zero columns, and t-SNE with ``n < 4``
    falls back to PCA.

    Everything runs on one BLAS and one OpenMP thread: on two busy cores their threads spin-wait for each other
    (the PCA of 2,000 x 4,040 features takes 0.9-1.8 s with two threads, 0.25 s with one), and with torch's libgomp
    loaded next to scikit-learn's, t-SNE's OpenMP loops can spin for a minute on a 25-point input.

    Returns:
        np.ndarray: ``(n, 2)`` float64.
    """
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    x = np.asarray(features, dtype=np.float32 if method == "tsne" else float)  # t-SNE computes in float32 anyway
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        x = x.reshape(x.shape[0], -1)
    n, d = x.shape
    out = np.zeros((n, 2))
    if n <= 1 or d == 0:
        return out
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        x = StandardScaler().fit_transform(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0))
        if not np.any(x):  # every feature constant: nothing to project
            return out
        if method == "tsne" and n >= 4:
            return _tsne_2d(x, seed)
        k = min(2, n, d)
        out[:, :k] = np.nan_to_num(_pca(x, k, seed))
    return out


def _pca(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``(n, k)``: the first ``k`` principal components of ``x`` ``(n, d)``."""
    from sklearn.decomposition import PCA

    return PCA(n_components=k, random_state=seed).fit_transform(x)


def _tsne_2d(x: np.ndarray, seed: int) -> np.ndarray:
    """``(n, 2)``: t-SNE of standardised ``x`` ``(n, d)``, ``n >= 4`` (see :func:`embedding_2d`)."""
    from numbers import Integral

    from sklearn.manifold import TSNE
    from sklearn.utils._param_validation import Interval

    class ShortTSNE(TSNE):
        _EXPLORATION_MAX_ITER = TSNE_EXAGGERATED_ITER  # scikit-learn's early-exaggeration length (250 by default)
        # scikit-learn asks for at least 250 iterations (what its small learning rate needs)
        _parameter_constraints = {**TSNE._parameter_constraints,
                                  "max_iter": [Interval(Integral, 1, None, closed="left")]}

    n, d = x.shape
    if d > TSNE_INPUT_DIMS and n > TSNE_INPUT_DIMS:
        x = _pca(x, TSNE_INPUT_DIMS, seed)
    if x.shape[1] < 2:
        x = np.concatenate([x, np.zeros((n, 2 - x.shape[1]))], axis=1)
    tsne = ShortTSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca",
                     learning_rate=max(n / TSNE_LEARNING_RATE_DIVISOR, 50.0), max_iter=TSNE_MAX_ITER, angle=TSNE_ANGLE,
                     random_state=seed)
    return tsne.fit_transform(x).astype(float)


def _import_what_maps_need() -> None:
    """In the helper process: the imports of :func:`embedding_2d` (scikit-learn's are most of a second)."""
    for name in ("sklearn.decomposition", "sklearn.manifold", "sklearn.preprocessing", "threadpoolctl"):
        importlib.import_module(name)


class MapCache:
    """The 2-D maps of a server's pages, each computed once per ``(key, method)`` and shared by every session.

    A page asks ahead for the maps a user is likely to open next (:meth:`prefetch`: the other projection of the map
    on screen, the input features' maps while the page draws); they are computed one after another in a helper
    process (:func:`lib.processes.helper_pool`, its own interpreter: a t-SNE in a thread of the server would share
    its GIL with every page and run several times slower). :meth:`points` then returns at once, waits for a map the
    helper is computing, or computes it in the calling thread (a map not asked for ahead, or still waiting in line:
    taken out of the line). A helper that dies (killed, out of memory) costs only the time: its maps are computed
    in the calling thread and the next :meth:`prefetch` starts a new helper.

    Bounded: at most ``max_maps`` finished maps (``(n, 2)`` each, the least recently used dropped first) and at most
    ``max_waiting`` maps not finished (further :meth:`prefetch` calls do nothing), since each holds its vectors.

    Args:
        max_maps: finished maps kept.
        max_waiting: maps asked for and not finished, at most.
    """

    def __init__(self, max_maps: int = 32, max_waiting: int = 4) -> None:
        self.max_maps, self.max_waiting = max_maps, max_waiting
        self._lock = threading.Lock()
        self._maps: OrderedDict[tuple[str, str], Future] = OrderedDict()
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the helper process and its imports now (about a second), unless it runs: the first map asked for
        then does not wait for them."""
        with self._lock:
            if self._pool is None:
                try:
                    self._pool = helper_pool("maps")
                    self._pool.submit(_import_what_maps_need)
                except RuntimeError:  # the server is shutting down
                    self._pool = None

    def prefetch(self, key: str, method: str, vectors: Any) -> bool:
        """Start computing map ``key`` by ``method`` (:func:`embedding_2d` of ``vectors`` ``(n, ...)``) in the helper
        process, unless it is known or ``max_waiting`` maps are not finished. ``key`` must name the vectors (they are
        not hashed). Returns whether it was started."""
        with self._lock:
            if (key, method) in self._maps or self._unfinished() >= self.max_waiting:
                return False
            try:
                pool = self._pool or helper_pool("maps")
                try:
                    future = pool.submit(embedding_2d, np.asarray(vectors), method)
                except BrokenProcessPool:  # the helper died since the last map: a new one
                    pool = helper_pool("maps")
                    future = pool.submit(embedding_2d, np.asarray(vectors), method)
            except RuntimeError:  # the server is shutting down
                self._pool = None
                return False
            self._pool = pool
            self._remember((key, method), future)
            return True

    def points(self, key: str, method: str, vectors: Any) -> np.ndarray:
        """``(n, 2)`` float64: map ``key`` by ``method`` of ``vectors`` ``(n, ...)`` (see :meth:`prefetch`)."""
        with self._lock:
            future = self._maps.get((key, method))
            if future is not None and future.cancel():  # still waiting in line: computed here, now
                future = None
            mine = future is None
            if mine:  # others asking meanwhile wait for this thread's result
                future = Future()
                future.set_running_or_notify_cancel()
            self._remember((key, method), future)
        if not mine:
            try:
                return future.result()
            except Exception as error:  # noqa: BLE001 - the helper died, or failed: computed (or failing) here
                with self._lock:
                    if isinstance(error, BrokenProcessPool):
                        self._pool = None
                    if self._maps.get((key, method)) is future:
                        del self._maps[(key, method)]
                return self.points(key, method, vectors)
        try:
            points = embedding_2d(vectors, method)
        except BaseException as error:
            future.set_exception(error)
            with self._lock:
                if self._maps.get((key, method)) is future:
                    del self._maps[(key, method)]
            raise
        future.set_result(points)
        with self._lock:
            self._forget_old()
        return points

    def close(self) -> None:
        """Forget every map and stop the helper process (a new one starts on the next :meth:`prefetch`)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._maps.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _unfinished(self) -> int:
        return sum(not future.done() for future in self._maps.values())

    def _remember(self, name: tuple[str, str], future: Future) -> None:
        """Keep ``future`` as the newest map (see :meth:`_forget_old`)."""
        self._maps[name] = future
        self._maps.move_to_end(name)
        self._forget_old()

    def _forget_old(self) -> None:
        """Drop the least recently used finished maps beyond ``max_maps``."""
        finished = [other for other, f in self._maps.items() if f.done()]
        for other in finished[:max(0, len(finished) - self.max_maps)]:
            del self._maps[other]


#: The server's maps (every page and session shares them).
MAPS = MapCache()
