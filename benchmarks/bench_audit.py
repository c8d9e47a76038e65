"""Benchmark: `fairaudit audit` end to end at 1M utterances / 100k speakers, all discoverers.

Generates a synthetic decoded test set (Parquet), speaker table (lat/lon, zip, gender),
census table and 64-d speaker embeddings, then runs the audit in a fresh subprocess and
prints the time of each stage and the peak memory (RSS of this process and its workers).

    python benchmarks/bench_audit.py                   # 1,000,000 utterances, 100,000 speakers
    python benchmarks/bench_audit.py --n 200000 --permutations 200
    python benchmarks/bench_audit.py --adjust device,ref_words   # with the adjusted models

Every audit tests each cohort against the rest (stage ``rate_ratios``: raw models, and
the held-out re-search of the geographic and geodemographic discoverers); ``--adjust``
adds the adjusted models to that stage (the utterance table has an utterance-level
``device`` column, far/near at random, for it).

Targets (issue 4, on 2 cores): < 60 s and < 3 GB peak with all three discoverers.  The
selection-corrected statistics (--permutations) re-run discovery N times and are timed
as their own stage: run once with --permutations 0 for the discovery target and once with
the defaults to see what the statistics cost.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

CITIES = [(40.71, -74.01), (34.05, -118.24), (41.88, -87.63), (29.76, -95.37), (33.45, -112.07),
          (39.95, -75.17), (29.42, -98.49), (32.72, -117.16), (32.78, -96.80), (37.34, -121.89),
          (30.27, -97.74), (39.74, -104.99), (47.61, -122.33), (42.36, -71.06), (33.75, -84.39),
          (25.76, -80.19), (44.98, -93.27), (36.16, -86.78), (45.52, -122.68), (38.63, -90.20)]


def generate(n_utt: int, n_spk: int, out: str, seed: int = 0) -> dict[str, str]:
    """Write utterances.parquet, speakers.csv, census.csv, embeddings.npy, embedding_ids.txt."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5000)], dtype=object)
    spk = rng.integers(0, n_spk, n_utt)
    city = rng.integers(0, len(CITIES), n_spk)
    planted = city == 14  # Atlanta speakers are served worse
    p = np.clip(0.08 * np.exp(rng.normal(0, 0.35, n_spk)), 0.01, 0.4) * np.where(planted, 2.0, 1.0)
    lengths = rng.integers(5, 21, n_utt)
    words = rng.integers(0, len(vocab), lengths.sum())
    hyp_words = words.copy()
    err = rng.random(len(words)) < np.repeat(p[spk], lengths)
    hyp_words[err] = rng.integers(0, len(vocab), int(err.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ref_tok, hyp_tok = vocab[words], vocab[hyp_words]
    refs = [" ".join(ref_tok[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    hyps = [" ".join(hyp_tok[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    ids = np.array([f"s{i:06d}" for i in range(n_spk)], dtype=object)
    paths = {k: os.path.join(out, v) for k, v in (("utterances", "utterances.parquet"), ("speakers", "speakers.csv"),
                                                   ("census", "census.csv"), ("embeddings", "embeddings.npy"),
                                                   ("embedding_ids", "embedding_ids.txt"))}
    device = np.where(rng.random(n_utt) < 0.3, "far", "near")
    pd.DataFrame({"utt_id": [f"u{i:08d}" for i in range(n_utt)], "speaker_id": ids[spk],
                  "reference": refs, "hypothesis": hyps, "device": device}).to_parquet(paths["utterances"], row_group_size=100_000)
    lat = np.array([CITIES[c][0] for c in city]) + rng.normal(0, 0.2, n_spk)
    lon = np.array([CITIES[c][1] for c in city]) + rng.normal(0, 0.2, n_spk)
    zips = np.array([f"{z:05d}" for z in rng.choice(np.arange(1000, 99999), 3000, replace=False)])
    spk_zip = zips[rng.integers(0, len(zips), n_spk)]
    pd.DataFrame({"speaker_id": ids, "lat": lat.round(4), "lon": lon.round(4), "zip": spk_zip,
                  "gender": rng.choice(["female", "male"], n_spk)}).to_csv(paths["speakers"], index=False)
    share = rng.dirichlet([4, 1, 1, 1], len(zips))
    pd.DataFrame({"zip": zips, "pct_white": share[:, 0].round(3), "pct_black": share[:, 1].round(3),
                  "pct_hispanic": share[:, 2].round(3), "pct_asian": share[:, 3].round(3),
                  "median_income": rng.integers(25_000, 180_000, len(zips))}).to_csv(paths["census"], index=False)
    centres = rng.normal(0, 1, (10, 64))
    emb = centres[rng.integers(0, 10, n_spk)] + rng.normal(0, 0.6, (n_spk, 64))
    np.save(paths["embeddings"], emb.astype(np.float32))
    with open(paths["embedding_ids"], "w") as fh:
        fh.write("\n".join(ids) + "\n")
    return paths


def _child(paths: dict, permutations: int, bootstrap: int, adjust: list[str]) -> None:
    import fairaudit

    t0 = time.perf_counter()
    result = fairaudit.audit(paths["utterances"], speakers=paths["speakers"], census=paths["census"],
                             embeddings=paths["embeddings"], embedding_ids=paths["embedding_ids"], by=["gender"],
                             n_perm=permutations, n_boot=bootstrap, honest=True, adjust=adjust)
    total = time.perf_counter() - t0
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(json.dumps({"timings": result.timings, "total": total, "peak_mb": peak,
                      "overall_wer": result.overall["wer"],
                      "gaps": {k: d.get("wer_gap_pct") for k, d in result.discoverers.items()}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="utterances")
    ap.add_argument("--speakers", type=int, default=None, help="speakers (default n/10)")
    ap.add_argument("--permutations", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--adjust", default="", help="covariates for the adjusted models, e.g. device,ref_words")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(json.loads(args.child), args.permutations, args.bootstrap, [c for c in args.adjust.split(",") if c])
        return
    n_spk = args.speakers or max(10, args.n // 10)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths = generate(args.n, n_spk, tmp)
        print(f"generated {args.n:,} utterances / {n_spk:,} speakers in {time.perf_counter() - t:.1f} s")
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(paths), "--permutations",
                              str(args.permutations), "--bootstrap", str(args.bootstrap), "--adjust", args.adjust],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"audit failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"cores: {len(os.sched_getaffinity(0))}; --permutations {args.permutations}, --bootstrap {args.bootstrap}"
          f"{', --adjust ' + args.adjust if args.adjust else ''}")
    print(f"{'stage':<36}{'seconds':>10}")
    for stage, sec in res["timings"].items():
        if stage != "total":
            print(f"{stage:<36}{sec:>10.2f}")
    print(f"{'total':<36}{res['total']:>10.2f}")
    print(f"peak RSS (self + workers): {res['peak_mb']:,.0f} MB")
    ok_t, ok_m = res["total"] < 60, res["peak_mb"] < 3072
    print(f"target < 60 s: {'met' if ok_t else 'NOT met'}; target < 3 GB: {'met' if ok_m else 'NOT met'}")
    print("gaps %:", {k: (None if v is None else round(v, 1)) for k, v in res["gaps"].items()})


if __name__ == "__main__":
    main()
