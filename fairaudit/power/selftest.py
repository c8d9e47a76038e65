"""The planted self-test: one strong disparity per discoverer; does the audit recover it?"""
from __future__ import annotations

import math

from ..cohorts import members
from ..discover.base import Discoverer, SideInputs
from ..discover.params import Interval, check
from ..stats import permutation_null
from ..stats import rng as _rng
from ..stats._common import check_count as _check_count, check_seed as _check_seed, single_threaded
from .simulate import (MIN_PRECISION, MIN_RECALL, SELFTEST_METHOD, _Simulator, _check_ratio, _table, _with_lookup,
                       prepare, source)


@single_threaded
def selftest(scored_speakers, side: SideInputs | None = None, discoverers: list[Discoverer] | None = None,
             effect: float = 1.0, share: float = 0.10, seed: int = 0, n_perm: int = 100,
             alpha: float = 0.05, workers: int | None = None) -> dict:
    """Plant one disparity per discoverer on the user's data and check the audit finds it.

    ``effect``: the planted error increase (ratio; 1.0 = +100 % errors, i.e. about twice
    the WER); ``scored_speakers``/``side``/``discoverers``: an AuditResult, or a speaker
    table with side inputs and discoverers, as for :func:`estimate_power`; ``share``: the planted cohort's target size (ratio of the audited speakers;
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
    from ..audit import run_discoverer

    check(effect, [Interval(float, 0, math.inf, closed="left")], name="planted effect (ratio; 1.0 = +100 % errors)",
          flag="--effect")
    effect = float(effect)
    share = _check_ratio(share, "cohort share")
    seed = _check_seed(seed)
    n_perm = _check_count(n_perm, "number of permutations", 1)
    alpha = _check_ratio(alpha, "significance level alpha")
    speakers, side, discoverers, expected = source(scored_speakers, side, discoverers)
    table = _table(speakers)
    out: dict[str, dict] = {}
    for disc in discoverers:
        plan = prepare(disc, table, side, expected.get(disc.key))
        if isinstance(plan, str):
            out[disc.key] = {"name": disc.name, "skipped": plan}
            continue
        plan = _with_lookup(plan, len(table))
        if plan.planter.fixed_rows:
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
        bottom_ids = set(members(assignment, entry["bottom"]).astype(str))
        planted = set(plan.audited_ids[plant])
        hit = len(bottom_ids & planted)
        own = entry.get("statistic") or {}
        perm = permutation_null(disc, planted_table, side, entry.get("wer_gap_pct"), n_perm=n_perm, seed=seed,
                                workers=workers, observed_gap_abs=entry.get("wer_gap_abs"),
                                audited=assignment.index, assignment=assignment,
                                observed_statistic=own.get("value"), statistic_name=own.get("name"))
        cohort = next(c for c in entry["cohorts"] if c["id"] == entry["bottom"])
        rec.update({"bottom": entry["bottom"], "bottom_label": cohort.get("label"), "bottom_speakers": len(bottom_ids),
                    "precision": hit / len(bottom_ids) if bottom_ids else 0.0,
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
