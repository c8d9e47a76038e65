"""Adjusted rate ratios at scale, against statsmodels' GEE, and the simulation figures.

    python benchmarks/bench_adjust.py [--speakers 100000] [--cohorts 30] [--sm-speakers 10000]
                                      [--reps 0]

1. **Speed.**  ``--speakers`` synthetic speakers with Poisson(9)+1 utterances each
   (~1M utterances at 100k speakers; per-speaker error rate ~ Beta(2, 18)), an
   utterance-level device (far-field 2x worse), utterance-level SNR (numeric), speaker
   age (numeric) and gender.  Times :func:`fairaudit.adjust.build_cells` (once per audit)
   and :func:`fairaudit.adjust.rate_ratios` for ``--cohorts`` cohorts in three
   discoverers (gender, a 8-level region, ``cohorts - 10`` clusters), adjusted for
   device, snr_db, age and ref_words, and raw.  Target: all adjusted models within a
   few seconds.
2. **statsmodels.**  The same adjusted model for one cohort with
   ``statsmodels...GEE(Poisson, Independence)`` on one row per utterance of the first
   ``--sm-speakers`` speakers: its time, ours on the same subsample, and the largest
   relative difference of rate ratio and standard error (plain sandwich, which is
   statsmodels' default).
3. **The issue's example** (always; ``--example-csv PATH`` also writes its data for the
   README's CLI example): far-field devices served 2x worse, used by 75 % of women and
   25 % of men, no gender effect; 150 speakers, seed 0.  The whole ``fairaudit.audit``
   (attribute cohorts by gender, 200 permutations, ``adjust=["device"]``): the raw gender
   gap and its permutation p-value (the issue measured +47 %, p = 0.02 on its own draw),
   the raw and adjusted rate ratios and whether the gap is explained away.
4. **Simulations** (``--reps N``, e.g. 1000): the figures the tests assert on, with more
   replicates (coverage under a confounder, bias with a real 2x effect, Holm's
   family-wise error on null data with 30 cohorts of 20 speakers).

Synthetic data: fixed seed, vectorised numpy; nothing is written to disk.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairaudit.adjust import build_cells, holm_bh, rate_ratios  # noqa: E402

COVARIATES = ["device", "snr_db", "age", "ref_words"]


def population(n_speakers: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(utterances, speakers) of the speed benchmark; see the module docstring."""
    rng = np.random.default_rng(seed)
    rate = rng.beta(2, 18, n_speakers)
    per = rng.poisson(9, n_speakers) + 1
    spk = np.repeat(np.arange(n_speakers), per)
    words = rng.integers(3, 21, len(spk))
    female = rng.random(n_speakers) < 0.5
    far = rng.random(len(spk)) < np.where(female, 0.6, 0.3)[spk]
    snr = rng.normal(20, 6, len(spk)).round(1)
    errors = rng.poisson(words * rate[spk] * np.where(far, 2.0, 1.0) * np.exp(-0.02 * (snr - 20)))
    ids = np.array([f"spk{i:07d}" for i in range(n_speakers)], dtype=object)
    utts = pd.DataFrame({"speaker_id": ids[spk], "errors": errors, "ref_words": words,
                         "device": np.where(far, "far", "near"), "snr_db": snr})
    speakers = pd.DataFrame({"speaker_id": ids, "gender": np.where(female, "f", "m"),
                             "age": rng.integers(18, 85, n_speakers),
                             "region": rng.integers(0, 8, n_speakers).astype(str)})
    return utts, speakers


def assignments(speakers: pd.DataFrame, n_cohorts: int, seed: int = 0) -> dict[str, pd.Series]:
    """Three discoverers' cohorts: gender (2), region (8), clusters (the rest)."""
    rng = np.random.default_rng(seed + 1)
    ids = speakers["speaker_id"].to_numpy()
    k = max(2, n_cohorts - 10)
    return {"gender": pd.Series(speakers["gender"].to_numpy(), index=ids),
            "region": pd.Series(speakers["region"].to_numpy(), index=ids),
            "clusters": pd.Series(rng.integers(0, k, len(ids)).astype(str), index=ids)}


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process): on a shared machine the CPU
    time is the steadier figure."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, time.process_time() - c


