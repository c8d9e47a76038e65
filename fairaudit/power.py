"""What can this test set tell?  Power analysis and a planted self-test.

An audit that finds no significant gap proves little if the test set is too small to find
one.  Both functions here answer "how large a disparity would this audit have found?" on
the user's own per-speaker table (its speaker count, words per speaker and spread of
per-speaker WER), by planting disparities of known size and running the real discovery
and the real selection-corrected test on them.

Simulated world (:func:`estimate_power` and :func:`selftest`)
    1. *Null world*: the speakers' count columns (errors, ref_words, utterances) are
       permuted jointly across the audited speakers, exactly as the permutation null of
       :mod:`fairaudit.stats` does: every speaker keeps a real (errors, ref_words) pair, so
       the distribution of words and of per-speaker WER is the real one, but any real
       disparity is destroyed (it cannot be mistaken for the plant).
    2. *Plant*: a cohort the discoverer can express gets a multiplicative error increase
       of g (ratio; 1.0 = +100 %): each planted speaker's errors e become
       floor(e x (1 + g) + u) with u ~ Uniform(0, 1) drawn once per speaker (stochastic
       rounding).  The expected errors are exactly e x (1 + g), so the plant's expected
       WER is (1 + g) times its null-world WER; errors are not capped at ref_words
       (insertions make WER > 1 possible, as in real data).  The cohorts:

       * geographic: the k speakers nearest to a random audited speaker in a lat/lon box
         (Chebyshev distance in degrees: a square box around the speaker grown until it
         holds k = share x audited speakers);
       * geodemographic: the speakers of the zips matching one census rule the discoverer
         itself would consider (its literals and conjunctions up to ``max_depth``), drawn
         at random among the rules whose speaker count is within a factor 1.5 of k (the
         closest rule when none is); the achieved share is reported;
       * automatic: the k nearest neighbours of a random audited speaker in embedding
         space (cosine similarity on L2-normalised embeddings, as the k-means uses);
       * attribute: every speaker with one value of the attribute (one result row per
         value; the share is given by the data).
    3. *Discovery and test*: the discoverer is re-fitted on the planted table and its
       bottom cohort and relative gap are taken as the audit takes them (same ranking,
       same ``min_speakers`` eligibility).

Cheaper null (:func:`estimate_power`)
    The null distribution of the discovered gap does not depend on the plant nor on the
    cohort share, so it is computed once per discoverer with
    :func:`fairaudit.stats.permutation_null` (``n_perm`` permutations, the same
    ``seed`` as the audit's own test) and every simulated planted dataset needs only one
    discovery and a comparison against it: p = (1 + #{null >= gap}) / (1 + n_perm), the
    audit's formula (p < alpha is the same as the gap exceeding the null's 1 - alpha
    quantile, up to the discreteness of n_perm).

Detection
    A simulation counts as a detection when p < ``alpha`` **and** the bottom cohort is
    mostly planted speakers: precision = |bottom ∩ plant| / |bottom| >= 0.5.  (A
    significant gap in the wrong place is not the disparity being found.)  The self-test
    also asks for recall = |bottom ∩ plant| / |plant| >= 0.5: the audit pointed at most of
    the planted speakers.

Power curve
    Each of ``n_sim`` simulated worlds (null world + plant + rounding draws) is planted at
    every gap of the grid (common random numbers: the curves are smooth and monotone up to
    noise) plus gap 0 (the null world itself, whose "power" is the false-detection rate).
    Power at a gap = share of worlds detected.  The smallest detectable gap is where the
    curve first reaches ``power``, linearly interpolated between grid points (% relative
    WER gap; None when it is not reached up to the largest gap).

Speed: simulations run in a process pool (``workers``, default all cores) when the serial
run would take longer than about a second; each simulation draws from its own
``SeedSequence`` child, so results are identical for any number of workers.
"""
from __future__ import annotations

import copy
import math
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .audit import load_side_inputs
from .discover.base import Discoverer, NotEnoughData, SideInputs
from . import numbers as num
from .errors import UserInputError
from .cohorts import bottom_mask
from .stats import permutation_null
from .stats import rng as _rng
from .stats._common import check_count as _check_count, check_ratio, check_seed as _check_seed, cpu_count as _cpu_count

