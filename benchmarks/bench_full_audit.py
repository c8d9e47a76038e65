"""The whole default `fairaudit audit` against `jiwer.process_words` alone, same rows, same run.

    python benchmarks/bench_full_audit.py                       # 1,000,000 utterances, 100,000 speakers
    python benchmarks/bench_full_audit.py --n 200000            # 20,000 speakers (n / 10)
    python benchmarks/bench_full_audit.py --adjust device       # also the --adjust case (when the CLI has it)

1. **Data** (fixed seed, vectorised numpy + pyarrow; cached in ``benchmarks/_data/``):
   ``--n`` utterances of 5-20 words from a 4,000-word vocabulary, ``--speakers``
   speakers (default n / 10) with log-normal utterance counts; each speaker has lat/lon
   near one of 20 US cities, a zip code (3,000 zips, each in one city; a census table with
   race shares and median income), a 32-dim embedding (12 clusters), gender, age band and
   accent.  Speakers' error rates are Beta (mean 8 %, concentration 20); four planted
   disparities of 1.5x, about 5-10 % of speakers each: one city (geographic), zips with a
   black majority (geodemographic), one embedding cluster (automatic), age 60+ AND a
   southern accent (metadata).  Errors are 60 % substitutions, 25 % deletions, 15 %
   insertions; the utterance table has a ``device`` column (near/far) for ``--adjust``.
2. **jiwer**: ``jiwer.process_words(references, hypotheses)`` on every row, in its own
   process (the text is lower-case words: no normalisation needed; only the call is timed).
3. **fairaudit**: ``fairaudit audit`` as a subprocess with the default options (bootstrap
   1000, 200 permutations, held-out gap, every default discoverer, plus ``--by gender``
   for the attribute cohorts), HTML report included.  Wall time of the process; peak
   memory = the largest sum of RSS over the process and its workers, sampled every 50 ms
   (and the largest sum of PSS, which counts pages shared by forked workers once: the
   statistics' workers and the HTML writer are forked from the audit process, so the
   summed RSS counts the shared input tables once per process; the memory target is
   checked on PSS, the physical memory the run actually holds).
4. **Check**: fairaudit's total errors and reference words equal jiwer's.
5. Prints the ratio jiwer time / audit time and the per-stage table from report.json's
   ``timings``; with ``--adjust COLS`` a second audit with ``--adjust COLS``, reported
   separately.

The machine may be shared: compare the ratio within one run, not wall times across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_scoring import _tree_pss_kb, _vocabulary, hypothesis_words  # noqa: E402  (benchmark helpers)

TARGET_RATIO = 2.5
AIM_RATIO = 5.0
TARGET_PEAK_MB = 3072

CITIES = [("New York", 40.71, -74.01), ("Los Angeles", 34.05, -118.24), ("Chicago", 41.88, -87.63),
          ("Houston", 29.76, -95.37), ("Phoenix", 33.45, -112.07), ("Philadelphia", 39.95, -75.17),
          ("San Antonio", 29.42, -98.49), ("San Diego", 32.72, -117.16), ("Dallas", 32.78, -96.80),
          ("San Jose", 37.34, -121.89), ("Austin", 30.27, -97.74), ("Denver", 39.74, -104.99),
          ("Seattle", 47.61, -122.33), ("Boston", 42.36, -71.06), ("Atlanta", 33.75, -84.39),
          ("Miami", 25.76, -80.19), ("Minneapolis", 44.98, -93.27), ("Nashville", 36.16, -86.78),
          ("Portland", 45.52, -122.68), ("St. Louis", 38.63, -90.20)]
PLANTED_CITY = 14   # Atlanta
ACCENTS = ["general", "southern", "new_england", "midwest", "west", "african_american", "hispanic", "indian",
           "chinese", "british"]
AGE_BANDS = ["18-29", "30-44", "45-59", "60+"]


# ---------------------------------------------------------------- data

def generate(n_utt: int, n_spk: int, out: Path, seed: int = 0) -> dict[str, str]:
    """Write the five inputs into ``out``; returns flag -> path (see the module docstring)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"s{i:06d}" for i in range(n_spk)], dtype=object)

    # Speakers: place, zip, embedding cluster, attributes.
    city = rng.integers(0, len(CITIES), n_spk)
    lat = np.array([c[1] for c in CITIES])[city] + rng.normal(0, 0.25, n_spk)
    lon = np.array([c[2] for c in CITIES])[city] + rng.normal(0, 0.25, n_spk)
    n_zip = 3000
    zip_codes = np.array([f"{z:05d}" for z in rng.choice(np.arange(1001, 99950), n_zip, replace=False)])
    zip_city = rng.integers(0, len(CITIES), n_zip)
    by_city = [np.flatnonzero(zip_city == c) for c in range(len(CITIES))]
    spk_zip = np.array([by_city[c][rng.integers(0, len(by_city[c]))] for c in city])
    share = rng.dirichlet([4, 1, 1, 1], n_zip)
    black_zip = share[:, 1] > 0.5
    cluster = rng.integers(0, 12, n_spk)
    gender = rng.choice(["female", "male"], n_spk)
    age = rng.choice(AGE_BANDS, n_spk, p=[0.3, 0.3, 0.25, 0.15])
    accent = rng.choice(ACCENTS, n_spk, p=[0.35, 0.2, 0.08, 0.1, 0.1, 0.05, 0.05, 0.03, 0.02, 0.02])

    # Error rates: Beta around 8 %, x1.5 in each planted group.
    mult = np.ones(n_spk)
    mult[city == PLANTED_CITY] *= 1.5
    mult[black_zip[spk_zip]] *= 1.5
    mult[cluster == 0] *= 1.5
    mult[(age == "60+") & (accent == "southern")] *= 1.5
    mean = np.clip(0.08 * mult, 0.005, 0.6)
    conc = 20.0
    p = rng.beta(mean * conc, (1 - mean) * conc)

    # Utterances: log-normal counts per speaker, 5-20 words.
    weight = rng.lognormal(0, 0.6, n_spk)
    spk = rng.choice(n_spk, n_utt, p=weight / weight.sum())
    spk[:n_spk] = np.arange(n_spk)[: min(n_spk, n_utt)]    # every speaker has an utterance
    lengths = rng.integers(5, 21, n_utt)
    total = int(lengths.sum())
    vocab = pa.array(_vocabulary(rng, 4000), type=pa.string())
    ref_ids = rng.integers(0, len(vocab), total)
    hyp_ids, hyp_len = hypothesis_words(rng, ref_ids, lengths, np.repeat(p[spk], lengths), len(vocab),
                                        lambda k: rng.integers(0, len(vocab), k))

    def text(word_ids: np.ndarray, lens: np.ndarray) -> pa.Array:
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        words = pa.LargeListArray.from_arrays(pa.array(offsets), vocab.take(pa.array(word_ids)))
        return pc.binary_join(words, " ").cast(pa.string())

    paths = {"utterances": out / "utterances.parquet", "speakers": out / "speakers.csv",
             "census": out / "census.csv", "embeddings": out / "embeddings.npy",
             "embedding-ids": out / "embedding_ids.txt"}
    utt_id = pc.binary_join_element_wise("u", pc.cast(pa.array(np.arange(n_utt)), pa.string()), "")
    device = pa.array(np.where(rng.random(n_utt) < 0.3, "far", "near"))
    pq.write_table(pa.table({"utt_id": utt_id, "speaker_id": pa.array(ids[spk], pa.string()),
                             "reference": text(ref_ids, lengths), "hypothesis": text(hyp_ids, hyp_len),
                             "device": device}), paths["utterances"], row_group_size=200_000)
    pd.DataFrame({"speaker_id": ids, "lat": lat.round(4), "lon": lon.round(4), "zip": zip_codes[spk_zip],
                  "gender": gender, "age_band": age, "accent": accent}).to_csv(paths["speakers"], index=False)
    pd.DataFrame({"zip": zip_codes, "pct_white": share[:, 0].round(3), "pct_black": share[:, 1].round(3),
                  "pct_hispanic": share[:, 2].round(3), "pct_asian": share[:, 3].round(3),
                  "median_income": rng.integers(25_000, 180_000, n_zip)}).to_csv(paths["census"], index=False)
    centres = rng.normal(0, 1, (12, 32))
    emb = centres[cluster] + rng.normal(0, 0.7, (n_spk, 32))
    np.save(paths["embeddings"], emb.astype(np.float32))
    paths["embedding-ids"].write_text("\n".join(ids) + "\n")
    return {k: str(v) for k, v in paths.items()}


