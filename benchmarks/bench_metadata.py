"""Metadata discoverer (speaker-attribute tree): power, precision/recall, null rate, speed.

    python benchmarks/bench_metadata.py [--speakers 600,1000] [--reps 30] [--perm 100]
                                        [--criteria speaker_z,z,lr,difference] [--leaves 6]

Simulation (the issue-15 standard, generator shared with tests/test_discover_metadata.py):
per-speaker error rate ~ Beta(mean 0.15, concentration 20), Poisson(8)+1 utterances of
3-20 words, attributes age_band (4), gender (2), accent (5), numeric age; planted: the
intersection age_band=60+ AND accent=southern (~9 % of speakers) gets 1.5x errors.

For each criterion and size it prints, over ``--reps`` seeded replicates: the bottom
cohort's precision and recall against the planted speakers, the share of replicates whose
permutation p-value is < 0.05 with the planted effect (power) and without it (null rate),
for two test statistics: the audit's bottom-vs-top gap (%) and the discoverer's own
``statistic`` (bottom-vs-rest speaker-level z).  Then the time of one fit at 100,000
speakers and of ``permutation_null`` (200 permutations) at 1,000 speakers.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fairaudit.discover.base import SideInputs  # noqa: E402
from fairaudit.discover.metadata import MetadataDiscoverer  # noqa: E402
from fairaudit.stats import permutation_null  # noqa: E402
from test_discover_metadata import bottom_of, make_speakers  # noqa: E402

_PERMUTED = ("utterances", "ref_words", "substitutions", "deletions", "insertions", "errors", "wer")


def statistics(table, disc) -> tuple[np.ndarray, set]:
    """([gap %, own statistic], bottom members) of one fit; zeros when there is one cohort.

    The gap is ranked as the audit ranks (highest-WER eligible cohort vs the lowest), in
    numpy: this runs once per permutation.
    """
    found = disc.fit(table, SideInputs())
    if len(found.labels) < 2:
        return np.zeros(2), set()
    rows = pd.Index(table["speaker_id"]).get_indexer(found.assignment.index)
    codes, ids = pd.factorize(found.assignment.to_numpy(), sort=True)
    e = np.bincount(codes, table["errors"].to_numpy(float)[rows])
    w = np.bincount(codes, table["ref_words"].to_numpy(float)[rows])
    ok = np.bincount(codes) >= disc.min_speakers
    wer = e / w
    b, t = np.argmax(np.where(ok, wer, -1.0)), np.argmin(np.where(ok, wer, np.inf))
    members = set(found.assignment.index[codes == b])
    return np.array([100 * (wer[b] - wer[t]) / wer[t], found.statistic]), members


def replicate(n: int, seed: int, planted: bool, n_perm: int, **params) -> dict:
    """One seeded data set: precision/recall and the permutation p-values of both statistics."""
    speakers, truth = make_speakers(n=n, seed=seed, planted=planted)
    disc = MetadataDiscoverer(**params)
    observed, members = statistics(speakers, disc)
    rng = np.random.default_rng([seed, 7])
    table = speakers.copy()
    hits = np.zeros(2)
    for _ in range(n_perm):
        take = rng.permutation(n)
        for c in _PERMUTED:
            table[c] = speakers[c].to_numpy()[take]
        hits += statistics(table, disc)[0] >= observed - 1e-9
    out = {"p": (1 + hits) / (1 + n_perm)}
    if planted and members:
        out["precision"] = len(members & truth) / len(members)
        out["recall"] = len(members & truth) / len(truth)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--speakers", default="600,1000")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--perm", type=int, default=100)
    ap.add_argument("--criteria", default="speaker_z,z,lr,difference")
    ap.add_argument("--leaves", type=int, default=6)
    args = ap.parse_args()
    print(f"{'criterion':<11} {'speakers':>8} {'precision':>9} {'recall':>6} {'power(gap)':>10} "
          f"{'power(z)':>8} {'null(gap)':>9} {'null(z)':>7}  seconds")
    for criterion in args.criteria.split(","):
        for n in (int(s) for s in args.speakers.split(",")):
            t0 = time.perf_counter()
            params = {"criterion": criterion, "max_leaves": args.leaves}
            alt = [replicate(n, s, True, args.perm, **params) for s in range(args.reps)]
            null = [replicate(n, 500 + s, False, args.perm, **params) for s in range(args.reps)]
            power = np.mean([r["p"] < 0.05 for r in alt], axis=0)
            rate = np.mean([r["p"] < 0.05 for r in null], axis=0)
            prec = np.mean([r.get("precision", 0.0) for r in alt])
            rec = np.mean([r.get("recall", 0.0) for r in alt])
            print(f"{criterion:<11} {n:>8} {prec:>9.2f} {rec:>6.2f} {power[0]:>10.2f} {power[1]:>8.2f} "
                  f"{rate[0]:>9.2f} {rate[1]:>7.2f}  {time.perf_counter() - t0:.0f}", flush=True)

    big, _ = make_speakers(n=100_000, seed=1)
    disc = MetadataDiscoverer()
    disc.fit(big, SideInputs())
    t0 = time.perf_counter()
    for _ in range(3):
        disc.fit(big, SideInputs())
    print(f"one fit, 100,000 speakers x {len(disc.candidate_columns(big))} columns: "
          f"{(time.perf_counter() - t0) / 3:.2f} s")
    speakers, _ = make_speakers(n=1000, seed=2)
    found = disc.fit(speakers, SideInputs())
    gap = bottom_of(speakers, found)[2]
    t0 = time.perf_counter()
    permutation_null(disc, speakers, SideInputs(), gap, n_perm=200, seed=0, workers=1)
    print(f"permutation null, 1,000 speakers x 200 permutations (one process): {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
