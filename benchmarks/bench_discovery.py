"""Does discovery find what is there?  Issue 15's table, measured by simulation.

    python benchmarks/bench_discovery.py                       # the full table (about 30 min on 2 cores)
    python benchmarks/bench_discovery.py --replicates 40 --permutations 99 --skip-scale   # a quick look

For every discoverer, ``--replicates`` planted worlds and as many null worlds of
:mod:`fairaudit.simulate` (500 speakers; per-speaker error rate ~ Beta(mean 0.10,
concentration 20); Poisson(8)+1 utterances of 3-20 words; planted: ~10 % of the speakers
with 1.5x errors, a true gap of +50 %):

* power: share of planted worlds with permutation p < 0.05 (``--permutations``; the
  spatial scan uses its batched null, the others refit per permutation);
* precision / recall of the bottom cohort vs the planted speakers (mean over all planted
  worlds, and over those with p < 0.05);
* the reported (discovery) gap, planted and null (%);
* the held-out gap by speaker split (2 folds x 5 repetitions, :mod:`fairaudit.heldout`),
  planted and null (%), and how often its 95 % interval covers 0 on null worlds;
* null rejection rate (share of null worlds with p < 0.05).

Then the cohort-WER interval coverage (95 % nominal) at 25 and 100 speakers for the
studentised, percentile and BCa speaker bootstrap (:mod:`fairaudit.intervals`), and the
scan's cost at 10,000 and 100,000 speakers (windows, one fit, 100 permutations, peak RSS).

``geographic`` is the geographic discoverer (the spatial scan's hot spot vs the rest,
:mod:`fairaudit.discover.geographic`); ``geographic-tree`` is the discoverer before issue 15
(Trinh et al.'s regions as the cohorts, the bottom-vs-top gap as the statistic).
Deterministic for a given ``--seed``.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from fairaudit import intervals, simulate  # noqa: E402
from fairaudit.cohorts import cohort_table  # noqa: E402
from fairaudit.discover import REGISTRY, Discoverer, Discovery  # noqa: E402
from fairaudit.discover.geographic import _coords, _usable  # noqa: E402
from fairaudit.discover.region_tree import grow_tree, place_in_tree  # noqa: E402
from fairaudit.heldout import heldout_gap  # noqa: E402
from fairaudit.stats import permutation_null  # noqa: E402


class TreeBaseline(Discoverer):
    """Trinh et al.'s regions as the cohorts (the geographic discoverer before issue 15)."""

    name = "geographic_tree"

    def __init__(self, max_regions: int = 16, max_depth: int = 8, **common):
        super().__init__(**common)
        self.max_regions, self.max_depth = max_regions, max_depth

    def missing_inputs(self, speakers, side):
        return None

    def fit(self, speakers, side):
        lat, lon = _coords(speakers)
        keep, not_audited = _usable(lat, lon)
        tree = grow_tree(lat[keep], lon[keep], speakers["errors"].to_numpy(float)[keep],
                         speakers["ref_words"].to_numpy(float)[keep], min_speakers=self.min_speakers,
                         max_regions=self.max_regions, max_depth=self.max_depth)
        ids = speakers["speaker_id"].to_numpy(dtype=object)[keep]
        cohort = np.array([tree.regions[k]["id"] for k in tree.codes], dtype=object)
        return Discovery(pd.Series(cohort, index=pd.Index(ids, name="speaker_id")),
                         {r["id"]: r["id"] for r in tree.regions}, not_audited, definition=tree.definition)

    def assign(self, definition, speakers, side):
        lat, lon = _coords(speakers)
        keep, _ = _usable(lat, lon)
        return pd.Series(place_in_tree(definition, lat[keep], lon[keep]),
                         index=pd.Index(speakers["speaker_id"].to_numpy(dtype=object)[keep], name="speaker_id"))

