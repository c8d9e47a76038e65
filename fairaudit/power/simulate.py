"""Power analysis by simulation: planted disparities of known size on the user's own speakers."""
from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .. import numbers as num
from ..cohorts import bottom_mask
from ..discover.base import Discoverer, NotEnoughData, SideInputs
from ..discover.params import Interval, check
from ..discover.planting import Planter, PlantRow
from ..errors import UserInputError
from ..stats import permutation_null
from ..stats import rng as _rng
from ..stats._common import check_count as _check_count, check_ratio, check_seed as _check_seed, cpu_count as _cpu_count
from ..stats._common import single_threaded

#: relative WER gaps (%) planted by default
DEFAULT_GAPS_PCT = (10, 20, 35, 50, 75, 100, 150, 200, 300)
#: bottom-cohort shares (ratio of the audited speakers) simulated by default
DEFAULT_SHARES = (0.01, 0.05, 0.10, 0.25)
#: a detection needs the bottom cohort to be at least this share planted speakers (ratio)
MIN_PRECISION = 0.5
#: the self-test also needs the bottom cohort to hold this share of the plant (ratio)
MIN_RECALL = 0.5
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


def _check_ratio(value: Any, name: str) -> float:
    return check_ratio(value, name, _RATIO_FLAGS.get(name))


_RATIO_FLAGS = {"cohort share": "--shares / --share (%)", "significance level alpha": "--alpha", "power": "--power"}


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
        check(g, [Interval(float, 0, math.inf, closed="neither")], name="a planted gap (%)", flag="--gaps")
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


# ------------------------------------------------------------------ one discoverer, prepared

@dataclass
class _Plan:
    """Everything the simulations of one discoverer need (pickled once per worker)."""

    key: str
    disc: Discoverer
    positions: np.ndarray              # table rows of the audited speakers (audited order)
    audited_ids: np.ndarray
    planter: Planter
    rows: list[PlantRow] = field(default_factory=list)
    assignment: pd.Series | None = None  # the fit on the real table
    own_statistic: bool = False        # detection uses Discovery.statistic instead of the gap
    codes: np.ndarray | None = None    # fixed cohorts: cohort code per audited speaker
    null: np.ndarray | None = None     # null gaps (%), inf = unbounded
    aud_of_row: np.ndarray | None = None  # table row -> audited index (-1: not audited)
    found: Any = None                  # the fit on the real table (Discovery), for refit_batch
    batched: bool = False              # the discoverer re-fits many count vectors at once


def prepare(disc: Discoverer, table: pd.DataFrame, side: SideInputs,
            expected: pd.Series | None = None) -> _Plan | str:
    """A plan for ``disc`` (its fit on the real table, its planter), or the reason it cannot
    run.  ``expected``: the audit's cohorts of this discoverer; the fit must give exactly
    them (else the inputs changed since the audit: a UserInputError)."""
    reason = disc.missing_inputs(table, side) or disc.missing_side_inputs(side)
    if reason:
        return reason
    try:
        found = disc.fit(table, side)
    except NotEnoughData as exc:
        return str(exc)
    if expected is not None:
        check_same_cohorts(disc.key, found.assignment, expected)
    ids = found.assignment.index.astype(str).to_numpy(dtype=object)
    positions = pd.Index(table["speaker_id"].to_numpy()).get_indexer(ids)
    if not len(ids):
        return "no speaker can be audited by this discoverer"
    planter = disc.planter(table, side, found)
    from ..discover.base import Discoverer as _Base

    plan = _Plan(disc.key, disc, positions, ids, planter, assignment=found.assignment,
                 own_statistic=found.statistic is not None, found=found,
                 batched=getattr(type(disc), "refit_batch", _Base.refit_batch) is not _Base.refit_batch)
    if getattr(disc, "fixed_cohorts", False) and not plan.own_statistic:
        plan.codes = pd.factorize(found.assignment.to_numpy(), sort=True)[0]
    return plan


