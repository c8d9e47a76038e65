"""k-means for the automatic discoverer: the estimator, k="auto" by silhouette, the 2-D
projection drawn in the report.  scikit-learn is imported lazily (it is slow to import)."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

#: above this many speakers k-means is MiniBatchKMeans (full Lloyd iterations over 10^6
#: speakers x 4 restarts take minutes; mini-batches of 4096 take seconds)
MINIBATCH_ABOVE = 50_000
#: k="auto": candidate k are fitted on at most this many speakers (deterministic sample) ...
AUTO_FIT_MAX = 20_000
#: ... and the silhouette score is computed on at most this many of them (it is quadratic)
SILHOUETTE_MAX = 3_000
AUTO_K_MAX = 15


def make_kmeans(k: int, n: int, seed: int):
    """The k-means estimator for n speakers."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n > MINIBATCH_ABOVE:
        return MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed)
    return KMeans(n_clusters=k, n_init=4, random_state=seed)


def algorithm(n: int) -> str:
    return "MiniBatchKMeans" if n > MINIBATCH_ABOVE else "KMeans"


def fit_labels(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster index per row of ``x``.

    One OpenMP thread: scikit-learn's k-means synchronises its threads on every chunk (every
    4,096-speaker mini-batch), and on the 2-core benchmark machine, with other work running,
    one thread was faster at every size (0.02 vs 0.23 s at 3,000 speakers, 0.27 vs 0.93 s
    at 50,000, 0.63 vs 5.5 s for MiniBatchKMeans at 300,000), with the same labels (the
    labels do not depend on the thread count; tested).
    """
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1, user_api="openmp"):
        # Fewer distinct points than k: sklearn warns and leaves clusters empty; the empty
        # ones simply get no cohort id.
        warnings.simplefilter("ignore", category=UserWarning)
        return make_kmeans(k, len(x), seed).fit(x).labels_.astype(np.int64)


def sample(n: int, m: int, seed: int) -> np.ndarray:
    """Deterministic sample of min(n, m) positions out of n, in increasing order."""
    if n <= m:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def choose_k(x: np.ndarray, k_max: int, seed: int) -> tuple[int, dict[str, float], np.ndarray | None]:
    """k in 2..k_max with the highest silhouette score; returns (k, scores, labels if fitted on all)."""
    from sklearn.metrics import silhouette_score

    fit_rows = sample(len(x), AUTO_FIT_MAX, seed)
    xf = x[fit_rows]
    sil_rows = sample(len(xf), SILHOUETTE_MAX, seed + 1)
    xs = xf[sil_rows]
    scores: dict[str, float] = {}
    best, best_labels = None, None
    for k in range(2, max(2, k_max) + 1):  # loop over candidate k, not speakers
        if k >= len(xf):
            break
        labels = fit_labels(xf, k, seed)
        ls = labels[sil_rows]
        if len(np.unique(ls)) < 2 or len(np.unique(ls)) >= len(ls):
            continue
        s = float(silhouette_score(xs, ls, metric="euclidean"))
        scores[str(k)] = round(s, 6)
        if best is None or s > scores[str(best)] + 1e-12:
            best, best_labels = k, labels
    if best is None:
        return 2, scores, None
    return best, scores, (best_labels if len(fit_rows) == len(x) else None)


def normalise(x: np.ndarray, l2: bool) -> np.ndarray:
    """Rows scaled to unit length when ``l2`` (an all-zero vector stays zero)."""
    if not l2:
        return x
    norms = np.linalg.norm(x, axis=1)
    return x / np.maximum(norms, 1e-12)[:, None]


def projection(x: np.ndarray, codes: np.ndarray, ids: np.ndarray, cohort_ids: list[str], limit: int,
               seed: int) -> dict[str, Any]:
    """2-D PCA of the (normalised) embeddings of at most ``limit`` speakers, for the report's scatter plot."""
    from sklearn.decomposition import PCA

    rows = sample(len(x), limit, seed)
    pts = x[rows].astype(np.float64)
    n_comp = min(2, pts.shape[0], pts.shape[1])
    xy = np.zeros((len(rows), 2))
    ratio = [0.0, 0.0]
    if n_comp >= 1 and len(rows) >= 2:
        pca = PCA(n_components=n_comp, random_state=seed)
        xy[:, :n_comp] = pca.fit_transform(pts)
        ratio[:n_comp] = [round(float(v), 6) for v in pca.explained_variance_ratio_]
    return {"projection": {"speaker_id": [str(s) for s in ids[rows]],
                           "x": np.round(xy[:, 0], 5).tolist(), "y": np.round(xy[:, 1], 5).tolist(),
                           "cohort": np.asarray(cohort_ids, dtype=object)[codes[rows]].tolist()},
            "explained_variance_ratio": ratio}