#: options of the scan (--scan-temperature, --scan-aggregate)
SCAN_OPTIONS: dict = {}
#: discoverer name -> (world kind, constructor)
DISCOVERERS = {
    "geographic": ("geographic", lambda seed: REGISTRY["geographic"](seed=seed, **SCAN_OPTIONS)),
    "geographic-tree": ("geographic", lambda seed: TreeBaseline(seed=seed)),
    "geodemographic": ("geodemographic", lambda seed: REGISTRY["geodemographic"](seed=seed)),
    "automatic": ("automatic", lambda seed: REGISTRY["automatic"](seed=seed)),
    "attribute": ("attribute", lambda seed: REGISTRY["attribute"](seed=seed, columns=["accent"])),
}
if "metadata" in REGISTRY:
    DISCOVERERS["metadata"] = ("attribute", lambda seed: REGISTRY["metadata"](seed=seed))


def one(task: tuple) -> dict:
    """One world: discovery, p-value, precision/recall, held-out gap."""
    name, planted, seed, n_perm, mean_wer, folds, repeats, scan_options = task
    SCAN_OPTIONS.update(scan_options)
    kind, make = DISCOVERERS[name]
    w = simulate.world(kind, seed=seed, planted=planted, mean_wer=mean_wer)
    disc = make(seed)
    t0 = time.perf_counter()
    found = disc.fit(w.speakers, w.side)
    _, summ = cohort_table(w.speakers, found.assignment, found.labels, disc.min_speakers)
    out = {"name": name, "planted": planted, "seed": seed, "gap": summ["wer_gap_pct"], "p": None,
           "precision": 0.0, "recall": 0.0}
    if summ["bottom"] is not None:
        members = found.assignment.index[found.assignment.to_numpy() == summ["bottom"]]
        out["precision"], out["recall"] = simulate.precision_recall(members, w.candidates)
    if summ["bottom"] is not None or found.statistic is not None:
        # the audit's own test (fairaudit.stats.add_statistics): its statistic when it has one
        perm = permutation_null(disc, w.speakers, w.side, summ["wer_gap_pct"], n_perm=n_perm, seed=seed, workers=1,
                                observed_gap_abs=summ["wer_gap_abs"], assignment=found.assignment,
                                observed_statistic=found.statistic, statistic_name=found.statistic_name)
        out["p"] = perm["p_value"]
    h = heldout_gap(disc, w.speakers, w.side, folds=folds, repeats=repeats, seed=seed, n_boot=500,
                    assignment=found.assignment)
    out.update(heldout=h["gap_pct"], heldout_ci=h["ci_pct"], heldout_reason=h.get("reason"),
               seconds=time.perf_counter() - t0)
    return out


def _mean(x) -> float:
    x = [v for v in x if v is not None and np.isfinite(v)]
    return float(np.mean(x)) if x else float("nan")


def _fmt(x: float, digits: int = 2) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def table(results: list[dict], names: list[str]) -> str:
    head = ("| discoverer | power (p<0.05) | precision / recall (all planted) | precision / recall (p<0.05) | "
            "gap reported, planted / null (%) | held-out gap, planted / null (%) | held-out CI covers 0, null | "
            "null rejection | s per world |")
    rows = [head, "|" + "---|" * 9]
    for name in names:
        pl = [r for r in results if r["name"] == name and r["planted"]]
        nu = [r for r in results if r["name"] == name and not r["planted"]]
        if not pl:
            continue
        det = [r for r in pl if r["p"] is not None and r["p"] < 0.05]
        power = len(det) / len(pl)
        rej = sum(1 for r in nu if r["p"] is not None and r["p"] < 0.05) / max(1, len(nu))
        cover = [r["heldout_ci"][0] <= 0 <= r["heldout_ci"][1] for r in nu
                 if r["heldout_ci"] and r["heldout_ci"][0] is not None]
        ho = (f"{_fmt(_mean(r['heldout'] for r in pl), 1)} / {_fmt(_mean(r['heldout'] for r in nu), 1)}"
              if any(r["heldout"] is not None for r in pl) else "no honest estimate (cannot assign)")
        rows.append(
            f"| {name} | {power:.2f} | {_mean(r['precision'] for r in pl):.2f} / {_mean(r['recall'] for r in pl):.2f} "
            f"| {_fmt(_mean(r['precision'] for r in det))} / {_fmt(_mean(r['recall'] for r in det))} "
            f"| {_fmt(_mean(r['gap'] for r in pl), 1)} / {_fmt(_mean(r['gap'] for r in nu), 1)} | {ho} "
            f"| {_fmt(100 * np.mean(cover), 0) + ' %' if cover else '—'} | {rej:.3f} "
            f"| {_mean(r['seconds'] for r in pl + nu):.2f} |")
    return "\n".join(rows)


