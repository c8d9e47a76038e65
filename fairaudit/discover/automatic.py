"""Automatic cohorts (Dheram et al., Interspeech 2022): k-means on speaker embeddings.

Each speaker has an embedding from a speaker-identification model (one vector per
speaker, or per-utterance vectors averaged per speaker; see
:func:`fairaudit.io.embeddings.read_embeddings`).  k-means groups the speakers into k
clusters, the paper's "virtual speaker regions": groups of similar-sounding speakers, not
identities and not human labels.  The caller ranks the clusters by WER.

The clustering never looks at errors, so it is computed once and cached: the statistics
layer re-runs :meth:`AutomaticDiscoverer.fit` with permuted ``errors``/``ref_words`` (e.g.
200 times) and every re-run on the same speakers and the same embedding matrix returns
the cached clusters without running k-means again.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserInputError
from .base import Discoverer, Discovery, NotEnoughData, SideInputs, check_int, register

NO_EMBEDDING = "no embedding"
MISSING_REASON = "no speaker embeddings (pass --embeddings FILE [--embedding-ids FILE])"

#: above this many speakers k-means is MiniBatchKMeans (full Lloyd iterations over 10^6
#: speakers x 4 restarts take minutes; mini-batches of 4096 take seconds)
MINIBATCH_ABOVE = 50_000
#: k="auto": candidate k are fitted on at most this many speakers (deterministic sample) ...
AUTO_FIT_MAX = 20_000
#: ... and the silhouette score is computed on at most this many of them (it is quadratic)
SILHOUETTE_MAX = 3_000
AUTO_K_MAX = 15
#: reverse geocoding of members' lat/lon (cluster descriptions): at most this many speakers
GEOCODE_MAX = 2_000
#: attribute columns with more distinct values than this are not described
MAX_CATEGORIES = 30
TOP_VALUES = 5
#: columns of the speaker table that are counts, ids or coordinates, never described
_NOT_ATTRIBUTES = {"speaker_id", "utterances", "ref_words", "hits", "substitutions", "deletions", "insertions",
                   "errors", "wer", "lat", "lon", "zip", "coords_approx"}


def _check_int(value: Any, name: str, flag: str, minimum: int) -> int:
    return check_int(value, name, flag, minimum, "automatic")


# ---------------------------------------------------------------- the cache


@dataclass
class _Clustering:
    """Everything about one clustering that does not depend on errors."""

    emb_ref: Any                   # weakref to side.embeddings (identity check on lookup)
    ids_ref: Any                   # weakref (or the object) of side.embedding_ids
    assignment: pd.Series          # cohort id per audited speaker, table order
    not_audited: dict[str, int]
    params: dict[str, Any]
    details: dict[str, Any]
    members: np.ndarray            # positions (into the table) of the audited speakers, sorted by id
    codes: np.ndarray              # cluster index 0..k-1 per member (same order)
    cohort_ids: list[str]
    centroid_norms: list[float]
    descriptions: OrderedDict = field(default_factory=OrderedDict)  # attribute hash -> (labels, cohort_details)


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached clustering (tests; long-running processes)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _ref(obj: Any) -> Any:
    # A weak reference lets the cache check identity without keeping a large matrix alive
    # (and an id() can be reused once the object is freed; the weakref then returns None).
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj  # e.g. a list of ids: keep it (small)


def _hash_values(values: pd.DataFrame | pd.Series) -> str:
    h = pd.util.hash_pandas_object(values, index=False).to_numpy()
    return hashlib.blake2b(h.tobytes(), digest_size=16).hexdigest()


# ---------------------------------------------------------------- k-means


def _kmeans(k: int, n: int, seed: int):
    """The k-means estimator for n speakers (imported lazily: sklearn is slow to import)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n > MINIBATCH_ABOVE:
        return MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed)
    return KMeans(n_clusters=k, n_init=4, random_state=seed)


