"""Honest-statistics timings: speaker bootstrap, paired comparison, permutation null.

    python benchmarks/bench_stats.py [--speakers 100000] [--boot 1000] [--perm 200]
                                     [--perm-speakers 10000,100000] [--cohorts 16]

1. ``bootstrap_cohorts``: N synthetic speakers in C cohorts x B resamples (target: <= 5 s
   for 100,000 speakers x 1000 resamples), plus ``bootstrap_overall``.
2. ``paired_delta``: N speakers, B resamples (bootstrap + sign flips).
3. ``permutation_null`` with the geographic discoverer (16 regions): per speaker count,
   one fit, then n_perm permutations serially (workers=1) and with the default (all
   cores, when it pays); checks the two give identical null gaps.

Synthetic data: fixed seed, vectorised numpy; nothing is written to disk.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairaudit import stats  # noqa: E402
from fairaudit.discover import SideInputs  # noqa: E402
from fairaudit.discover.geographic import GeographicDiscoverer  # noqa: E402
from fairaudit.result import cohort_statistics  # noqa: E402

TARGET_BOOT_S = 5.0


def speakers(n: int, seed: int = 0) -> pd.DataFrame:
    """n speakers over the contiguous US, 10 utterances each, WER level ~10 % (lognormal)."""
    rng = np.random.default_rng(seed)
    words = rng.integers(50, 400, n)
    errors = rng.binomial(words, np.minimum(0.10 * rng.lognormal(0.0, 0.3, n), 0.9))
    return pd.DataFrame({"speaker_id": np.array([f"spk{i:07d}" for i in range(n)], dtype=object),
                         "utterances": np.full(n, 10), "ref_words": words, "errors": errors,
                         "wer": errors / words, "lat": rng.uniform(25.0, 48.0, n), "lon": rng.uniform(-124.0, -67.0, n)})


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=100_000)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--cohorts", type=int, default=16)
    ap.add_argument("--paired-resamples", type=int, default=1000)
    ap.add_argument("--perm", type=int, default=200)
    ap.add_argument("--perm-speakers", default="10000,100000",
                    help="comma-separated speaker counts for the permutation null ('' to skip)")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {cores} core(s)")

    n, b = args.speakers, args.boot
    sp = speakers(n)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, args.cohorts, n)
    e, w = sp["errors"].to_numpy(), sp["ref_words"].to_numpy()
    _, t_boot = timed(stats.bootstrap_cohorts, e, w, codes, n_boot=b, seed=0, pairs=[(0, 1)])
    ok = "OK" if t_boot <= TARGET_BOOT_S or (n, b) != (100_000, 1000) else "SLOW"
    print(f"bootstrap_cohorts  {n:>9,} speakers x {b:>5} resamples, {args.cohorts} cohorts: "
          f"{t_boot:6.2f} s  (target <= {TARGET_BOOT_S:.0f} s for 100,000 x 1000: {ok})")
    _, t_all = timed(stats.bootstrap_overall, e, w, n_boot=b, seed=0)
    print(f"bootstrap_overall  {n:>9,} speakers x {b:>5} resamples:             {t_all:6.2f} s")
    eb = e + rng.binomial(w, 0.005)
    _, t_pair = timed(stats.paired_delta, e, eb, w, n_resamples=args.paired_resamples, seed=0)
    print(f"paired_delta       {n:>9,} speakers x {args.paired_resamples:>5} resamples (boot + flips): {t_pair:6.2f} s")

    for m in [int(x) for x in args.perm_speakers.split(",") if x.strip()]:
        table = speakers(m, seed=2)
        disc = GeographicDiscoverer(min_speakers=20, max_regions=16)
        side = SideInputs()
        found, t_fit = timed(disc.fit, table, side)
        _, summary = cohort_statistics(table, found.assignment, found.labels, disc.min_speakers)
        kw = dict(n_perm=args.perm, seed=0, observed_gap_abs=summary["wer_gap_abs"], audited=found.assignment.index)
        print(f"permutation_null   geographic, {m:>9,} speakers: one fit {t_fit:6.3f} s")
        serial = None
        if m <= 20_000:
            serial, t_ser = timed(stats.permutation_null, disc, table, side, summary["wer_gap_pct"], workers=1, **kw)
            print(f"                   {args.perm} permutations, workers=1:       {t_ser:6.2f} s")
        auto, t_auto = timed(stats.permutation_null, disc, table, side, summary["wer_gap_pct"], **kw)
        print(f"                   {args.perm} permutations, workers=default: {t_auto:6.2f} s  "
              f"(p = {auto['p_value']:.3f}, null p95 = {auto['null_gap_p95_pct']:.1f} %, "
              f"observed = {summary['wer_gap_pct']:.1f} %)")
        if serial is not None:
            same = np.array_equal(serial["null_gaps_pct"], auto["null_gaps_pct"])
            print(f"                   serial == default: {same}")


if __name__ == "__main__":
    main()