def ensure_data(n_utt: int, n_spk: int, seed: int, data_dir: Path, regen: bool) -> tuple[dict[str, str], float | None]:
    folder = data_dir / f"full_{n_utt}_{n_spk}_{seed}"
    done = folder / "DONE"
    if done.exists() and not regen:
        return json.loads(done.read_text()), None
    t0 = time.perf_counter()
    paths = generate(n_utt, n_spk, folder, seed)
    done.write_text(json.dumps(paths))
    return paths, time.perf_counter() - t0


# ---------------------------------------------------------------- measuring a process

def _tree_rss_kb(root: int) -> int:
    """Current RSS (kB) of ``root`` and its descendants (psutil)."""
    import psutil

    try:
        proc = psutil.Process(root)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total // 1024


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd``; wall time (s), peak tree RSS and PSS (MB) sampled every 50 ms, output."""
    peak = {"rss": 0, "pss": 0}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _tree_rss_kb(proc.pid))
            peak["pss"] = max(peak["pss"], _tree_pss_kb(proc.pid))
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{stderr[-4000:]}")
    return {"seconds": wall, "peak_rss_mb": peak["rss"] / 1024, "peak_pss_mb": peak["pss"] / 1024,
            "stdout": stdout}


def jiwer_child(path: str) -> None:
    """In a subprocess: jiwer.process_words on every row; prints JSON (seconds, counts)."""
    import jiwer
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["reference", "hypothesis"])
    refs, hyps = table["reference"].to_pylist(), table["hypothesis"].to_pylist()
    del table
    t0 = time.perf_counter()
    out = jiwer.process_words(refs, hyps)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows": len(refs), "substitutions": out.substitutions,
                      "deletions": out.deletions, "insertions": out.insertions,
                      "ref_words": out.hits + out.substitutions + out.deletions}))


def audit_command(paths: dict[str, str], out: str, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "fairaudit", "audit", paths["utterances"], "--out", out, "--quiet", "--by", "gender"]
    for flag in ("speakers", "census", "embeddings", "embedding-ids"):
        cmd += [f"--{flag}", paths[flag]]
    return cmd + extra


def cli_has(flag: str) -> bool:
    help_text = subprocess.run([sys.executable, "-m", "fairaudit", "audit", "--help"], capture_output=True,
                               text=True).stdout
    return flag in help_text


def run_audit(paths: dict[str, str], extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        res = run_measured(audit_command(paths, tmp, extra))
        report = json.loads((Path(tmp) / "report.json").read_text())
    res["report"] = report
    return res


# ---------------------------------------------------------------- report

def print_audit(title: str, res: dict, jiwer_s: float) -> None:
    from fairaudit.profile import format_rows, stage_rows

    timings = res["report"].get("timings") or {}
    ratio = jiwer_s / res["seconds"]
    print(f"\n== {title}")
    print(f"audit process: {res['seconds']:.1f} s wall (report timings total {timings.get('total', float('nan')):.1f} s; "
          f"the rest is Python start-up and imports)")
    print(f"ratio jiwer / audit: {ratio:.2f}x  (target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'};"
          f" aim {AIM_RATIO}x)")
    peak = res["peak_pss_mb"]
    print(f"peak memory: PSS {peak:,.0f} MB (target <= {TARGET_PEAK_MB:,} MB: "
          f"{'met' if peak <= TARGET_PEAK_MB else 'NOT met'}); summed RSS of the process and its forked workers "
          f"{res['peak_rss_mb']:,.0f} MB (shared pages counted in each)")
    print(format_rows(stage_rows(timings)))
    rows = []
    for key, d in res["report"]["discoverers"].items():
        if d.get("skipped"):
            rows.append(f"  {key}: skipped ({d['skipped']})")
            continue
        perm = d.get("permutation") or {}
        used = perm.get("permutations_used", perm.get("n"))
        held = (d.get("heldout") or {}).get("gap_pct")
        rows.append(f"  {key}: gap {_f(d.get('wer_gap_pct'))} %, p {_f(d.get('p_value'), 3)} "
                    f"({used} of {perm.get('n')} permutations), held-out gap {_f(held)} %")
    print("results:\n" + "\n".join(rows))


def _f(x, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="utterances (default 1,000,000)")
    ap.add_argument("--speakers", type=int, default=None, help="speakers (default n / 10)")
    ap.add_argument("--seed", type=int, default=0, help="data seed")
    ap.add_argument("--adjust", default=None, help="also run the audit with --adjust COLS (e.g. device)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "_data")
    ap.add_argument("--regen", action="store_true", help="rebuild the cached data")
    ap.add_argument("--extra", default="", help="more audit flags, space-separated (e.g. '--permutations 0')")
    ap.add_argument("--jiwer-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.jiwer_child:
        jiwer_child(args.jiwer_child)
        return 0
    n_spk = args.speakers or max(10, args.n // 10)
    paths, gen_s = ensure_data(args.n, n_spk, args.seed, args.data_dir, args.regen)
    print(f"data: {args.n:,} utterances, {n_spk:,} speakers" +
          (f" (generated in {gen_s:.1f} s)" if gen_s is not None else " (cached)"))
    print(f"cores: {len(os.sched_getaffinity(0))}")

    jw = run_measured([sys.executable, __file__, "--jiwer-child", paths["utterances"]])
    j = json.loads(jw["stdout"].strip().splitlines()[-1])
    print(f"jiwer.process_words: {j['seconds']:.1f} s on {j['rows']:,} rows "
          f"({j['rows'] / j['seconds']:,.0f} utt/s)")

    extra = args.extra.split() if args.extra else []
    default = run_audit(paths, extra)
    overall = default["report"]["overall"]
    errors = j["substitutions"] + j["deletions"] + j["insertions"]
    same = overall["errors"] == errors and overall["ref_words"] == j["ref_words"]
    print(f"check: fairaudit {overall['errors']:,} errors / {overall['ref_words']:,} words, jiwer {errors:,} / "
          f"{j['ref_words']:,}: {'OK' if same else 'MISMATCH'}")
    print_audit("default audit (" + " ".join(["fairaudit audit", *extra]) + ")", default, j["seconds"])
    if args.adjust:
        if cli_has("--adjust"):
            adj = run_audit(paths, extra + ["--adjust", args.adjust])
            print_audit(f"audit with --adjust {args.adjust}", adj, j["seconds"])
        else:
            print(f"\n== --adjust {args.adjust}: this fairaudit has no --adjust flag (not on this branch)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
