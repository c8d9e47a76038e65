"""Automatic cohorts (Dheram et al., Interspeech 2022): k-means on speaker embeddings.

Each speaker has an embedding from a speaker-identification model (one vector per
speaker, or per-utterance vectors averaged per speaker; see
:func:`fairaudit.io.embeddings.read_embeddings`).  k-means groups the speakers into k
clusters, the paper's "virtual speaker regions": groups of similar-sounding speakers, not
identities and not human labels.  The caller ranks the clusters by WER.

The clustering never looks at errors (``fixed_cohorts``): the statistics layer re-measures
the audit's own clusters on permuted counts and on held-out halves instead of running
k-means again, so nothing is cached here.  k-means and the projection live in
:mod:`.kmeans`, the cluster descriptions in :mod:`.cluster_description`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserInputError
from ..lookup import isin
from . import kmeans as km
from .base import Discoverer, Discovery, NotEnoughData, SideInputs, register
from .cluster_description import describe
from .params import Interval, Options
from .planting import Planter

NO_EMBEDDING = "no embedding"
MISSING_REASON = "no speaker embeddings (pass --embeddings FILE [--embedding-ids FILE])"


class NeighbourPlanter(Planter):
    """The k nearest neighbours of a random audited speaker in embedding space (cosine
    similarity on L2-normalised embeddings, as the k-means uses)."""

    kind = "nearest neighbours of a random speaker in embedding space"

    def __init__(self, x: np.ndarray, ids: np.ndarray):
        super().__init__(len(ids))
        self.x, self.ids = x, ids

    def draw(self, gen, row):
        c = int(gen.integers(self.n))
        sim = self.x @ self.x[c]
        idx = np.sort(np.argsort(-sim, kind="stable")[:row.size])
        return idx, f"the {len(idx)} nearest neighbours of speaker {self.ids[c]} in embedding space"


def _matrix(side: SideInputs) -> tuple[np.ndarray, pd.Index]:
    """(embedding matrix, its speaker ids as strings), checked."""
    where = side.embeddings_path
    emb = np.asarray(side.embeddings)
    emb_ids = np.asarray(side.embedding_ids).astype(str)
    if emb.ndim != 2 or emb.shape[0] != len(emb_ids):
        raise UserInputError(f"automatic discoverer: embeddings of shape {emb.shape} do not match "
                             f"{len(emb_ids)} embedding ids", path=where, hint="one matrix row per id in --embedding-ids")
    index = pd.Index(emb_ids)
    if not index.is_unique:
        dup = index[index.duplicated()][0]
        raise UserInputError(f"automatic discoverer: embedding id {dup!r} appears more than once", path=where,
                             hint="one embedding per speaker")
    return emb, index


@register
class AutomaticDiscoverer(Discoverer):
    """k-means clusters of speaker embeddings (Dheram et al. 2022), ranked by WER by the caller.

    Parameters
    ----------
    k : int or "auto", default 10
        Number of k-means clusters, or "auto" (the k with the best silhouette score).  "auto"
        takes k in 2..min(15, n // min_speakers) with the
        highest mean silhouette score (Rousseeuw 1987: for each speaker, (b - a) / max(a, b)
        with a = mean distance to its own cluster and b = mean distance to the nearest other
        cluster).  Each candidate is fitted on at most 20,000 speakers (sampled
        deterministically) and scored on at most 3,000 of them (the score is quadratic);
        the final clustering uses every speaker.
    l2_normalize : bool, default True
        Scale every embedding to unit length before clustering.  Speaker-ID embeddings
        (x-vectors, ECAPA, ...) are trained to be compared by cosine similarity; their
        length carries mostly recording conditions and duration, not who speaks.  On unit
        vectors Euclidean k-means is cosine k-means (|a - b|^2 = 2 - 2 cos(a, b)).
    max_projection_points : int, default 5000
        Speakers (count, sampled deterministically) in the 2-D PCA projection the report
        draws; 0 = no projection.
    min_speakers : int, default 20
        Smallest cohort (speakers) the caller ranks as bottom/top.  k-means cannot
        guarantee it: smaller clusters are still returned and the caller marks them "too
        few speakers".  It bounds k: ``k <= max(2, speakers_with_embedding // min_speakers)``.
    seed : int, default 0
        Seeds k-means, the k="auto" samples and the projection sample.

    k-means is scikit-learn ``KMeans(n_init=4)`` up to 50,000 speakers and
    ``MiniBatchKMeans(batch_size=4096, n_init=3)`` above (it scales to 10^6 speakers).
    Clusters are numbered C01.. by size (largest first), ties by centroid coordinates.
    Speakers of the table without an embedding are not audited ("no embedding");
    embeddings of speakers not in the table are ignored and counted
    (``details["embeddings_without_scores"]``).
    """

    name = "automatic"
    title = "Automatic cohorts (speaker-embedding clusters)"
    description = ("k-means on speaker-identification embeddings groups speakers into clusters (virtual speaker "
                   "regions, not identities); no human labels are used (Dheram et al. 2022).")
    fixed_cohorts = True
    default = True
    order = 30
    side_inputs = ("embeddings",)
    flag_aliases = {"k": ("--k",)}
    _parameter_constraints = {"k": [Interval(int, 2, None), Options(str, {"auto"})], "l2_normalize": [bool],
                              "max_projection_points": [Interval(int, 0, None)]}

    def __init__(self, k: int | str = 10, l2_normalize: bool = True, max_projection_points: int = 5000, **common):
        super().__init__(**common)
        self.k = k
        self.l2_normalize = l2_normalize
        self.max_projection_points = max_projection_points

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        if side.embeddings is None or side.embedding_ids is None:
            return MISSING_REASON
        ids = pd.Index(np.asarray(side.embedding_ids).astype(str))
        table = speakers["speaker_id"].astype(str)
        if len(table) and not isin(table, ids).any():
            return (f"none of the {len(table)} speakers has an embedding (embedding ids look like "
                    f"{ids[0] if len(ids) else 'nothing'!r}, speaker ids like {table.iloc[0]!r}; "
                    f"--embedding-ids must use the speaker ids of the input)")
        return None

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        """Cluster the speakers' embeddings (see the class docstring)."""
        min_speakers, seed, k = int(self.min_speakers), int(self.seed), self.k
        l2, proj = bool(self.l2_normalize), int(self.max_projection_points)
        if side.embeddings is None or side.embedding_ids is None:
            raise UserInputError(f"automatic discoverer: {MISSING_REASON}")
        where = side.embeddings_path
        emb, index = _matrix(side)
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
        x = km.normalise(x, l2)
        k_cap = max(2, n // min_speakers)
        labels = None
        if k == "auto":
            if n < 3:
                raise NotEnoughData(f"automatic discoverer: {n} speaker(s) with an embedding are too few to "
                                    f"cluster", hint="pass embeddings for more speakers")
            k_eff, scores, labels = km.choose_k(x, min(km.AUTO_K_MAX, k_cap), seed)
            selection: Any = {"criterion": "silhouette", "scores": scores,
                              "candidates_fitted_on": int(min(n, km.AUTO_FIT_MAX)),
                              "scored_on": int(min(n, km.AUTO_FIT_MAX, km.SILHOUETTE_MAX))}
        else:
            k = int(k)
            if k > n:
                raise NotEnoughData(f"automatic discoverer: k={k} clusters but only {n} speakers have an "
                                    f"embedding", hint=f"pass --automatic-k {k_cap} or less (or auto)")
            if k > k_cap:
                raise NotEnoughData(
                    f"automatic discoverer: k={k} clusters of {n} speakers would average fewer than "
                    f"min_speakers={min_speakers} speakers each",
                    hint=f"pass --automatic-k {k_cap} or less, --automatic-k auto, or a smaller --min-speakers")
            k_eff, selection = k, "fixed"
        if labels is None:
            labels = km.fit_labels(x, k_eff, seed)

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
            "k": int(k_eff), "k_selection": selection, "algorithm": km.algorithm(n),
            "clusters_found": int(len(present)), "speakers_clustered": int(n),
            "embedding_dim": int(x.shape[1]), "l2_normalize": l2,
            "embeddings_without_scores": int(len(index) - has.sum()),
        }
        if proj > 0:
            details.update(km.projection(x, codes, table_ids[members], cohort_ids, proj, seed))
        params = {"k": int(k_eff), "k_requested": k if k == "auto" else int(k), "min_speakers": min_speakers,
                  "seed": seed, "l2_normalize": l2, "max_projection_points": proj, "algorithm": details["algorithm"]}
        norms = [float(v) for v in np.linalg.norm(centroids, axis=1)]
        labels_by_id, cohort_details = describe(speakers, members, codes, cohort_ids, norms, seed)
        definition = {"kind": "nearest centroid", "l2_normalize": l2, "cohort_ids": cohort_ids,
                      "centroids": centroids.tolist()}
        return Discovery(assignment=assignment, labels=labels_by_id, not_audited=not_audited, params=params,
                         details=details, cohort_details=cohort_details, definition=definition)

    # ------------------------------------------------------------ hooks

    def assign(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """Nearest saved centroid of each speaker with an embedding (same normalisation)."""
        if side is None or side.embeddings is None or side.embedding_ids is None:
            return pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object)
        emb, index = _matrix(side)
        table_ids = speakers["speaker_id"].astype(str).to_numpy(dtype=object)
        pos = index.get_indexer(table_ids)
        has = pos >= 0
        x = km.normalise(np.asarray(emb[pos[has]], dtype=np.float64), bool(definition.get("l2_normalize", True)))
        c = np.asarray(definition["centroids"], dtype=np.float64)
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid
        nearest = np.argmin((c * c).sum(axis=1)[None, :] - 2.0 * x @ c.T, axis=1)
        cohort = np.asarray(definition["cohort_ids"], dtype=object)[nearest]
        return pd.Series(cohort, index=pd.Index(table_ids[has], name="speaker_id"), dtype=object)

    def assign_reasons(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """No embeddings given, or none for the speaker."""
        ids = speakers["speaker_id"].astype(str).to_numpy(dtype=object)
        if side is None or side.embeddings is None or side.embedding_ids is None:
            return pd.Series("no speaker embeddings (pass --embeddings)", index=ids, dtype=object)
        _, index = _matrix(side)
        lacking = index.get_indexer(ids) < 0
        return pd.Series("no embedding for this speaker", index=ids[lacking], dtype=object)

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> Planter:
        ids = discovery.assignment.index.astype(str).to_numpy(dtype=object)
        emb, index = _matrix(side)
        x = km.normalise(np.asarray(emb, dtype=np.float64)[index.get_indexer(ids)], bool(self.l2_normalize))
        return NeighbourPlanter(x, ids)

    def report_section(self, entry: dict, report: dict):
        """The projection scatter, the clusters' attribute mix and the clustering facts."""
        from .automatic_report import section

        return section(self, entry, report)