#: relative WER gaps (%) planted by default
DEFAULT_GAPS_PCT = (10, 20, 35, 50, 75, 100, 150, 200, 300)
#: bottom-cohort shares (ratio of the audited speakers) simulated by default
DEFAULT_SHARES = (0.01, 0.05, 0.10, 0.25)
#: a detection needs the bottom cohort to be at least this share planted speakers (ratio)
MIN_PRECISION = 0.5
#: the self-test also needs the bottom cohort to hold this share of the plant (ratio)
MIN_RECALL = 0.5
#: geodemographic plants: rules whose speaker count is within this factor of the target
RULE_SIZE_FACTOR = 1.5
#: attribute discoverers: at most this many values (largest first) get a power row
MAX_ATTRIBUTE_VALUES = 12
#: use a process pool only when the serial simulations would take longer than this (s)
_PARALLEL_MIN_SECONDS = 1.0
#: count columns that are not permuted with errors/ref_words and would be inconsistent
_DROP_COLUMNS = ("hits", "substitutions", "deletions", "insertions")

POWER_METHOD = ("speakers' (errors, ref_words) permuted across audited speakers (null world); errors of a "
                "cohort the discoverer can express scaled by (1 + gap) with stochastic rounding; discovery "
                "re-run; detected = permutation p < alpha against a null computed once per discoverer AND "
                "bottom-cohort precision >= 0.5")
SELFTEST_METHOD = ("speakers' (errors, ref_words) permuted across audited speakers, one cohort's errors scaled "
                   "by (1 + effect) with stochastic rounding; discovery and the audit's permutation test re-run; "
                   "recovered = p < alpha AND precision >= 0.5 AND recall >= 0.5")


# ------------------------------------------------------------------ inputs

# The side inputs of an audit, built the way `fairaudit audit` builds them.
side_inputs = load_side_inputs


