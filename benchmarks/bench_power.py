"""Power-analysis timing: ``estimate_power`` on N synthetic speakers x S simulations.

    python benchmarks/bench_power.py [--speakers 1000] [--simulations 200] [--perm 200]
                                     [--workers N] [--serial-check]

Synthetic speakers (fixed seed, numpy): lat/lon over the contiguous US, a zip joined to a
400-zip census table (four share columns, median income), 32-d embeddings in 8 blobs and
a gender attribute; words per speaker 50-400, WER around 10 % (lognormal spread).  Runs
every default discoverer (geographic, geodemographic, automatic, metadata on gender and
an age band) and the gender attribute cohorts at the default shares (1/5/10/25 %) and
gaps, prints the time and the table of smallest detectable gaps.  Target (issue 18):
1,000 speakers x 200 simulations within a minute on 2 cores.
``--serial-check`` also runs with ``workers=1`` on a tenth of the simulations and checks
the result is identical to the pooled run with as many simulations.
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

from fairaudit.audit import build_discoverers  # noqa: E402
from fairaudit.discover import SideInputs  # noqa: E402
from fairaudit.io.census import prepare_census  # noqa: E402
from fairaudit.power import estimate_power  # noqa: E402

TARGET_S = 60.0


def world(n: int, seed: int = 0) -> tuple[pd.DataFrame, SideInputs]:
    rng = np.random.default_rng(seed)
    n_zips = 400
    zips = np.array([f"{z:05d}" for z in rng.choice(np.arange(10000, 99999), n_zips, replace=False)], dtype=object)
    major = rng.choice(4, n_zips, p=[0.6, 0.15, 0.15, 0.10])
    shares = rng.dirichlet(np.ones(4), n_zips) * 0.4
    shares[np.arange(n_zips), major] += 0.6
    census = pd.DataFrame({"zip": zips, "pct_white": shares[:, 0], "pct_black": shares[:, 1],
                           "pct_hispanic": shares[:, 2], "pct_asian": shares[:, 3],
                           "median_income": np.round(rng.lognormal(np.log(60000), 0.35, n_zips), -2)})
    blob = rng.integers(0, 8, n)
    emb = (rng.normal(size=(8, 32))[blob] + 0.6 * rng.normal(size=(n, 32))).astype(np.float32)
    words = rng.integers(50, 400, n)
    errors = rng.binomial(words, np.minimum(0.10 * rng.lognormal(0.0, 0.3, n), 0.9))
    ids = np.array([f"spk{i:06d}" for i in range(n)], dtype=object)
    speakers = pd.DataFrame({"speaker_id": ids, "utterances": np.full(n, 10), "ref_words": words,
                             "errors": errors, "wer": errors / words, "lat": rng.uniform(25.0, 48.0, n),
                             "lon": rng.uniform(-124.0, -67.0, n), "zip": zips[rng.integers(0, n_zips, n)],
                             "gender": rng.choice(["female", "male"], n)})
    # drawn last, so the columns above are those of the earlier benchmark runs
    speakers["age_band"] = rng.choice(["18-29", "30-44", "45-64", "65+"], n, p=[0.25, 0.32, 0.29, 0.14])
    return speakers, SideInputs(census=prepare_census(census), embeddings=emb, embedding_ids=ids.copy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=1000)
    ap.add_argument("--simulations", type=int, default=200)
    ap.add_argument("--perm", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--serial-check", action="store_true")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {cores} core(s)")
    speakers, side = world(args.speakers)
    discs = build_discoverers(None, ["gender"])     # every default discoverer (metadata too) + gender

    t = time.perf_counter()
    res = estimate_power(speakers, side, discs, n_sim=args.simulations, n_perm=args.perm, workers=args.workers)
    took = time.perf_counter() - t
    ok = "OK" if took <= TARGET_S or (args.speakers, args.simulations) != (1000, 200) else "SLOW"
    print(f"estimate_power {args.speakers:,} speakers x {args.simulations} simulations x {len(discs)} discoverers, "
          f"{args.perm} permutations, workers={args.workers or 'all'}: {took:.1f} s "
          f"(target <= {TARGET_S:.0f} s for 1,000 x 200: {ok})")
    for key, d in res["discoverers"].items():
        for row in d.get("shares", []):
            g = row["min_detectable_gap_pct"]
            print(f"  {key:18s} {row['label'] or format(row['target_share_pct'], 'g') + ' %':>14s}  "
                  f"{row['planted_speakers']:>5d} speakers  detectable gap: {'> max' if g is None else f'{g:.0f} %'}")

    if args.serial_check:
        n = max(2, args.simulations // 10)
        a = estimate_power(speakers, side, discs, n_sim=n, n_perm=args.perm, workers=1)
        b = estimate_power(speakers, side, discs, n_sim=n, n_perm=args.perm, workers=max(2, cores or 2))
        print(f"serial == parallel ({n} simulations): {a == b}")


if __name__ == "__main__":
    main()