def _fit_labels(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    with warnings.catch_warnings():
        # Fewer distinct points than k: sklearn warns and leaves clusters empty; the empty
        # ones simply get no cohort id.
        warnings.simplefilter("ignore", category=UserWarning)
        return _kmeans(k, len(x), seed).fit(x).labels_.astype(np.int64)


def _sample(n: int, m: int, seed: int) -> np.ndarray:
    """Deterministic sample of min(n, m) positions out of n, in increasing order."""
    if n <= m:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def _choose_k(x: np.ndarray, k_max: int, seed: int) -> tuple[int, dict[str, float], np.ndarray | None]:
    """k in 2..k_max with the highest silhouette score; returns (k, scores, labels if fitted on all)."""
    from sklearn.metrics import silhouette_score

    fit_rows = _sample(len(x), AUTO_FIT_MAX, seed)
    xf = x[fit_rows]
    sil_rows = _sample(len(xf), SILHOUETTE_MAX, seed + 1)
    xs = xf[sil_rows]
    scores: dict[str, float] = {}
    best, best_labels = None, None
    for k in range(2, max(2, k_max) + 1):  # loop over candidate k, not speakers
        if k >= len(xf):
            break
        labels = _fit_labels(xf, k, seed)
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


# ---------------------------------------------------------------- the discoverer


@register
class AutomaticDiscoverer(Discoverer):
    """k-means clusters of speaker embeddings (Dheram et al. 2022), ranked by WER by the caller.

    Parameters
    ----------
    min_speakers : int, default 20
        Smallest cohort (speakers) the caller ranks as bottom/top.  k-means cannot
        guarantee it: smaller clusters are still returned and the caller marks them "too
        few speakers".  It bounds k: ``k <= max(2, speakers_with_embedding // min_speakers)``.
    seed : int, default 0
        Seeds k-means, the k="auto" samples and the projection sample: same seed, same
        clusters.
    k : int or "auto", default 10
        Number of clusters (``--k``).  ``"auto"`` picks k in 2..min(15, n // min_speakers)
        maximising the mean silhouette score (Rousseeuw 1987: for each speaker, (b - a) /
        max(a, b) with a = mean distance to its own cluster and b = mean distance to the
        nearest other cluster; higher = tighter, better separated clusters).  Each
        candidate is fitted on the speakers (at most 20,000, sampled deterministically) and
        scored on a deterministic sample of at most 3,000 of them (the score is quadratic
        in the points scored); the final clustering with the chosen k uses every speaker.
    l2_normalize : bool, default True
        Scale every embedding to unit length before clustering.  Speaker-ID embeddings
        (x-vectors, ECAPA, ...) are trained to be compared by cosine similarity; their
        length carries mostly recording conditions and duration, not who speaks.  On unit
        vectors Euclidean k-means is cosine k-means (|a - b|^2 = 2 - 2 cos(a, b)).
    max_projection_points : int, default 5000
        Speakers (count, sampled deterministically) in the 2-D PCA projection the report
        draws; 0 = no projection.

    k-means is scikit-learn ``KMeans(n_init=4)`` up to 50,000 speakers and
    ``MiniBatchKMeans(batch_size=4096, n_init=3)`` above (it scales to 10^6 speakers).
    Clusters are numbered C01.. by size (largest first), ties by centroid coordinates.

    Speakers of the table without an embedding are not audited ("no embedding");
    embeddings of speakers not in the table are ignored and counted
    (``details["embeddings_without_scores"]``).
    """

    name = "automatic"
    fixed_cohorts = True

    def __init__(self, min_speakers: int = 20, seed: int = 0, k: int | str = 10, l2_normalize: bool = True,
                 max_projection_points: int = 5000):
        super().__init__(min_speakers, seed)
        self.k = k
        self.l2_normalize = l2_normalize
        self.max_projection_points = max_projection_points

    # ------------------------------------------------------------ inputs

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        if side.embeddings is None or side.embedding_ids is None:
            return MISSING_REASON
        ids = pd.Index(np.asarray(side.embedding_ids).astype(str))
        table = speakers["speaker_id"].astype(str)
        if len(table) and not table.isin(ids).any():
            return (f"none of the {len(table)} speakers has an embedding (embedding ids look like "
                    f"{ids[0] if len(ids) else 'nothing'!r}, speaker ids like {table.iloc[0]!r}; "
                    f"--embedding-ids must use the speaker ids of the input)")
        return None

    def _validate(self) -> tuple[int, int, int | str, bool, int]:
        min_speakers = _check_int(self.min_speakers, "min_speakers", "--min-speakers", 1)
        seed = _check_int(self.seed, "seed", "--seed", 0)
        k = self.k
        if isinstance(k, str):
            text = k.strip().lower()
            if text == "auto":
                k = "auto"
            elif text.isdigit():
                k = int(text)
            else:
                raise UserInputError(f"automatic discoverer: k must be a whole number >= 2 or 'auto', not {k!r}",
                                     hint="pass --k 10 or --k auto")
        if k != "auto":
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
                raise UserInputError(f"automatic discoverer: k must be a whole number >= 2 or 'auto', not {k!r}",
                                     hint="pass --k 10 or --k auto (k-means needs at least 2 clusters)")
            k = int(k)
        if not isinstance(self.l2_normalize, (bool, np.bool_)):
            raise UserInputError(f"automatic discoverer: l2_normalize must be True or False, not "
                                 f"{self.l2_normalize!r}", hint="params={'automatic': {'l2_normalize': True}}")
        proj = self.max_projection_points
        if isinstance(proj, bool) or not isinstance(proj, (int, np.integer)) or proj < 0:
            raise UserInputError(f"automatic discoverer: max_projection_points must be an integer >= 0, not "
                                 f"{proj!r}", hint="params={'automatic': {'max_projection_points': 5000}}")
        proj = int(proj)
        return min_speakers, seed, k, bool(self.l2_normalize), proj

    # ------------------------------------------------------------ fit

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        """Cluster the speakers' embeddings (cached: see the module docstring)."""
        min_speakers, seed, k, l2, proj = self._validate()
        if side.embeddings is None or side.embedding_ids is None:
            raise UserInputError(f"automatic discoverer: {MISSING_REASON}")
        table_ids = speakers["speaker_id"]
        key = (id(side.embeddings), id(side.embedding_ids), _hash_values(table_ids), len(table_ids),
               k, seed, l2, proj, min_speakers)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None and (hit.emb_ref() is not side.embeddings or hit.ids_ref() is not side.embedding_ids):
                del _CACHE[key]  # the id was reused by another object
                hit = None
            if hit is not None:
                _CACHE.move_to_end(key)
        if hit is None:
            hit = self._cluster(speakers, side, min_speakers, seed, k, l2, proj)
            with _CACHE_LOCK:
                _CACHE[key] = hit
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)

        labels, cohort_details = self._describe(hit, speakers, seed)
        # Copies: the caller may annotate what it gets without corrupting the cache.
        return Discovery(assignment=hit.assignment.copy(), labels=dict(labels),
                         not_audited=dict(hit.not_audited), params=dict(hit.params),
                         details=copy.deepcopy(hit.details), cohort_details=copy.deepcopy(cohort_details))

    def _cluster(self, speakers: pd.DataFrame, side: SideInputs, min_speakers: int, seed: int, k: int | str,
                 l2: bool, proj: int) -> _Clustering:
        where = side.embeddings_path
        emb = np.asarray(side.embeddings)
        emb_ids = np.asarray(side.embedding_ids).astype(str)
        if emb.ndim != 2 or emb.shape[0] != len(emb_ids):
            raise UserInputError(f"automatic discoverer: embeddings of shape {emb.shape} do not match "
                                 f"{len(emb_ids)} embedding ids", path=where,
                                 hint="one matrix row per id in --embedding-ids")
        index = pd.Index(emb_ids)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise UserInputError(f"automatic discoverer: embedding id {dup!r} appears more than once", path=where,
                                 hint="one embedding per speaker")
        table_ids = speakers["speaker_id"].astype(str).to_numpy(dtype=object)
        pos = index.get_indexer(table_ids)
        has = pos >= 0
        not_audited = {NO_EMBEDDING: int((~has).sum())} if (~has).any() else {}
        # Sorted by speaker id: the clustering does not depend on the table's row order.
        members = np.flatnonzero(has)
        members = members[np.argsort(table_ids[members], kind="stable")]
        n = len(members)
        if n == 0:
            raise UserInputError(f"automatic discoverer: none of the {len(table_ids)} speakers has an embedding",
                                 path=where, hint="--embedding-ids (or the speaker_id column) must use the "
                                                  "speaker ids of the input")
        x = np.asarray(emb[pos[members]], dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if len(bad):
            raise UserInputError(f"automatic discoverer: the embedding of speaker {table_ids[members[bad[0]]]!r} "
                                 f"has a non-finite value", path=where, hint="fix or drop that row")
        if l2:
            norms = np.linalg.norm(x, axis=1)
            x = x / np.maximum(norms, 1e-12)[:, None]  # an all-zero vector stays zero
        k_cap = max(2, n // min_speakers)
        labels = None
        if k == "auto":
            if n < 3:
                raise NotEnoughData(f"automatic discoverer: {n} speaker(s) with an embedding are too few to "
                                     f"cluster", hint="pass embeddings for more speakers")
            k_eff, scores, labels = _choose_k(x, min(AUTO_K_MAX, k_cap), seed)
            selection: Any = {"criterion": "silhouette", "scores": scores, "candidates_fitted_on": int(
                min(n, AUTO_FIT_MAX)), "scored_on": int(min(n, AUTO_FIT_MAX, SILHOUETTE_MAX))}
        else:
            if k > n:
                raise NotEnoughData(f"automatic discoverer: k={k} clusters but only {n} speakers have an "
                                     f"embedding", hint=f"pass --k {k_cap} or less (or --k auto)")
            if k > k_cap:
                raise NotEnoughData(
                    f"automatic discoverer: k={k} clusters of {n} speakers would average fewer than "
                    f"min_speakers={min_speakers} speakers each", hint=f"pass --k {k_cap} or less, --k auto, "
                                                                       f"or a smaller --min-speakers")
            k_eff, selection = k, "fixed"
        if labels is None:
            labels = _fit_labels(x, k_eff, seed)

        # Cohort ids: largest cluster first; ties by centroid coordinates (deterministic).
        present, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
        order = np.argsort(codes, kind="stable")
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        centroids = np.add.reduceat(x[order].astype(np.float64), starts, axis=0) / sizes[:, None]
        rank = np.lexsort(tuple(centroids[:, j] for j in range(centroids.shape[1] - 1, -1, -1)) + (-sizes,))
        new_code = np.empty(len(present), dtype=np.int64)
        new_code[rank] = np.arange(len(present))
        codes = new_code[codes]
        sizes, centroids = sizes[rank], centroids[rank]
        width = max(2, len(str(len(present))))
        cohort_ids = [f"C{i + 1:0{width}d}" for i in range(len(present))]

        assign = np.empty(len(table_ids), dtype=object)
        assign[members] = np.asarray(cohort_ids, dtype=object)[codes]
        in_table = np.sort(members)  # table order
        assignment = pd.Series(assign[in_table], index=pd.Index(table_ids[in_table], name="speaker_id"),
                               dtype=object, name="cohort")

        details: dict[str, Any] = {
            "k": int(k_eff), "k_selection": selection,
            "algorithm": "MiniBatchKMeans" if n > MINIBATCH_ABOVE else "KMeans",
            "clusters_found": int(len(present)), "speakers_clustered": int(n),
            "embedding_dim": int(x.shape[1]), "l2_normalize": l2,
            "embeddings_without_scores": int(len(emb_ids) - has.sum()),
        }
        if proj > 0:
            details.update(_projection(x, codes, table_ids[members], cohort_ids, proj, seed))
        params = {"k": int(k_eff), "k_requested": k if k == "auto" else int(k), "min_speakers": min_speakers,
                  "seed": seed, "l2_normalize": l2, "max_projection_points": proj,
                  "algorithm": details["algorithm"]}
        return _Clustering(emb_ref=_ref(side.embeddings), ids_ref=_ref(side.embedding_ids), assignment=assignment,
                           not_audited=not_audited, params=params, details=details, members=members, codes=codes,
                           cohort_ids=cohort_ids,
                           centroid_norms=[float(v) for v in np.linalg.norm(centroids, axis=1)])

    # ------------------------------------------------------------ descriptions

    def _describe(self, c: _Clustering, speakers: pd.DataFrame, seed: int) -> tuple[dict, dict]:
        """Labels and cohort_details from what is known of the members (cached per attribute values)."""
        cols = [col for col in speakers.columns if _describable(col, speakers[col])]
        geo = [col for col in ("lat", "lon") if col in speakers.columns]
        key = (tuple(cols), _hash_values(speakers[cols + geo]) if cols or geo else "")
        cached = c.descriptions.get(key)
        if cached is not None:
            return cached
        k = len(c.cohort_ids)
        sizes = np.bincount(c.codes, minlength=k)
        sub = speakers.iloc[c.members]
        details = {cid: {"size": int(sizes[i]), "attribute_mix": {}, "centroid_norm": round(c.centroid_norms[i], 6)}
                   for i, cid in enumerate(c.cohort_ids)}
        for col in cols:  # loop over attribute columns; each is one vectorised group-by
            if speakers[col].nunique(dropna=True) > MAX_CATEGORIES:
                continue  # ids, free text, fine-grained numbers: no useful "mix"
            values = sub[col].astype("string").str.strip().fillna("(missing)").replace("", "(missing)")
            counts = pd.crosstab(c.codes, values.to_numpy(dtype=object))
            shares = counts.div(counts.sum(axis=1), axis=0)
            for i, row in shares.iterrows():  # loop over clusters
                top = row[row > 0].sort_values(ascending=False, kind="stable").head(TOP_VALUES)
                details[c.cohort_ids[i]]["attribute_mix"][str(col)] = {str(v): round(float(s), 4)
                                                                       for v, s in top.items()}
        if len(geo) == 2:
            for i, (region, share) in _main_regions(sub["lat"], sub["lon"], c.codes, k, seed).items():
                details[c.cohort_ids[i]]["main_region"] = region
                details[c.cohort_ids[i]]["main_region_share"] = round(share, 4)
        labels = {cid: _label(cid, details[cid]) for cid in c.cohort_ids}
        c.descriptions[key] = (labels, details)
        while len(c.descriptions) > 4:
            c.descriptions.popitem(last=False)
        return labels, details


def _describable(col: Any, values: pd.Series) -> bool:
    """Categorical attribute columns: not counts/ids/coordinates, not continuous numbers."""
    name = str(col)
    if name in _NOT_ATTRIBUTES or name.endswith("_id") or name.startswith("_"):
        return False
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return False  # continuous: income, age in years as float, ...
    return True


def _label(cid: str, d: dict) -> str:
    """'cluster C03 (212 speakers): 61% female, 45-64 most common, mostly Georgia'."""
    parts = []
    for col, mix in list(d["attribute_mix"].items())[:3]:
        value, share = next(iter(mix.items()))
        if value == "(missing)":
            continue
        plain = value.lower() not in ("true", "false", "yes", "no", "y", "n") and not _is_number(value)
        shown = value if plain else f"{col}={value}"
        parts.append(f"{round(100 * share)}% {shown}" if share >= 0.5 else f"{shown} most common")
    if "main_region" in d:
        parts.append(f"mostly {d['main_region']}" if d["main_region_share"] >= 0.5
                     else f"most often {d['main_region']} ({round(100 * d['main_region_share'])}%)")
    head = f"cluster {cid} ({d['size']} speakers)"
    return f"{head}: {', '.join(parts)}" if parts else head


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _main_regions(lat: pd.Series, lon: pd.Series, codes: np.ndarray, k: int,
                  seed: int) -> dict[int, tuple[str, float]]:
    """Most common US state (or 'region (country)') of each cluster's members, from lat/lon.

    One offline ``reverse_geocoder`` call for all clusters, on at most GEOCODE_MAX members
    (an equal quota per cluster, sampled deterministically).  Returns {} when the package
    is unavailable or no member has usable coordinates.
    """
    la = pd.to_numeric(lat, errors="coerce").to_numpy(dtype=float)
    lo = pd.to_numeric(lon, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(la) & np.isfinite(lo) & (np.abs(la) <= 90) & (np.abs(lo) <= 180) & ~((la == 0) & (lo == 0))
    valid = np.flatnonzero(ok)
    if len(valid) == 0:
        return {}
    try:
        import reverse_geocoder
    except ImportError:
        return {}
    quota = max(1, GEOCODE_MAX // k)
    perm = valid[np.random.default_rng(seed).permutation(len(valid))]
    rank = pd.Series(codes[perm]).groupby(codes[perm]).cumcount().to_numpy()
    chosen = perm[rank < quota]
    try:
        # reverse_geocoder prints a progress line on stdout; keep stdout clean for the CLI.
        with contextlib.redirect_stdout(io.StringIO()):
            found = reverse_geocoder.search(list(zip(la[chosen].tolist(), lo[chosen].tolist())), mode=1)
    except Exception:  # a description is optional: never fail the audit over the geocoder
        return {}
    region = np.array([r.get("admin1", "") if r.get("cc") == "US" else f"{r.get('admin1', '')} ({r.get('cc', '')})"
                       for r in found], dtype=object)
    frame = pd.DataFrame({"code": codes[chosen], "region": region})
    frame = frame[frame["region"].str.strip().str.len() > 0]
    counts = frame.groupby(["code", "region"]).size().reset_index(name="n")
    counts = counts.sort_values(["code", "n", "region"], ascending=[True, False, True], kind="stable")
    totals = counts.groupby("code")["n"].sum()
    top = counts.drop_duplicates("code")
    return {int(r.code): (str(r.region), float(r.n / totals[r.code])) for r in top.itertuples()}


def _projection(x: np.ndarray, codes: np.ndarray, ids: np.ndarray, cohort_ids: list[str], limit: int,
                seed: int) -> dict[str, Any]:
    """2-D PCA of the (normalised) embeddings of at most ``limit`` speakers, for the report's scatter plot."""
    from sklearn.decomposition import PCA

    rows = _sample(len(x), limit, seed)
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