def _check_ratio(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < float(value) < 1:
        raise UserInputError(f"{name} must be a number between 0 and 1 (ratio), not {value!r}",
                             hint=f"fix the {name} option")
    return float(value)


def _check_shares(shares: Sequence[float]) -> list[float]:
    out = sorted({_check_ratio(s, "cohort share") for s in shares})
    if not out:
        raise UserInputError("no cohort share given", hint="e.g. --shares 1,5,10,25 (% of speakers)")
    return out


def _check_gaps(gaps: Sequence[float] | None) -> list[float]:
    if gaps is None:
        return [float(g) for g in DEFAULT_GAPS_PCT]
    out = []
    for g in gaps:
        if isinstance(g, bool) or not isinstance(g, (int, float, np.integer, np.floating)) \
                or not 0 < float(g) < math.inf:
            raise UserInputError(f"planted gaps must be positive numbers (%), not {g!r}", hint="e.g. 10,50,100")
        out.append(float(g))
    if not out:
        raise UserInputError("no planted gap given", hint="e.g. 10,50,100 (%)")
    return sorted(set(out))


def _table(scored_speakers: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("speaker_id", "errors", "ref_words") if c not in scored_speakers.columns]
    if missing:
        raise UserInputError(f"the speaker table has no {missing[0]!r} column",
                             hint="pass the per-speaker table of a scored set (AuditResult.speakers)")
    table = scored_speakers.drop(columns=[c for c in _DROP_COLUMNS if c in scored_speakers.columns])
    table = table.reset_index(drop=True)
    table["speaker_id"] = table["speaker_id"].astype(str)
    for c in ("errors", "ref_words"):
        table[c] = table[c].to_numpy(dtype=float)
    if "utterances" in table.columns:
        table["utterances"] = table["utterances"].to_numpy(dtype=float)
    return table


def _spawn_key(*parts: str | int) -> tuple[int, ...]:
    # Keyed by names, not positions: adding --by gender leaves geographic's numbers alone.
    return tuple(p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts)


# ------------------------------------------------------------------ plants

@dataclass
class _Row:
    """One result row: a target cohort size (or one attribute value)."""

    key: str                       # seeds and JSON: "10%" or the attribute label
    share: float | None            # target share (ratio) or None for an attribute value
    size: int                      # target size (speakers)
    label: str | None = None       # attribute value label
    code: int | None = None        # attribute cohort code


class _Planter:
    """Draws the planted cohort (indices into the audited speakers) of one discoverer."""

    kind = ""

    def __init__(self, n: int):
        self.n = n

    def rows(self, shares: list[float]) -> list[_Row]:
        return [_Row(f"{100 * s:g}%", s, max(1, int(round(s * self.n)))) for s in shares]

    def draw(self, rng: np.random.Generator, row: _Row) -> tuple[np.ndarray, str]:
        raise NotImplementedError


class _GeoPlanter(_Planter):
    kind = "lat/lon box around a random speaker"

    def __init__(self, lat: np.ndarray, lon: np.ndarray, ids: np.ndarray):
        super().__init__(len(lat))
        self.lat, self.lon, self.ids = lat, lon, ids

    def draw(self, rng, row):
        c = int(rng.integers(self.n))
        d = np.maximum(np.abs(self.lat - self.lat[c]), np.abs(self.lon - self.lon[c]))
        idx = np.sort(np.argsort(d, kind="stable")[:row.size])
        from .discover.geographic import box_text

        box = [float(self.lat[idx].min()), float(self.lat[idx].max()), float(self.lon[idx].min()),
               float(self.lon[idx].max())]
        return idx, f"{len(idx)} speakers in the box {box_text(box)} around speaker {self.ids[c]}"


class _RulePlanter(_Planter):
    kind = "census rule the geodemographic discoverer considers"

    def __init__(self, disc: Discoverer, table: pd.DataFrame, side: SideInputs, audited_rows: np.ndarray):
        from .discover import geodemographic as geo
        from .io.census import normalize_zip

        super().__init__(len(audited_rows))
        census = geo._census_frame(side)
        share_scales = dict(census.attrs.get("share_columns", {}))
        columns = [c for c in census.columns if pd.api.types.is_numeric_dtype(census[c].dtype)
                   and not pd.api.types.is_bool_dtype(census[c].dtype)]
        zips = normalize_zip(pd.Series(table["zip"].to_numpy(dtype=object)[audited_rows]))
        row = census.index.get_indexer(zips.to_numpy(dtype=object, na_value=""))
        if (row < 0).any():  # cannot happen: audited speakers are those whose zip joined
            raise ValueError("an audited speaker's zip is not in the census table")
        zip_rows, zip_of = np.unique(row, return_inverse=True)
        n_z = np.bincount(zip_of, minlength=len(zip_rows)).astype(float)
        values = census[columns].to_numpy(dtype=float, na_value=np.nan)[zip_rows]
        # The discoverer's own literals and conjunctions, but down to one speaker: a rule
        # too small for min_speakers is still a cohort that may exist (and not be found).
        loose = copy.copy(disc)
        loose.min_speakers = 1
        literals, masks, _ = loose._literals(columns, share_scales, values, n_z)
        ones = np.ones(len(n_z))
        found = geo._search(masks, [columns.index(l.column) for l in literals], n_z, ones, n_z, 1,
                            int(getattr(disc, "max_depth", 2)))
        keep = found["valid_mask"]
        self.lits = found["lits"][keep]
        self.sizes = found["n_in"][keep]
        self.literals, self.masks, self.zip_of = literals, masks, zip_of
        self.pools: dict[str, np.ndarray] = {}

    def rows(self, shares):
        rows = super().rows(shares)
        for r in rows:
            if not len(self.sizes):
                self.pools[r.key] = np.zeros(0, dtype=np.int64)
                continue
            dist = np.abs(np.log(self.sizes / r.size))
            pool = np.flatnonzero(dist <= math.log(RULE_SIZE_FACTOR) + 1e-12)
            self.pools[r.key] = pool if len(pool) else np.flatnonzero(dist == dist.min())
        return rows

    def draw(self, rng, row):
        pool = self.pools[row.key]
        if not len(pool):
            return np.zeros(0, dtype=np.int64), "no census rule splits the audited speakers"
        r = int(pool[rng.integers(len(pool))])
        in_zip = np.ones(self.masks.shape[0], dtype=bool)
        ids = [int(l) for l in self.lits[r] if l >= 0]
        for li in ids:
            in_zip &= self.masks[:, li]
        idx = np.flatnonzero(in_zip[self.zip_of])
        rule = " AND ".join(self.literals[li].text for li in ids)
        return idx, f"{len(idx)} speakers in zips where {rule}"


class _EmbeddingPlanter(_Planter):
    kind = "nearest neighbours of a random speaker in embedding space"

    def __init__(self, disc: Discoverer, side: SideInputs, ids: np.ndarray):
        super().__init__(len(ids))
        pos = pd.Index(np.asarray(side.embedding_ids).astype(str)).get_indexer(ids)
        x = np.asarray(side.embeddings, dtype=np.float64)[pos]
        if getattr(disc, "l2_normalize", True):
            x = x / np.maximum(np.linalg.norm(x, axis=1), 1e-12)[:, None]
        self.x, self.ids = x, ids

    def draw(self, rng, row):
        c = int(rng.integers(self.n))
        sim = self.x @ self.x[c]
        idx = np.sort(np.argsort(-sim, kind="stable")[:row.size])
        return idx, f"the {len(idx)} nearest neighbours of speaker {self.ids[c]} in embedding space"


class _ValuePlanter(_Planter):
    kind = "one value of the attribute"

    def __init__(self, codes: np.ndarray, names: list[str], labels: dict[str, str]):
        super().__init__(len(codes))
        self.codes, self.names, self.labels = codes, names, labels

    def rows(self, shares):
        sizes = np.bincount(self.codes, minlength=len(self.names))
        order = np.lexsort((np.arange(len(sizes)), -sizes))[:MAX_ATTRIBUTE_VALUES]
        return [_Row(self.labels.get(self.names[k], self.names[k]), float(sizes[k]) / self.n, int(sizes[k]),
                     label=self.labels.get(self.names[k], self.names[k]), code=int(k)) for k in order]

    def draw(self, rng, row):
        return np.flatnonzero(self.codes == row.code), f"the {row.size} speakers with {row.label}"


# ------------------------------------------------------------------ one discoverer, prepared

@dataclass
class _Plan:
    """Everything the simulations of one discoverer need (pickled once per worker)."""

    key: str
    disc: Discoverer
    positions: np.ndarray              # table rows of the audited speakers (audited order)
    audited_ids: np.ndarray
    planter: _Planter
    rows: list[_Row] = field(default_factory=list)
    codes: np.ndarray | None = None    # fixed cohorts: cohort code per audited speaker
    null: np.ndarray | None = None     # null gaps (%), inf = unbounded
    aud_of_row: np.ndarray | None = None  # table row -> audited index (-1: not audited)


def _prepare(disc: Discoverer, table: pd.DataFrame, side: SideInputs) -> _Plan | str:
    """A plan for ``disc``, or the reason it cannot run."""
    reason = disc.missing_inputs(table, side)
    if reason:
        return reason
    try:
        found = disc.fit(table, side)
    except NotEnoughData as exc:
        return str(exc)
    ids = found.assignment.index.astype(str).to_numpy(dtype=object)
    positions = pd.Index(table["speaker_id"].to_numpy()).get_indexer(ids)
    if not len(ids):
        return "no speaker can be audited by this discoverer"
    name = disc.name
    if name == "geographic":
        planter: _Planter = _GeoPlanter(pd.to_numeric(table["lat"], errors="coerce").to_numpy(float)[positions],
                                        pd.to_numeric(table["lon"], errors="coerce").to_numpy(float)[positions], ids)
    elif name == "geodemographic":
        planter = _RulePlanter(disc, table, side, positions)
    elif name == "automatic":
        planter = _EmbeddingPlanter(disc, side, ids)
    elif name == "attribute":
        codes, names = pd.factorize(found.assignment.to_numpy(), sort=True)
        planter = _ValuePlanter(codes, [str(n) for n in names], found.labels)
    else:
        return f"no planted-cohort model for the {name!r} discoverer"
    plan = _Plan(disc.key, disc, positions, ids, planter)
    if getattr(disc, "fixed_cohorts", False):
        plan.codes = pd.factorize(found.assignment.to_numpy(), sort=True)[0]
    return plan


_bottom = bottom_mask


class _Simulator:
    """Runs simulated planted worlds; one instance per worker process (or in the caller)."""

    def __init__(self, plans: list[_Plan], table: pd.DataFrame, side: SideInputs, gaps: list[float],
                 alpha: float):
        self.plans, self.side, self.alpha = plans, side, alpha
        self.gaps = np.asarray([0.0, *gaps]) / 100.0
        self.table = table.copy()
        self.errors = table["errors"].to_numpy(dtype=float)
        self.words = table["ref_words"].to_numpy(dtype=float)
        self.utts = table["utterances"].to_numpy(dtype=float) if "utterances" in table.columns else None
        self.row_of = pd.Index(table["speaker_id"].to_numpy())

    def world(self, plan: _Plan, row: _Row, rng: np.random.Generator):
        """A null world and its plant: (source rows, errors, words, plant indices, rounding draws, text)."""
        src = plan.positions[rng.permutation(len(plan.positions))]
        plant, text = plan.planter.draw(rng, row)
        u = rng.random(len(plant))
        return src, self.errors[src], self.words[src], plant, u, text

    def planted_errors(self, e0: np.ndarray, plant: np.ndarray, u: np.ndarray, g: float) -> np.ndarray:
        e = e0.copy()
        e[plant] = np.floor(e0[plant] * (1.0 + g) + u)
        return e

    def fill(self, plan: _Plan, src: np.ndarray, e: np.ndarray, w: np.ndarray) -> pd.DataFrame:
        """The table with the audited speakers' counts replaced (others untouched)."""
        err, words = self.errors.copy(), self.words.copy()
        err[plan.positions], words[plan.positions] = e, w
        self.table["errors"] = err
        self.table["ref_words"] = words
        with np.errstate(divide="ignore", invalid="ignore"):
            self.table["wer"] = err / words
        if self.utts is not None:
            utts = self.utts.copy()
            utts[plan.positions] = self.utts[src]
            self.table["utterances"] = utts
        return self.table

    def discover(self, plan: _Plan, src: np.ndarray, e: np.ndarray, w: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(audited indices, their cohort codes, errors/words of those) after one discovery."""
        if plan.codes is not None:
            return np.arange(len(e)), plan.codes, e
        table = self.fill(plan, src, e, w)
        assignment = plan.disc.fit(table, self.side).assignment
        rows = self.row_of.get_indexer(assignment.index.astype(str))
        aud = plan.aud_of_row[rows]
        codes = pd.factorize(assignment.to_numpy(), sort=True)[0]
        return aud, codes, e[aud]

    def detect(self, plan: _Plan, row: _Row, seq: np.random.SeedSequence) -> tuple[np.ndarray, int]:
        """(detected (bool) at gap 0 and at every grid gap, planted speakers) for one simulated world."""
        src, e0, w, plant, u, _ = self.world(plan, row, np.random.default_rng(seq))
        in_plant = np.zeros(len(e0), dtype=bool)
        in_plant[plant] = True
        out = np.zeros(len(self.gaps), dtype=bool)
        for j, g in enumerate(self.gaps):
            e = self.planted_errors(e0, plant, u, g)
            aud, codes, e_aud = self.discover(plan, src, e, w)
            bottom, pct = _bottom(e_aud, w[aud], codes, plan.disc.min_speakers)
            if bottom is None:
                continue
            p = (1 + int(np.sum(plan.null >= pct - 1e-9 * max(1.0, abs(pct))))) / (1 + len(plan.null))
            precision = float(in_plant[aud][bottom].mean())
            out[j] = p < self.alpha and precision >= MIN_PRECISION
        return out, len(plant)


_WORKER: _Simulator | None = None


def _init_worker(plans, table, side, gaps, alpha) -> None:
    global _WORKER
    _WORKER = _Simulator(plans, table, side, gaps, alpha)


def _run_block(task: tuple[int, int, list[np.random.SeedSequence]]) -> list[tuple[np.ndarray, int]]:
    p, r, seqs = task
    plan = _WORKER.plans[p]
    return [_WORKER.detect(plan, plan.rows[r], s) for s in seqs]


def _with_lookup(plan: _Plan, n_rows: int) -> _Plan:
    aud_of_row = np.full(n_rows, -1, dtype=np.int64)
    aud_of_row[plan.positions] = np.arange(len(plan.positions))
    plan.aud_of_row = aud_of_row
    return plan


# ------------------------------------------------------------------ results

def _detectable_gap(gaps: np.ndarray, power: np.ndarray, target: float) -> float | None:
    """First gap (%) where the power curve (starting at gap 0) reaches ``target``, interpolated."""
    hit = np.flatnonzero(power >= target)
    if not len(hit):
        return None
    j = int(hit[0])
    if j == 0:
        return 0.0
    g0, g1, p0, p1 = gaps[j - 1], gaps[j], power[j - 1], power[j]
    return float(g0 + (target - p0) / (p1 - p0) * (g1 - g0))


_fmt_pct = num.share


def _reading(n: int, plan_name: str, row: dict, target: float, min_speakers: int, top_gap: float) -> str:
    who = (f"{row['label']} ({_fmt_pct(row['planted_share_pct'])} % of speakers, {row['planted_speakers']})"
           if row.get("label") is not None else
           f"a {_fmt_pct(row['target_share_pct'])} % cohort ({row['planted_speakers']} speakers)")
    prefix = f"{plan_name}: with these {n:,} speakers"
    g = row["min_detectable_gap_pct"]
    if g is not None:
        return f"{prefix} a gap of ≥ {num.whole_pct(g)} % in {who} is found {num.ratio_as_pct(target)} of the time"
    at_top = row["power_curve"][-1]["power"]
    text = (f"{prefix} a gap in {who} is not found {num.ratio_as_pct(target)} of the time even at "
            f"{num.whole_pct(top_gap)} % (found {num.ratio_as_pct(at_top)} of the time)")
    if row["planted_speakers"] < min_speakers:
        text += f"; it is smaller than --min-speakers {min_speakers}, so it can never be a bottom cohort on its own"
    return text


def _data_summary(table: pd.DataFrame) -> dict:
    w = table["ref_words"].to_numpy(dtype=float)
    e = table["errors"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        wer = np.where(w > 0, e / w, np.nan)
    q = np.nanpercentile(wer, [25, 50, 75]) if np.isfinite(wer).any() else [None] * 3
    return {"speakers": int(len(table)), "ref_words_per_speaker_median": float(np.median(w)) if len(w) else None,
            "speaker_wer_median": None if q[1] is None else float(q[1]),
            "speaker_wer_iqr": None if q[0] is None else [float(q[0]), float(q[2])],
            "wer": float(e.sum() / w.sum()) if w.sum() > 0 else None}


def estimate_power(scored_speakers: pd.DataFrame, side: SideInputs | None, discoverers: list[Discoverer],
                   cohort_shares: Sequence[float] = DEFAULT_SHARES, n_sim: int = 200, n_perm: int = 200,
                   alpha: float = 0.05, power: float = 0.8, seed: int = 0, workers: int | None = None,
                   gaps: Sequence[float] | None = None,
                   progress: Callable[[int], None] | None = None) -> dict:
    """Smallest relative WER gap each discoverer finds with probability ``power``, by simulation.

    ``scored_speakers``: the per-speaker table of a scored set (``AuditResult.speakers``:
    speaker_id, errors, ref_words and lat/lon, zip, attribute columns); ``side``: census
    and embeddings as :func:`fairaudit.audit.audit` builds them (:func:`side_inputs`);
    ``discoverers``: e.g. :func:`fairaudit.audit.build_discoverers`.
    ``cohort_shares``: planted bottom-cohort sizes (ratios of the audited speakers);
    attribute discoverers ignore them (one row per attribute value instead).
    ``n_sim``: simulated worlds per discoverer and share, each planted at every gap of
    ``gaps`` (%, default 10-300 %) and at 0 %; ``n_perm``: permutations of the null
    (computed once per discoverer); ``alpha``: significance level; ``power``: the power
    (ratio) the detectable gap must reach.  See the module docstring for the method.

    Returns a JSON-serialisable dict: ``method``, ``settings``, ``data`` (speakers, words
    per speaker, per-speaker WER median and IQR) and ``discoverers``: per report key,
    ``skipped`` (reason or None), ``audited_speakers``, ``plant`` (how cohorts are
    planted), ``null_gap_p95_pct`` and ``shares``: one row per share (or attribute value)
    with ``target_share_pct``, ``planted_speakers`` (median), ``planted_share_pct``
    (mean, %), ``min_detectable_gap_pct`` (% or None when not reached up to the largest
    gap), ``power_curve`` [{gap_pct, power}] (gap 0 first) and ``reading`` (one sentence).
    """
    n_sim = _check_count(n_sim, "number of simulations", 1)
    n_perm = _check_count(n_perm, "number of permutations", 1)
    seed = _check_seed(seed)
    alpha = _check_ratio(alpha, "significance level alpha")
    power = _check_ratio(power, "power")
    shares = _check_shares(cohort_shares)
    gaps_pct = _check_gaps(gaps)
    side = side or SideInputs()
    table = _table(scored_speakers)
    n_total = len(table)

    out_discs: dict[str, dict] = {}
    plans: list[_Plan] = []
    for disc in discoverers:
        plan = _prepare(disc, table, side)
        if isinstance(plan, str):
            out_discs[disc.key] = {"name": disc.name, "skipped": plan}
            continue
        plan = _with_lookup(plan, n_total)
        plan.rows = plan.planter.rows(shares)
        perm = permutation_null(disc, table, side, 0.0, n_perm=n_perm, seed=seed, workers=workers,
                                audited=plan.audited_ids)
        plan.null = np.asarray(perm["null_gaps_pct"], dtype=float)
        out_discs[disc.key] = {"name": disc.name, "skipped": None, "audited_speakers": int(len(plan.positions)),
                               "min_speakers": int(disc.min_speakers), "plant": plan.planter.kind,
                               "null_gap_median_pct": perm["null_gap_median_pct"],
                               "null_gap_p95_pct": perm["null_gap_p95_pct"], "shares": []}
        plans.append(plan)

    # Seeds per (discoverer, row) keyed by names; then one child per simulation.
    tasks = [(p, r, _rng.stream(seed, "power", plan.key, row.key).spawn(n_sim))
             for p, plan in enumerate(plans) for r, row in enumerate(plan.rows)]
    results: dict[tuple[int, int], list[tuple[np.ndarray, int]]] = {(p, r): [] for p, r, _ in tasks}
    sim = _Simulator(plans, table, side, gaps_pct, alpha)
    # The first world of each row runs here; their time decides whether a pool pays.
    t0 = time.perf_counter()
    for p, r, seqs in tasks:
        results[(p, r)].append(sim.detect(plans[p], plans[p].rows[r], seqs[0]))
        if progress:
            progress(1)
    elapsed = time.perf_counter() - t0
    rest = [(p, r, seqs[1:]) for p, r, seqs in tasks if len(seqs) > 1]
    n_rest = sum(len(s) for _, _, s in rest)
    nworkers = min(_cpu_count() if workers is None else max(1, int(workers)), max(1, n_rest))
    if workers is None and elapsed * (n_sim - 1) < _PARALLEL_MIN_SECONDS:
        nworkers = 1
    if nworkers > 1 and n_rest:
        size = max(1, math.ceil(n_rest / (8 * nworkers)))
        blocks = [(p, r, seqs[i:i + size]) for p, r, seqs in rest for i in range(0, len(seqs), size)]
        with ProcessPoolExecutor(max_workers=nworkers, initializer=_init_worker,
                                 initargs=(plans, table, side, gaps_pct, alpha)) as pool:
            for (p, r, seqs), part in zip(blocks, pool.map(_run_block, blocks)):
                results[(p, r)].extend(part)
                if progress:
                    progress(len(seqs))
    else:
        for p, r, seqs in rest:
            for s in seqs:
                results[(p, r)].append(sim.detect(plans[p], plans[p].rows[r], s))
                if progress:
                    progress(1)

    grid = np.asarray([0.0, *gaps_pct])
    for p, plan in enumerate(plans):
        entry = out_discs[plan.key]
        for r, row in enumerate(plan.rows):
            det = np.vstack([d for d, _ in results[(p, r)]])
            sizes = np.asarray([k for _, k in results[(p, r)]])
            curve = det.mean(axis=0)
            rec = {"target_share_pct": None if row.label is not None else 100.0 * row.share,
                   "label": row.label, "planted_speakers": int(np.median(sizes)),
                   "planted_share_pct": 100.0 * float(np.mean(sizes)) / len(plan.positions),
                   "simulations": int(len(det)),
                   "min_detectable_gap_pct": _detectable_gap(grid, curve, power),
                   "power_curve": [{"gap_pct": float(g), "power": float(v)} for g, v in zip(grid, curve)]}
            if rec["min_detectable_gap_pct"] is not None:
                rec["min_detectable_gap_pct"] = round(rec["min_detectable_gap_pct"], 1)
            rec["reading"] = _reading(n_total, plan.key, rec, power, plan.disc.min_speakers, gaps_pct[-1])
            entry["shares"].append(rec)

    return {"method": POWER_METHOD,
            "settings": {"simulations": n_sim, "permutations": n_perm, "alpha": alpha, "power": power,
                         "seed": seed, "gaps_pct": gaps_pct, "shares_pct": [100.0 * s for s in shares],
                         "min_precision": MIN_PRECISION},
            "data": _data_summary(table), "discoverers": out_discs}


# ------------------------------------------------------------------ self-test

def selftest(scored_speakers: pd.DataFrame, side: SideInputs | None, discoverers: list[Discoverer],
             effect: float = 1.0, share: float = 0.10, seed: int = 0, n_perm: int = 100,
             alpha: float = 0.05, workers: int | None = None) -> dict:
    """Plant one disparity per discoverer on the user's data and check the audit finds it.

    ``effect``: the planted error increase (ratio; 1.0 = +100 % errors, i.e. about twice
    the WER); ``share``: the planted cohort's target size (ratio of the audited speakers;
    attribute discoverers plant on the value whose share is nearest among values with at
    least ``min_speakers`` speakers).  The counts are first permuted across speakers (a
    null world, so a real disparity cannot pass for the plant), then the plant is made as
    in :func:`estimate_power`, and discovery plus the audit's own permutation test
    (:func:`fairaudit.stats.permutation_null`, ``n_perm`` permutations of the planted
    table) run on it.

    Returns ``{"method", "settings", "discoverers"}``; per report key: ``skipped`` or
    ``plant`` (text), ``planted_speakers``, ``planted_share_pct`` (%), ``bottom``,
    ``bottom_label``, ``bottom_speakers``, ``precision`` and ``recall`` (ratios of the
    bottom cohort vs the plant), ``gap_pct`` (%), ``p_value`` and ``recovered``
    (p < alpha and precision >= 0.5 and recall >= 0.5).
    """
    from .audit import run_discoverer

    if isinstance(effect, bool) or not isinstance(effect, (int, float, np.integer, np.floating)) \
            or not 0 <= float(effect) < math.inf:
        raise UserInputError(f"planted effect must be a number >= 0 (ratio; 1.0 = +100 % errors), not {effect!r}",
                             hint="fix the effect option")
    effect = float(effect)
    share = _check_ratio(share, "cohort share")
    seed = _check_seed(seed)
    n_perm = _check_count(n_perm, "number of permutations", 1)
    alpha = _check_ratio(alpha, "significance level alpha")
    side = side or SideInputs()
    table = _table(scored_speakers)
    out: dict[str, dict] = {}
    for disc in discoverers:
        plan = _prepare(disc, table, side)
        if isinstance(plan, str):
            out[disc.key] = {"name": disc.name, "skipped": plan}
            continue
        plan = _with_lookup(plan, len(table))
        if isinstance(plan.planter, _ValuePlanter):
            rows = [r for r in plan.planter.rows([share]) if r.size >= disc.min_speakers] \
                or plan.planter.rows([share])
            row = min(rows, key=lambda r: (abs(r.share - share), r.key))
        else:
            row = plan.planter.rows([share])[0]
        sim = _Simulator([plan], table, side, [100.0 * effect], alpha)
        rng = _rng.generator(seed, "selftest", plan.key)
        src, e0, w, plant, u, text = sim.world(plan, row, rng)
        e = sim.planted_errors(e0, plant, u, effect)
        planted_table = sim.fill(plan, src, e, w).copy()
        entry, assignment = run_discoverer(disc, planted_table, side)
        rec = {"name": disc.name, "skipped": None, "plant": text, "effect_pct": 100.0 * effect,
               "planted_speakers": int(len(plant)),
               "planted_share_pct": 100.0 * len(plant) / len(plan.positions),
               "bottom": None, "bottom_label": None, "bottom_speakers": 0, "precision": 0.0, "recall": 0.0,
               "gap_pct": None, "p_value": None, "recovered": False}
        if assignment is None or entry.get("bottom") is None:
            rec["note"] = entry.get("skipped") or entry.get("note") or "no bottom cohort"
            out[plan.key] = rec
            continue
        members = set(assignment.index[assignment.to_numpy() == entry["bottom"]].astype(str))
        planted = set(plan.audited_ids[plant])
        hit = len(members & planted)
        perm = permutation_null(disc, planted_table, side, entry.get("wer_gap_pct"), n_perm=n_perm, seed=seed,
                                workers=workers, observed_gap_abs=entry.get("wer_gap_abs"),
                                audited=assignment.index)
        cohort = next(c for c in entry["cohorts"] if c["id"] == entry["bottom"])
        rec.update({"bottom": entry["bottom"], "bottom_label": cohort.get("label"), "bottom_speakers": len(members),
                    "precision": hit / len(members) if members else 0.0,
                    "recall": hit / len(planted) if planted else 0.0,
                    "gap_pct": entry.get("wer_gap_pct"), "p_value": perm["p_value"]})
        rec["recovered"] = bool(rec["p_value"] < alpha and rec["precision"] >= MIN_PRECISION
                                and rec["recall"] >= MIN_RECALL)
        out[plan.key] = rec
    return {"method": SELFTEST_METHOD,
            "settings": {"effect_pct": 100.0 * effect, "share_pct": 100.0 * share, "seed": seed,
                         "permutations": n_perm, "alpha": alpha, "min_precision": MIN_PRECISION,
                         "min_recall": MIN_RECALL},
            "discoverers": out}