def speed(n_speakers: int, n_cohorts: int, sm_speakers: int) -> None:
    utts, speakers = population(n_speakers)
    print(f"data: {n_speakers:,} speakers, {len(utts):,} utterances; covariates {', '.join(COVARIATES)}")
    table, t_cells, c_cells = timed(build_cells, utts, speakers, COVARIATES)
    print(f"build_cells: {t_cells:.2f} s (CPU {c_cells:.2f} s) -> {len(table.errors):,} speaker x covariate cells, "
          f"{table.design.shape[0]} covariate combinations, {len(table.columns)} design columns")
    total = np.zeros(4)   # wall/CPU adjusted, wall/CPU raw
    n_fitted = 0
    for name, a in assignments(speakers, n_cohorts).items():
        res, t_adj, c_adj = timed(rate_ratios, table, a)
        raw, t_raw, c_raw = timed(rate_ratios, table, a, adjust=False)
        total += (t_adj, c_adj, t_raw, c_raw)
        n_fitted += len(res)
        print(f"  {name:9s} {len(res):3d} cohorts: adjusted {t_adj:6.2f} s (CPU {c_adj:5.2f} s), "
              f"raw {t_raw:5.2f} s (CPU {c_raw:5.2f} s)")
    print(f"all {n_fitted} cohorts: adjusted {total[0]:.2f} s (CPU {total[1]:.2f} s); with build_cells "
          f"{total[0] + t_cells:.2f} s (CPU {total[1] + c_cells:.2f} s); raw {total[2]:.2f} s (CPU {total[3]:.2f} s)")
    fr_wall = fr_cpu = 0.0
    for name, a in assignments(speakers, n_cohorts).items():
        _, w, c = timed(rate_ratios, table, a, model="frailty")
        fr_wall, fr_cpu = fr_wall + w, fr_cpu + c
    print(f"speaker random-intercept model (model='frailty'), same {n_fitted} cohorts: {fr_wall:.2f} s "
          f"(CPU {fr_cpu:.2f} s)")

    # statsmodels on a subsample, one row per utterance
    from statsmodels.genmod import cov_struct, families
    from statsmodels.genmod.generalized_estimating_equations import GEE

    keep_ids = speakers["speaker_id"].to_numpy()[:sm_speakers]
    sub = utts.loc[utts["speaker_id"].isin(keep_ids)].reset_index(drop=True)
    sub_sp = speakers.loc[speakers["speaker_id"].isin(keep_ids)]
    gender = pd.Series(sub_sp["gender"].to_numpy(), index=sub_sp["speaker_id"].to_numpy())
    def ours():
        sub_table = build_cells(sub, sub_sp, COVARIATES)
        return sub_table, rate_ratios(sub_table, gender, variance="robust").set_index("cohort").loc["f"]

    (sub_table, mine), _, t_mine = timed(ours)
    X = _utterance_design(sub, sub_table, gender)
    # both single-threaded BLAS, as rate_ratios runs (on 2 cores statsmodels' threaded
    # BLAS spent 6x the CPU for the same fit)
    with threadpool_limits(limits=1, user_api="blas"):
        ref, _, t_sm = timed(lambda: GEE(sub["errors"].to_numpy(), X, groups=sub["speaker_id"].to_numpy(),
                                     family=families.Poisson(), cov_struct=cov_struct.Independence(),
                                         offset=np.log(sub["ref_words"].to_numpy())).fit())
    d_rr = abs(mine["rate_ratio"] / np.exp(ref.params[-1]) - 1)
    d_se = abs(mine["se_log"] / np.sqrt(ref.cov_robust[-1, -1]) - 1)
    print(f"statsmodels GEE, {sm_speakers:,} speakers / {len(sub):,} utterances, 1 cohort: CPU {t_sm:.2f} s; "
          f"fairaudit on the same (cells included): CPU {t_mine:.3f} s ({t_sm / t_mine:.0f}x); "
          f"relative difference: rate ratio {d_rr:.1e}, SE {d_se:.1e}")
    per_utt = t_sm / len(sub)
    print(f"statsmodels extrapolated to {len(utts):,} utterances x {n_fitted} cohorts: "
          f"~{per_utt * len(utts) * n_fitted:.0f} s CPU (linear in rows)")