def check_same_cohorts(key: str, found: pd.Series, expected: pd.Series) -> None:
    """The discoverer's fit here must reproduce the audit's cohorts of ``key``."""
    a = found.astype(str)
    a.index = a.index.astype(str)
    b = expected.astype(str)
    b.index = b.index.astype(str)
    if set(a.index) != set(b.index) or (a.sort_index() != b.reindex(a.sort_index().index)).any():
        differ = len(set(a.index) ^ set(b.index)) + int((a.reindex(b.index) != b).sum())
        raise UserInputError(f"{key}: fitted again on the saved speaker table and side inputs, the discoverer "
                             f"does not give the audit's cohorts ({differ} speaker(s) differ)",
                             hint="the inputs changed since the audit: run `fairaudit audit` again")


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

    def world(self, plan: _Plan, row: PlantRow, rng: np.random.Generator):
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
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(audited indices, their cohort codes, errors of those, own statistic or NaN) after
        one discovery."""
        if plan.codes is not None:
            return np.arange(len(e)), plan.codes, e, math.nan
        table = self.fill(plan, src, e, w)
        found = plan.disc.fit(table, self.side)
        assignment = found.assignment
        rows = self.row_of.get_indexer(assignment.index.astype(str))
        aud = plan.aud_of_row[rows]
        codes = pd.factorize(assignment.to_numpy(), sort=True)[0]
        stat = math.nan
        if plan.own_statistic:
            stat = -math.inf if found.statistic is None else float(found.statistic)
        return aud, codes, e[aud], stat

    def discover_batch(self, plan: _Plan, planted: list[np.ndarray], w: np.ndarray) -> list | None:
        """:meth:`discover` for every planted gap of one world at once through the
        discoverer's ``refit_batch`` hook (None when it has none or declines)."""
        if not plan.batched or plan.codes is not None:
            return None
        errors = np.tile(self.errors, (len(planted), 1))
        errors[:, plan.positions] = np.vstack(planted)
        words = self.words.copy()
        words[plan.positions] = w
        res = plan.disc.refit_batch(self.table, self.side, plan.found, errors,
                                    np.broadcast_to(words, errors.shape))
        if res is None:
            plan.batched = False
            return None
        stats = res.get("statistics")
        aud = np.arange(len(w))
        return [(aud, res["codes"][j], e, math.nan if stats is None or not plan.own_statistic else float(stats[j]))
                for j, e in enumerate(planted)]

    def detect(self, plan: _Plan, row: PlantRow, seq: np.random.SeedSequence) -> tuple[np.ndarray, int]:
        """(detected (bool) at gap 0 and at every grid gap, planted speakers) for one simulated world."""
        src, e0, w, plant, u, _ = self.world(plan, row, np.random.default_rng(seq))
        in_plant = np.zeros(len(e0), dtype=bool)
        in_plant[plant] = True
        out = np.zeros(len(self.gaps), dtype=bool)
        planted = [self.planted_errors(e0, plant, u, g) for g in self.gaps]
        batch = self.discover_batch(plan, planted, w)
        for j, e in enumerate(planted):
            aud, codes, e_aud, stat = batch[j] if batch is not None else self.discover(plan, src, e, w)
            bottom, pct = bottom_mask(e_aud, w[aud], codes, plan.disc.min_speakers)
            if bottom is None:
                continue
            value = stat if plan.own_statistic else pct
            tol = 1e-9 * max(1.0, abs(value)) if math.isfinite(value) else 0.0
            p = (1 + int(np.sum(plan.null >= value - tol))) / (1 + len(plan.null))
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


@single_threaded
def estimate_power(scored_speakers, side: SideInputs | None = None, discoverers: list[Discoverer] | None = None,
                   cohort_shares: Sequence[float] = DEFAULT_SHARES, n_sim: int = 200, n_perm: int = 200,
                   alpha: float = 0.05, power: float = 0.8, seed: int = 0, workers: int | None = None,
                   gaps: Sequence[float] | None = None,
                   progress: Callable[[int], None] | None = None) -> dict:
    """Smallest relative WER gap each discoverer finds with probability ``power``, by simulation.

    ``scored_speakers``: an :class:`~fairaudit.result.AuditResult` (in memory, or loaded
    from report.json + speaker_scores.csv): its speakers, side inputs and discoverers are
    used as the audit had them, and each discoverer must reproduce the audit's cohorts.
    Or a per-speaker table (speaker_id, errors, ref_words and lat/lon, zip, attribute
    columns) with ``side`` (side inputs) and ``discoverers`` (e.g.
    :func:`fairaudit.audit.build_discoverers`).
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
    speakers, side, discoverers, expected = source(scored_speakers, side, discoverers)
    table = _table(speakers)
    n_total = len(table)

    out_discs: dict[str, dict] = {}
    plans: list[_Plan] = []
    for disc in discoverers:
        plan = prepare(disc, table, side, expected.get(disc.key))
        if isinstance(plan, str):
            out_discs[disc.key] = {"name": disc.name, "skipped": plan}
            continue
        plan = _with_lookup(plan, n_total)
        plan.rows = plan.planter.rows(shares)
        perm = permutation_null(disc, table, side, 0.0, n_perm=n_perm, seed=seed, workers=workers,
                                audited=plan.audited_ids, assignment=plan.assignment,
                                observed_statistic=0.0 if plan.own_statistic else None)
        plan.null = np.asarray(perm["null_statistics" if plan.own_statistic else "null_gaps_pct"], dtype=float)
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




def source(result_or_speakers, side: SideInputs | None, discoverers: list[Discoverer] | None,
           side_overrides: dict | None = None
           ) -> tuple[pd.DataFrame, SideInputs, list[Discoverer], dict[str, pd.Series]]:
    """(speaker table, side inputs, discoverers, the audit's cohorts per key) from an
    :class:`~fairaudit.result.AuditResult` (the audit's own speakers, side inputs and
    discoverers: nothing is audited again) or from a speaker table plus side inputs and
    discoverers given explicitly."""
    from ..result import AuditResult

    if isinstance(result_or_speakers, AuditResult):
        result = result_or_speakers
        if result.speakers is None:
            raise UserInputError("the audit has no speaker table (speaker_scores.csv beside report.json)",
                                 path=result.path, hint="run `fairaudit audit ... --out DIR` again")
        side = side if side is not None else result.side_inputs(side_overrides)
        discs = discoverers if discoverers is not None else result.discoverer_objects()
        expected = {d.key: result.assignment(d.key) for d in discs
                    if d.key in result.discoverers and not result.discoverers[d.key].get("skipped")}
        return result.speakers, side, discs, expected
    if discoverers is None:
        raise TypeError("give the discoverers, or pass an AuditResult")
    return result_or_speakers, side or SideInputs(), discoverers, {}
