"""Scale: time and peak memory of a full audit per engine at growing input sizes.

    python benchmarks/bench_scale.py [--sizes 100000,1000000,10000000] [--engines default,streaming]

For each size N (synthetic, fixed seed; written once to ``<data-dir>/scale_<N>/``):

* ``utterances.parquet``: N utterances made by ``bench_scoring.generate`` in pieces of at
  most 1M rows (row groups of 1M), ids renumbered so they stay unique; N/100 speakers;
* ``speakers.parquet``: speaker_id, lat, lon (WER-unrelated) and gender;
* ``embeddings.npy`` + ``embedding_ids.txt``: one 32-dim vector per speaker.

Each (size, engine) runs in a fresh subprocess: ``score_input`` (read + score), then the
geographic, automatic (k=10) and attribute (gender) discoverers with the statistics
``audit`` runs (``--permutations 20 --bootstrap 200``, honest held-out gap, worst
utterances read back for the bottom cohorts).  It prints seconds, throughput (utt/s) and
peak RSS (ru_maxrss of the process + of its largest child, cumulative) after each stage.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PIECE = 1_000_000


def ensure_data(n: int, data_dir: Path, seed: int = 0) -> Path:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from bench_scoring import generate

    out = data_dir / f"scale_{n}"
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    n_spk = max(20, n // 100)
    rng = np.random.default_rng(seed)
    writer = None
    for k, start in enumerate(range(0, n, PIECE)):
        m = min(PIECE, n - start)
        t = generate(m, seed + k)
        spk = rng.integers(0, n_spk, m)
        t = t.set_column(0, "utt_id", pc.binary_join_element_wise(
            "utt", pc.cast(pa.array(np.arange(start, start + m)), pa.string()), ""))
        t = t.set_column(1, "speaker_id", pc.binary_join_element_wise(
            "spk", pc.cast(pa.array(spk), pa.string()), ""))
        if writer is None:
            writer = pq.ParquetWriter(out / "utterances.parquet", t.schema)
        writer.write_table(t, row_group_size=PIECE)
    writer.close()
    ids = [f"spk{i}" for i in range(n_spk)]
    pq.write_table(pa.table({"speaker_id": ids, "lat": rng.uniform(25, 49, n_spk), "lon": rng.uniform(-124, -67, n_spk),
                             "gender": rng.choice(["f", "m"], n_spk)}), out / "speakers.parquet")
    np.save(out / "embeddings.npy", rng.normal(size=(n_spk, 32)).astype(np.float32))
    (out / "embedding_ids.txt").write_text("\n".join(ids) + "\n")
    (out / "done").write_text("ok\n")
    return out


def _peak_mb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (self_kb + child_kb) / 1024


def child(data: Path, engine: str, workers: int, n_perm: int, n_boot: int) -> dict:
    """One run: read+score, then discover + statistics as ``audit`` does."""
    from fairaudit.audit import build_discoverers, discover_all, score_input
    from fairaudit.discover import SideInputs
    from fairaudit.io.embeddings import read_embeddings
    from fairaudit.io.readers import InputSpec

    out: dict = {"engine": engine}
    t0 = time.perf_counter()
    scored = score_input(InputSpec(path=str(data / "utterances.parquet")), "default", str(data / "speakers.parquet"),
                         ["gender"], workers=workers, engine=engine)
    out["score_s"] = time.perf_counter() - t0
    out["score_mb"] = _peak_mb()
    out["n"] = scored.accounting.rows_read
    side = SideInputs()
    u2s = None
    side.embeddings, side.embedding_ids, _ = read_embeddings(str(data / "embeddings.npy"),
                                                             str(data / "embedding_ids.txt"), u2s)
    discs = build_discoverers(["geographic", "automatic"], ["gender"], min_speakers=20, seed=0,
                              params={"automatic": {"k": 10}})
    timings: dict[str, float] = {}
    t1 = time.perf_counter()
    entries, _ = discover_all(discs, scored, side, seed=0, timings=timings, n_boot=n_boot, n_perm=n_perm,
                              honest=True, workers=workers)
    out["discover_s"] = sum(v for k, v in timings.items() if k.startswith("discover:"))
    out["stats_s"] = time.perf_counter() - t1 - out["discover_s"]
    out["total_mb"] = _peak_mb()
    out["skipped"] = [k for k, e in entries.items() if e.get("skipped")]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--engines", default="default,streaming")
    ap.add_argument("--data-dir", default=str(HERE / "_data"))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--permutations", type=int, default=20)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--child", nargs=2, metavar=("DATA", "ENGINE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.workers, args.permutations, args.bootstrap)))
        return
    rows = []
    print(f"{'N':>10} {'engine':>9} | {'read+score s':>12} {'utt/s':>9} {'peak MB':>8} | {'discover s':>10} "
          f"| {'stats s':>8} | {'total s':>8} {'peak MB':>8}", flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        t = time.perf_counter()
        data = ensure_data(n, Path(args.data_dir))
        gen_s = time.perf_counter() - t
        for engine in args.engines.split(","):
            cmd = [sys.executable, __file__, "--child", str(data), engine, "--workers", str(args.workers),
                   "--permutations", str(args.permutations), "--bootstrap", str(args.bootstrap)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(f"{n:>10} {engine:>9} | FAILED: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            total = r["score_s"] + r["discover_s"] + r["stats_s"]
            rows.append({"n": n, "gen_s": gen_s, **r})
            print(f"{n:>10} {engine:>9} | {r['score_s']:>12.1f} {n / r['score_s']:>9,.0f} {r['score_mb']:>8,.0f} | "
                  f"{r['discover_s']:>10.1f} | {r['stats_s']:>8.1f} | {total:>8.1f} {r['total_mb']:>8,.0f}"
                  + (f"  skipped: {r['skipped']}" if r["skipped"] else ""), flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