def _utterance_design(utts: pd.DataFrame, table, cohort: pd.Series) -> np.ndarray:
    """One design row per utterance, the cell table's (for the statsmodels fit)."""
    z = (cohort.loc[utts["speaker_id"]].to_numpy() == "f").astype(float)
    return np.column_stack([np.ones(len(utts)), table.design[table.utterance_key], z])


def example_data(n_speakers: int = 150, seed: int = 0) -> pd.DataFrame:
    """The issue's confounding example as an utterance table (counts given, no text):
    ``utt_id``, ``speaker_id``, ``errors``, ``ref_words``, ``device`` (far/near, per
    speaker), ``gender`` (f/m); built by the tests' own generator."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_adjust import _confounded

    utts, gender = _confounded(np.random.default_rng(seed), n_speakers)
    utts.insert(0, "utt_id", [f"u{i:05d}" for i in range(len(utts))])
    utts["gender"] = gender.loc[utts["speaker_id"]].to_numpy()
    return utts


def issue_example(csv_path: str | None = None) -> None:
    """The issue's example through the whole audit (see the module docstring)."""
    from fairaudit.audit import audit

    utts = example_data()
    if csv_path:
        utts.to_csv(csv_path, index=False)
        print(f"wrote {csv_path}: {len(utts):,} utterances of {utts['speaker_id'].nunique()} speakers")
    res = audit(utts, by=["gender"], discoverers=[], adjust=["device"], n_boot=0, n_perm=200, honest=False, seed=0)
    entry = res.discoverers["attribute:gender"]
    f = next(c for c in entry["cohorts"] if c["label"] == "gender=f")
    raw, adj = f["rate_ratio"], f["adjusted"]
    print("\nthe issue's example (far-field 2x worse, used by 75 % of women / 25 % of men, no gender effect; "
          f"{utts['speaker_id'].nunique()} speakers, seed 0)")
    print(f"  attribute cohorts: bottom {entry['cohorts'][0]['label']}, gap {entry['wer_gap_pct']:+.1f} %, "
          f"permutation p = {entry['p_value']:.3f}   (the issue: +47 %, p = 0.02)")
    print(f"  gender=f rate ratio vs the rest, raw: {raw['rate_ratio']:.3f} [{raw['rate_ratio_ci'][0]:.3f}, "
          f"{raw['rate_ratio_ci'][1]:.3f}], p = {raw['p_value']:.4f}")
    print(f"  adjusted for device: {adj['rate_ratio']:.3f} [{adj['rate_ratio_ci'][0]:.3f}, "
          f"{adj['rate_ratio_ci'][1]:.3f}], p = {adj['p_value']:.3f}; explained away: {adj['explained_away']}")


