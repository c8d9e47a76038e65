"""The statistics of one report entry: intervals, permutation null, held-out gap."""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pandas as pd

from ..lookup import positions
from ._common import check_count, check_level, check_seed
from .bootstrap import BOOTSTRAP_METHOD, bootstrap_cohorts, bootstrap_overall
from .permutation import permutation_null


def overall_ci(speakers: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95
               ) -> list[float | None] | None:
    """[lo, hi] studentised interval of the overall WER (ratio), resampling speakers (the
    shared speaker resamples, :func:`fairaudit.stats.bootstrap.bootstrap_overall`); None if n_boot == 0."""
    if check_count(n_boot, "number of bootstrap resamples", 0) == 0 or not len(speakers):
        return None
    lo, hi = bootstrap_overall(speakers["errors"].to_numpy(dtype=float), speakers["ref_words"].to_numpy(dtype=float),
                               n_boot=n_boot, seed=seed, level=level)
    return [lo, hi]


@contextmanager
def stage(timings: dict[str, float] | None, name: str):
    """Add the wall time of the ``with`` block to ``timings[name]`` (seconds); no-op for None."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def add_statistics(entry: dict, discoverer, speakers: pd.DataFrame, utterances: pd.DataFrame | None, side,
                   assignment: pd.Series, n_boot: int = 1000, n_perm: int = 200, seed: int = 0,
                   level: float = 0.95, honest: bool = True, *, alpha: float = 0.05,
                   workers: int | None = None, statistic: float | None = None,
                   statistic_name: str | None = None, heldout_splits: int = 5, heldout_folds: int = 2,
                   timings: dict[str, float] | None = None, perm_stop_after: int | None = None,
                   parts: tuple[str, ...] = ("bootstrap", "permutation", "heldout")) -> None:
    """Add confidence intervals, the permutation null and the held-out gap to one report entry.

    ``entry``: the dict built by :func:`fairaudit.audit.run_discoverer` (mutated in place);
    ``assignment``: its cohort id per speaker_id; ``speakers``/``utterances``: the scored
    per-speaker and per-utterance tables (``utterances`` may be None: no held-out gap).
    ``statistic``/``statistic_name``: the discoverer's own search statistic
    (``Discovery.statistic``), tested instead of the gap when given.

    Adds to each cohort ``wer_ci_low``/``wer_ci_high`` (ratio) and to the entry
    ``wer_gap_ci_pct`` [lo, hi] (%; None when the gap is undefined), ``wer_gap_abs_ci``
    [lo, hi] (ratio), ``ci_level``, ``bootstrap`` {n, unit, method, seed}, ``permutation``
    (see :func:`permutation_null`; None when ``n_perm`` is 0), ``p_value`` (its copy),
    ``significant`` (p_value < ``alpha``; None when not tested), ``heldout`` (the gap on
    held-out speakers, :func:`fairaudit.heldout.heldout_gap` with ``heldout_folds`` folds x
    ``heldout_splits`` repetitions; None when ``honest`` is false), ``headline_gap`` (the gap
    the console, the HTML summary and a reader should quote: :func:`headline_gap`) and
    ``honest_gap`` (the former utterance-split estimate, kept in the schema: always None
    now, because a speaker's own error level sits in both halves of an utterance split).
    With ``n_boot`` = 0 the intervals are None.  A skipped entry is left alone.  Each
    statistic draws from its own random stream (:mod:`fairaudit.stats.rng`), named by the
    discoverer's key.  ``timings``: seconds of each statistic are added to it under
    ``bootstrap:<key>``, ``permutation:<key>`` and ``heldout:<key>`` (the report's timings).
    ``perm_stop_after``: the sequential p-value's h (:func:`permutation_null`; None = all).
    ``parts``: which of the three statistics to compute (:data:`PARTS`; each writes only
    its own fields, :data:`PART_FIELDS`, so parts computed in different processes merge
    with :func:`merge_part`); ``headline_gap`` is set when all three are done here.
    """
    if entry.get("skipped"):
        return
    n_boot = check_count(n_boot, "number of bootstrap resamples", 0)
    n_perm = check_count(n_perm, "number of permutations", 0)
    level, seed = check_level(level), check_seed(seed)
    cohorts = entry.get("cohorts", [])
    ids = [c["id"] for c in cohorts]
    bottom, top = entry.get("bottom"), entry.get("top")

    key = discoverer.key
    if "bootstrap" in parts:
        entry["ci_level"] = level
        entry["wer_gap_ci_pct"] = None
        entry["wer_gap_abs_ci"] = None
        with stage(timings, f"bootstrap:{key}"):
            _add_intervals(entry, cohorts, ids, speakers, assignment, n_boot, seed, level, key)
        entry["bootstrap"] = {"n": n_boot, "unit": "speaker", "method": BOOTSTRAP_METHOD, "seed": seed}

    if "permutation" in parts:
        entry["permutation"] = None
        entry["p_value"] = None
        entry["significant"] = None
    if "permutation" in parts and n_perm > 0 and (bottom is not None or statistic is not None):
        with stage(timings, f"permutation:{key}"):
            perm = permutation_null(discoverer, speakers, side, entry.get("wer_gap_pct"), n_perm=n_perm, seed=seed,
                                    workers=workers, observed_gap_abs=entry.get("wer_gap_abs"),
                                    audited=assignment.index, assignment=assignment,
                                    observed_statistic=statistic, statistic_name=statistic_name,
                                    stop_after=perm_stop_after)
        perm = {k: v for k, v in perm.items() if not k.startswith("null_gaps") and k != "null_statistics"}
        entry["permutation"] = perm
        entry["p_value"] = perm["p_value"]
        entry["significant"] = bool(perm["p_value"] < alpha)

    if "heldout" in parts:
        entry["honest_gap"] = None
        entry["heldout"] = None
    if "heldout" in parts and honest:
        from ..heldout import heldout_gap

        with stage(timings, f"heldout:{key}"):
            entry["heldout"] = heldout_gap(discoverer, speakers, side, folds=heldout_folds, repeats=heldout_splits,
                                           seed=seed, n_boot=n_boot, level=level, assignment=assignment)
    if set(PARTS) <= set(parts):
        entry["headline_gap"] = headline_gap(entry)


#: the three statistics of an entry, in the order a serial run computes them
PARTS = ("bootstrap", "permutation", "heldout")
#: the entry fields each part writes (the bootstrap also writes its cohorts' CI_FIELDS)
PART_FIELDS = {"bootstrap": ("ci_level", "wer_gap_ci_pct", "wer_gap_abs_ci", "bootstrap"),
               "permutation": ("permutation", "p_value", "significant"),
               "heldout": ("honest_gap", "heldout")}
CI_FIELDS = ("wer_ci_low", "wer_ci_high")


def part_result(entry: dict, part: str) -> dict:
    """What one part wrote into ``entry`` (small: sent back from a worker process)."""
    out = {"fields": {k: entry[k] for k in PART_FIELDS[part] if k in entry}}
    if part == "bootstrap":
        out["cohorts"] = [{k: c[k] for k in CI_FIELDS if k in c} for c in entry.get("cohorts", [])]
    return out


def merge_part(entry: dict, result: dict) -> None:
    """Copy a :func:`part_result` into ``entry`` (its cohorts in the same order)."""
    entry.update(result["fields"])
    for cohort, extra in zip(entry.get("cohorts", []), result.get("cohorts", [])):
        cohort.update(extra)


HEADLINE_HELDOUT = ("held-out: cohorts found on some speakers, gap measured on the others "
                    "(speaker-split cross-fitting)")
HEADLINE_DISCOVERY = ("as found: measured on the speakers that chose the cohorts, so a search inflates it "
                      "(no interval: the bootstrap interval holds the found cohorts fixed)")


def headline_gap(entry: dict) -> dict:
    """The gap to quote for one entry, and what it is.

    The held-out gap (``entry["heldout"]``) when it has an estimate: ``basis`` "heldout",
    ``gap_pct`` (%), ``gap_abs`` (ratio), ``ci_pct``/``ci_abs`` its interval.  Otherwise the
    discovery gap (``wer_gap_pct``/``wer_gap_abs``) with ``basis`` "discovery", no interval
    (the fixed-cohort bootstrap interval ignores the search: it stays in
    ``wer_gap_ci_pct``) and ``reason`` saying why there is no held-out estimate.
    """
    held = entry.get("heldout") or {}
    if held.get("estimate"):
        return {"basis": "heldout", "gap_pct": held.get("gap_pct"), "gap_abs": held.get("gap_abs"),
                "ci_pct": held.get("ci_pct"), "ci_abs": held.get("ci_abs"), "label": HEADLINE_HELDOUT}
    reason = held.get("reason") or "held-out gap not computed (--no-honest-gap)"
    return {"basis": "discovery", "gap_pct": entry.get("wer_gap_pct"), "gap_abs": entry.get("wer_gap_abs"),
            "ci_pct": None, "ci_abs": None, "label": HEADLINE_DISCOVERY, "reason": reason}


def _add_intervals(entry: dict, cohorts: list[dict], ids: list, speakers: pd.DataFrame, assignment: pd.Series,
                   n_boot: int, seed: int, level: float, key: str) -> None:
    """Cohort WER intervals (``wer_ci_low``/``wer_ci_high``, ratio) and the gap's intervals
    (``wer_gap_ci_pct`` %, ``wer_gap_abs_ci`` ratio) of one entry, from one speaker bootstrap."""
    if not (n_boot > 0 and ids):
        for c in cohorts:
            c["wer_ci_low"] = c["wer_ci_high"] = None
        return
    bottom, top = entry.get("bottom"), entry.get("top")
    if not speakers["speaker_id"].is_unique:
        raise ValueError("assignment names speakers that are not (once) in the speaker table")
    rows = positions(assignment.index, speakers["speaker_id"])
    if (rows < 0).any():
        raise ValueError("assignment names speakers that are not (once) in the speaker table")
    sp = speakers.iloc[rows]
    codes = pd.Index(ids).get_indexer(assignment.to_numpy())
    if (codes < 0).any():
        raise ValueError("assignment names a cohort that is not in the entry")
    pairs = [(ids.index(bottom), ids.index(top))] if bottom is not None and top is not None else []
    res = bootstrap_cohorts(sp["errors"].to_numpy(dtype=float), sp["ref_words"].to_numpy(dtype=float), codes,
                            n_boot=n_boot, seed=seed, level=level, pairs=pairs, n_cohorts=len(ids), key=key,
                            table_rows=rows, n_table=len(speakers))
    for k, c in enumerate(cohorts):
        c["wer_ci_low"] = None if np.isnan(res["lo"][k]) else float(res["lo"][k])
        c["wer_ci_high"] = None if np.isnan(res["hi"][k]) else float(res["hi"][k])
    if pairs:
        entry["wer_gap_abs_ci"] = list(res["gap_abs"][0])
        if entry.get("wer_gap_pct") is not None:
            entry["wer_gap_ci_pct"] = list(res["gap_pct"][0])