def coverage_table(replicates: int, n_boot: int, seed: int) -> str:
    rows = ["| cohort size | studentised (default) | percentile | BCa |", "|---|---|---|---|"]
    for n in (25, 100):
        cells = []
        for method in ("studentized", "percentile", "bca"):
            c = intervals.coverage(n, replicates, method=method, n_boot=n_boot, seed=seed)
            cells.append(f"{100 * c['coverage']:.1f} % ± {100 * c['se']:.1f}")
        rows.append(f"| {n} speakers | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def scale(sizes: list[int], n_perm: int) -> str:
    from fairaudit.discover import scan as sc

    rows = ["| speakers | locations (cells?) | windows | build windows (s) | fit (s) | "
            f"{n_perm} permutations (s) | peak RSS (GB) |", "|---|---|---|---|---|---|---|"]
    for n in sizes:
        w = simulate.geographic_world(n_speakers=n, seed=1)
        disc = REGISTRY["geographic"]()
        rows_, _ = disc._audited(w.speakers)
        t = time.process_time()
        win = disc.windows(w.speakers, rows_)
        t_build = time.process_time() - t
        t = time.process_time()
        disc.fit(w.speakers, w.side)       # the windows are built: the scan itself
        t_fit = time.process_time() - t
        sp = w.speakers.iloc[rows_]
        t = time.process_time()
        sc.permuted_statistics(win, sp.errors.to_numpy(float), sp.ref_words.to_numpy(float), n_perm=n_perm)
        t_perm = time.process_time() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        rows.append(f"| {n:,} | {len(win.loc_lat):,} ({'yes' if win.cells else 'no'}) | {win.n_windows:,} "
                    f"| {t_build:.2f} | {t_fit:.2f} | {t_perm:.2f} | {rss:.2f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=200, help="planted and null worlds per discoverer")
    ap.add_argument("--permutations", type=int, default=199)
    ap.add_argument("--discoverers", default=",".join(DISCOVERERS))
    ap.add_argument("--mean-wer", type=float, default=0.10, help="mean of the per-speaker Beta (ratio)")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--coverage-replicates", type=int, default=2000)
    ap.add_argument("--scale", default="10000,100000", help="speaker counts for the scan's cost ('' to skip)")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--scan-temperature", type=float, default=4.0)
    ap.add_argument("--scan-aggregate", default="softmax", choices=("softmax", "max"))
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = [n.strip() for n in args.discoverers.split(",") if n.strip()]
    unknown = [n for n in names if n not in DISCOVERERS]
    if unknown:
        ap.error(f"unknown discoverer(s) {unknown}: choose from {', '.join(DISCOVERERS)}")
    print(f"{args.replicates} planted + {args.replicates} null worlds per discoverer, 500 speakers, "
          f"mean WER {args.mean_wer:g}, {args.permutations} permutations, held-out {args.folds} folds x "
          f"{args.repeats}, {args.workers} worker(s)\n", flush=True)
    scan_options = {"temperature": args.scan_temperature, "aggregate": args.scan_aggregate}
    tasks = [(name, planted, args.seed + 1000 * planted + r, args.permutations, args.mean_wer, args.folds,
              args.repeats, scan_options) for name in names for planted in (True, False)
             for r in range(args.replicates)]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(one, tasks, chunksize=4))
    else:
        results = [one(t) for t in tasks]
    print(table(results, names))
    print(f"\n({time.perf_counter() - t0:.0f} s)\n", flush=True)
    print("95 % CI coverage of a cohort's WER (speaker bootstrap, 1000 resamples; "
          f"{args.coverage_replicates} simulated cohorts each):\n")
    print(coverage_table(args.coverage_replicates, 1000, args.seed), flush=True)
    if not args.skip_scale and args.scale:
        print("\nSpatial scan cost (CPU seconds, one process):\n")
        print(scale([int(x) for x in args.scale.split(",") if x.strip()], 100))


if __name__ == "__main__":
    main()