def simulations(reps: int) -> None:
    """The test suite's simulations with ``reps`` replicates each."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_adjust import _confounded, _speakers  # the tests' own generators

    rng = np.random.default_rng(1)
    rows = []
    for effect, utt_level, label in ((1.0, False, "no gender effect, device per speaker"),
                                     (2.0, True, "gender 2x, device per utterance")):
        covered = naive = raw_sig = fr_covered = 0
        logs, raw_logs, fr_logs, se_ratio = [], [], [], []
        for _ in range(reps):
            utts, gender = _confounded(rng, effect=effect, utterance_level=utt_level)
            table = build_cells(utts, covariates=["device", "ref_words"])
            adj = rate_ratios(table, gender).set_index("cohort").loc["f"]
            nv = rate_ratios(table, gender, variance="naive").set_index("cohort").loc["f"]
            raw = rate_ratios(table, gender, adjust=False).set_index("cohort").loc["f"]
            fr = rate_ratios(table, gender, model="frailty").set_index("cohort").loc["f"]
            fr_covered += fr["ci_low"] <= effect <= fr["ci_high"]
            fr_logs.append(np.log(fr["rate_ratio"]))
            se_ratio.append(fr["se_log"] / adj["se_log"])
            covered += adj["ci_low"] <= effect <= adj["ci_high"]
            naive += nv["ci_low"] <= effect <= nv["ci_high"]
            raw_sig += raw["p_value"] < 0.05
            logs.append(np.log(adj["rate_ratio"]))
            raw_logs.append(np.log(raw["rate_ratio"]))
        rows.append((label, effect, covered / reps, naive / reps, raw_sig / reps, float(np.exp(np.mean(logs))),
                     float(np.exp(np.mean(raw_logs))), fr_covered / reps, float(np.exp(np.mean(fr_logs))),
                     float(np.mean(se_ratio)), float(np.std(logs)), float(np.std(fr_logs))))
    print(f"\nconfounder: far-field 2x, used by 75 % of women / 25 % of men; 300 speakers; {reps} replicates")
    print(f"{'scenario':40s} {'truth':>5s} {'cover':>6s} {'naive':>6s} {'raw p<.05':>9s} {'adj RR':>7s} {'raw RR':>7s}"
          f" | frailty: {'cover':>6s} {'RR':>6s} {'SE/GEE':>6s} {'sd/GEE sd':>9s}")
    for r in rows:
        print(f"{r[0]:40s} {r[1]:5.1f} {r[2]:6.3f} {r[3]:6.3f} {r[4]:9.3f} {r[5]:7.3f} {r[6]:7.3f}"
              f" |          {r[7]:6.3f} {r[8]:6.3f} {r[9]:6.3f} {r[11] / r[10]:9.3f}")

    counts = {"false worse (Holm)": 0, "any direction (Holm)": 0, "any (BH q<.05)": 0, "no correction": 0,
              "Holm on plain Wald z": 0}
    for _ in range(reps):
        rate, spk, words, ids = _speakers(rng, 600)
        far = rng.random(len(spk)) < 0.4
        utts = pd.DataFrame({"speaker_id": ids[spk], "ref_words": words, "device": np.where(far, "far", "near"),
                             "errors": rng.poisson(words * rate[spk] * np.where(far, 2.0, 1.0))})
        cohorts = pd.Series(rng.permutation(np.arange(600) % 30).astype(str), index=ids)
        table = build_cells(utts, covariates=["device"])
        res = rate_ratios(table, cohorts)
        holm, bh = holm_bh(res["p_value"].tolist())
        sig = np.array(holm) < 0.05
        counts["false worse (Holm)"] += (sig & (res["rate_ratio"].to_numpy() > 1)).any()
        counts["any direction (Holm)"] += sig.any()
        counts["any (BH q<.05)"] += (np.array(bh) < 0.05).any()
        counts["no correction"] += (res["p_value"] < 0.05).any()
        wald = rate_ratios(table, cohorts, variance="robust")
        counts["Holm on plain Wald z"] += (np.array(holm_bh(wald["p_value"].tolist())[0]) < 0.05).any()
    se = np.sqrt(0.05 * 0.95 / reps)
    print(f"\nnull data, 600 speakers in 30 cohorts of 20, adjusted for device; {reps} replicates "
          f"(Monte-Carlo error ~{se:.3f} at 5 %)")
    for k, v in counts.items():
        print(f"  family-wise error, {k:22s} {v / reps:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=100_000)
    ap.add_argument("--cohorts", type=int, default=30)
    ap.add_argument("--sm-speakers", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=0, help="simulation replicates (0 = skip)")
    ap.add_argument("--example-csv", default=None, help="also write the issue's example data here (CSV)")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}")
    if args.speakers:
        speed(args.speakers, args.cohorts, args.sm_speakers)
    issue_example(args.example_csv)
    if args.reps:
        simulations(args.reps)


if __name__ == "__main__":
    main()
