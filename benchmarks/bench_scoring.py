"""Scoring throughput and memory: fairaudit end to end from Parquet vs jiwer.process_words.

    python benchmarks/bench_scoring.py [--n 1000000] [--jiwer-n N] [--workers W] [--unit char] [--align sclite]

With ``--unit char`` the same run times ``jiwer.process_characters`` instead and reports
characters per second as well (CER); with ``--align sclite`` fairaudit aligns as NIST
sclite does, whose split is not jiwer's, so only the error totals are compared.

1. Generates N synthetic utterances (fixed seed, vectorised numpy + pyarrow) and writes
   them to ``<data-dir>/synth_<N>_<seed>.parquet`` (reused when present).
2. Times ``fairaudit.score_input`` (Parquet read + normalise + align + per-speaker table)
   in a fresh subprocess, so its peak memory is that stage's alone.
3. Times ``jiwer.process_words`` in another subprocess on the strings produced by
   ``fairaudit.normalize.normalize`` (so both do the same alignment work) and checks that
   the total hits/substitutions/deletions/insertions agree exactly.
4. Prints a table against the targets: >= 300,000 utt/s end to end, >= 8x jiwer,
   peak memory <= 2 GB at 1M utterances.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

TARGET_UTT_S = 300_000
TARGET_RATIO = 8.0
TARGET_RSS_MB = 2048  # for 1M utterances


# ---------------------------------------------------------------- synthetic data

def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """``size`` distinct lower-case pseudo-words (2-10 letters, some with an apostrophe)."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    # Letter frequencies roughly like English so words look plausible; exact values do not matter.
    p = np.array([8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, .2, .8, 4.0, 2.4, 6.7, 7.5, 1.9, .1, 6.0,
                  6.3, 9.1, 2.8, 1.0, 2.4, .2, 2.0, .1])
    p /= p.sum()
    words: set[str] = set()
    out: list[str] = []
    while len(out) < size:
        k = int(rng.integers(2, 11))
        w = "".join(rng.choice(letters, k, p=p))
        if rng.random() < 0.02:
            w = w[:-1] + "'" + w[-1]  # "don't"-like: the apostrophe survives normalisation
        if w not in words:
            words.add(w)
            out.append(w)
    return out


def hypothesis_words(rng: np.random.Generator, ref_ids: np.ndarray, lengths: np.ndarray, rate,
                     vocab_size: int, draw_words) -> tuple[np.ndarray, np.ndarray]:
    """(hypothesis word ids, words per utterance) from reference word ids with word errors.

    ``rate``: error rate per reference word (a number, or one per word); of it 60 % are
    substitutions, 25 % deletions, 15 % insertions after the word.  ``draw_words(k)``:
    k random word ids (the inserted words).
    """
    total = len(ref_ids)
    u = rng.random(total)
    sub = u < rate * 0.60
    dele = (u >= rate * 0.60) & (u < rate * 0.85)
    ins = rng.random(total) < rate * 0.15
    hyp_main = ref_ids.copy()
    # A substitution is a different word: shift by 1..V-1.
    hyp_main[sub] = (ref_ids[sub] + rng.integers(1, vocab_size, int(sub.sum()))) % vocab_size
    hyp_ins = draw_words(total)
    # Each reference word yields 0-2 hypothesis words: itself (unless deleted), then an insertion.
    slots = np.stack([hyp_main, hyp_ins], axis=1).reshape(-1)
    keep = np.stack([~dele, ins], axis=1).reshape(-1)
    n = len(lengths)
    utt_of_word = np.repeat(np.arange(n), lengths)
    hyp_len = np.bincount(utt_of_word, weights=(~dele).astype(np.int64) + ins, minlength=n).astype(np.int64)
    return slots[keep], hyp_len


def generate(n: int, seed: int = 0, vocab_size: int = 4000, wer: float = 0.10):
    """A pyarrow table of ``n`` utterances: utt_id, speaker_id, reference, hypothesis.

    References have 5-20 words drawn Zipf-like from ``vocab_size`` words; hypotheses get
    about ``wer`` word errors (60 % substitutions, 25 % deletions, 15 % insertions).  Each
    word is independently written plain, Capitalised, UPPER, "quoted" or followed by
    , . ? ! so both sides need normalising before they compare equal.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, vocab_size)
    # Surface forms: index = word * K + variant.
    variants = [lambda w: w, str.capitalize, str.upper, lambda w: w + ",", lambda w: w + ".",
                lambda w: w + "?", lambda w: w + "!", lambda w: '"' + w + '"']
    vprob = np.array([0.80, 0.08, 0.02, 0.04, 0.03, 0.01, 0.01, 0.01])
    K = len(variants)
    forms = pa.array([f(w) for w in vocab for f in variants], type=pa.string())
    # Zipf-ish word frequencies.
    wp = 1.0 / np.arange(1, vocab_size + 1) ** 0.9
    wp /= wp.sum()

    lengths = rng.integers(5, 21, n)
    total = int(lengths.sum())
    ref_ids = rng.choice(vocab_size, total, p=wp).astype(np.int32)

    hyp_ids, hyp_len = hypothesis_words(rng, ref_ids, lengths, wer, vocab_size,
                                        lambda k: rng.choice(vocab_size, k, p=wp).astype(np.int32))

    def text(ids: np.ndarray, lens: np.ndarray) -> pa.Array:
        form = ids.astype(np.int64) * K + rng.choice(K, len(ids), p=vprob)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        words = pa.LargeListArray.from_arrays(pa.array(offsets), forms.take(pa.array(form)))
        return pc.binary_join(words, " ").cast(pa.string())

    reference = text(ref_ids, lengths)
    hypothesis = text(hyp_ids, hyp_len)
    n_spk = max(1, n // 10)
    spk = rng.integers(0, n_spk, n)
    utt_id = pc.binary_join_element_wise("utt", pc.cast(pa.array(np.arange(n)), pa.string()), "")
    speaker_id = pc.binary_join_element_wise("spk", pc.cast(pa.array(spk), pa.string()), "")
    return pa.table({"utt_id": utt_id, "speaker_id": speaker_id, "reference": reference, "hypothesis": hypothesis})


def ensure_data(n: int, seed: int, data_dir: Path, regen: bool) -> tuple[Path, tuple[float, float] | None]:
    import pyarrow.parquet as pq

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"synth_{n}_{seed}.parquet"
    if path.exists() and not regen:
        return path, None
    t0 = time.perf_counter()
    table = generate(n, seed)
    t1 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path, (t1 - t0, time.perf_counter() - t1)


# ---------------------------------------------------------------- memory

def _pss_kb(pid: int) -> int:
    """Proportional set size (kB): shared pages split between the processes sharing them.

    Forked workers map the parent's pages copy-on-write, so summing RSS would count the
    parent's memory once per worker; summing PSS counts each physical page once.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_pss_kb(root: int) -> int:
    """Current PSS (kB) of ``root`` and all its descendants, from /proc (Linux only)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += _pss_kb(p)
        todo.extend(children.get(p, []))
    return total


class TreeSampler:
    """Samples the summed PSS of this process and its workers: the physical memory used."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_kb = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        if not os.path.exists(f"/proc/{os.getpid()}/smaps_rollup"):
            return
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _tree_pss_kb(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _rusage_mb() -> dict:
    # ru_maxrss is in kB on Linux.  RUSAGE_CHILDREN reports the largest single (reaped)
    # child, so SELF + CHILDREN is the peak of the parent plus that of one worker; the
    # sampled tree PSS (TreeSampler) covers all workers alive at once, shared pages once.
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"self_mb": self_kb / 1024, "children_mb": child_kb / 1024, "rss_mb": (self_kb + child_kb) / 1024}


def _machine_busy_seconds() -> float:
    """CPU-seconds all processes on the machine have used since boot (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (s)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


# ---------------------------------------------------------------- stages (run in subprocesses)

COUNT_FIELDS = ("hits", "substitutions", "deletions", "insertions")


def stage_fairaudit(path: str, jiwer_n: int, workers: int | None, unit: str = "word",
                    alignment: str = "jiwer") -> dict:
    t_import = time.perf_counter()
    from fairaudit import InputSpec, score_input
    t0 = time.perf_counter()
    c0, m0 = _cpu_seconds(), _machine_busy_seconds()
    with TreeSampler() as sampler:
        scored = score_input(InputSpec(path=path), normalization="default", workers=workers, unit=unit,
                             alignment=alignment)
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - c0
    # CPU other processes took meanwhile: a busy machine makes the wall time meaningless.
    others = max(0.0, _machine_busy_seconds() - m0 - cpu)
    utts = scored.utterances
    # Index = 1-based input row: the first jiwer_n rows are the jiwer subset.
    first = utts.index.to_numpy() <= jiwer_n
    totals = {f: int(utts[f].to_numpy().sum()) for f in COUNT_FIELDS}
    subset = {f: int(utts[f].to_numpy()[first].sum()) for f in COUNT_FIELDS}
    return {"seconds": wall, "cpu_seconds": cpu, "others_cpu_seconds": others, "import_seconds": t0 - t_import, "rows_read": scored.accounting.rows_read,
            "rows_scored": scored.accounting.rows_scored, "speakers": len(scored.speakers),
            "subset_rows": int(first.sum()), "subset": subset, "totals": totals,
            "ref_tokens": int(utts["ref_words"].to_numpy().sum()),
            "wer": scored.overall["wer"], "tree_pss_mb": sampler.peak_kb / 1024, **_rusage_mb()}


def stage_read(path: str) -> dict:
    """The Parquet read alone (fairaudit's reader), for the breakdown line."""
    from fairaudit import InputSpec
    from fairaudit.io.readers import read_utterances
    t0 = time.perf_counter()
    raw = read_utterances(InputSpec(path=path))
    return {"seconds": time.perf_counter() - t0, "rows": len(raw.frame)}


def stage_jiwer(path: str, jiwer_n: int, unit: str = "word") -> dict:
    import jiwer
    import pyarrow.parquet as pq

    from fairaudit.normalize import normalize, python_reference_split

    table = pq.read_table(path, columns=["reference", "hypothesis"]).slice(0, jiwer_n)
    # fairaudit's default normalisation (lower-case, punctuation stripped); jiwer then
    # applies its own default transform (collapse spaces, strip, split on " ").
    refs = normalize(table["reference"]).to_pylist()
    hyps = normalize(table["hypothesis"]).to_pylist()
    del table
    # jiwer refuses an empty reference; fairaudit drops those rows (none in synthetic data).
    pairs = [(r, h) for r, h in zip(refs, hyps) if python_reference_split(r)]
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    del pairs
    t0 = time.perf_counter()
    out = (jiwer.process_characters if unit == "char" else jiwer.process_words)(refs, hyps)
    wall = time.perf_counter() - t0
    ref_tokens = sum(len(r.strip()) for r in refs) if unit == "char" else None
    return {"seconds": wall, "rows": len(refs), "ref_tokens": ref_tokens,
            "subset": {"hits": out.hits, "substitutions": out.substitutions, "deletions": out.deletions,
                       "insertions": out.insertions}, **_rusage_mb()}


def _run_stage(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"stage {args[1]} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report

def _versions() -> str:
    from importlib.metadata import version

    names = ["fairaudit", "jiwer", "rapidfuzz", "pyarrow", "pandas", "numpy"]
    vs = []
    for name in names:
        try:
            vs.append(f"{name} {version(name)}")
        except Exception:  # noqa: BLE001 - report what we can
            vs.append(f"{name} ?")
    return f"python {platform.python_version()}, " + ", ".join(vs)


def _machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f", {int(fh.readline().split()[1]) / 1024 ** 2:.1f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.machine()}, {cores} usable cores (os.cpu_count {os.cpu_count()}), {model}{mem}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="utterances to generate (default 1,000,000)")
    ap.add_argument("--jiwer-n", type=int, default=None, help="time jiwer on the first N rows only (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="fairaudit worker processes (default: all cores)")
    ap.add_argument("--data-dir", default=str(HERE / "_data"), help="where the Parquet file goes (git-ignored)")
    ap.add_argument("--regen", action="store_true", help="regenerate the Parquet file even if present")
    ap.add_argument("--skip-jiwer", action="store_true", help="time fairaudit only")
    ap.add_argument("--repeat", type=int, default=3,
                    help="fairaudit runs, each in a fresh process (best is reported; default 3)")
    ap.add_argument("--unit", choices=["word", "char"], default="word",
                    help="tokens: word (WER, vs jiwer.process_words) or char (CER, vs jiwer.process_characters)")
    ap.add_argument("--align", choices=["jiwer", "sclite"], default="jiwer", help="fairaudit's alignment")
    ap.add_argument("--_stage", help=argparse.SUPPRESS)
    ap.add_argument("--_path", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a._stage == "fairaudit":
        print(json.dumps(stage_fairaudit(a._path, a.jiwer_n, a.workers, a.unit, a.align)))
        return 0
    if a._stage == "read":
        print(json.dumps(stage_read(a._path)))
        return 0
    if a._stage == "jiwer":
        print(json.dumps(stage_jiwer(a._path, a.jiwer_n, a.unit)))
        return 0

    jn = min(a.jiwer_n or a.n, a.n)
    print(f"machine : {_machine()}")
    print(f"versions: {_versions()}")
    path, gen_s = ensure_data(a.n, a.seed, Path(a.data_dir), a.regen)
    size_mb = path.stat().st_size / 1024 ** 2
    print(f"data    : {path} ({size_mb:.0f} MB)"
          + (f", generated in {gen_s[0]:.1f} s, written in {gen_s[1]:.1f} s" if gen_s is not None
             else ", reused (--regen to rebuild)"))

    common = ["--_path", str(path), "--jiwer-n", str(jn), "--unit", a.unit, "--align", a.align] + (
        ["--workers", str(a.workers)] if a.workers else [])
    print(f"scoring : unit {a.unit}, alignment {a.align}")
    runs = [_run_stage(["--_stage", "fairaudit", *common]) for _ in range(max(1, a.repeat))]
    fa = min(runs, key=lambda r: r["seconds"])
    if fa["others_cpu_seconds"] > 0.1 * fa["seconds"]:
        print(f"WARNING: other processes used {fa['others_cpu_seconds']:.1f} CPU-s during the best run "
              f"({fa['seconds']:.2f} s wall): the machine was not idle, timings are pessimistic")
    fa_rate = fa["rows_read"] / fa["seconds"]
    median = sorted(r["seconds"] for r in runs)[len(runs) // 2]
    rd = _run_stage(["--_stage", "read", "--_path", str(path)])
    print(f"fairaudit: score_input {fa['rows_read']:,} rows in {fa['seconds']:.2f} s best of {len(runs)}"
          + (" (runs: " + ", ".join(f"{r['seconds']:.2f}" for r in runs) + f" s; median {median:.2f} s)"
             if len(runs) > 1 else "")
          + f"; {fa['cpu_seconds']:.2f} CPU-s over all processes")
    print(f"           of which the Parquet read alone takes ~{rd['seconds']:.2f} s;"
          f" {fa['speakers']:,} speakers; {'CER' if a.unit == 'char' else 'WER'} {100 * fa['wer']:.2f} %")
    print(f"           peak RSS self {fa['self_mb']:.0f} MB + largest worker {fa['children_mb']:.0f} MB"
          f" = {fa['rss_mb']:.0f} MB; sampled peak PSS of the process tree {fa['tree_pss_mb']:.0f} MB (best run)")

    ji = None
    jfun = "process_characters" if a.unit == "char" else "process_words"
    if not a.skip_jiwer:
        ji = _run_stage(["--_stage", "jiwer", *common])
        print(f"jiwer    : {jfun} on {ji['rows']:,} rows (fairaudit-normalised strings, jiwer default "
              f"transform) in {ji['seconds']:.2f} s (the call alone: no reading or normalising)")

    mem_mb = max(max(r["rss_mb"], r["tree_pss_mb"]) for r in runs)  # worst run
    # The targets are the word-scoring ones; other units and sclite are shown without.
    targeted = a.unit == "word" and a.align == "jiwer"
    rows = [("fairaudit end to end (utt/s)", f"{fa_rate:,.0f}", f">= {TARGET_UTT_S:,}" if targeted else "",
             fa_rate >= TARGET_UTT_S if targeted else None)]
    if a.unit == "char":
        rows.append(("fairaudit end to end (ref chars/s)", f"{fa['ref_tokens'] / fa['seconds']:,.0f}", "", None))
    if ji is not None:
        ji_rate = ji["rows"] / ji["seconds"]
        ratio = fa_rate / ji_rate
        rows.append((f"jiwer.{jfun} (utt/s)", f"{ji_rate:,.0f}", "", None))
        if a.unit == "char":
            rows.append((f"jiwer.{jfun} (ref chars/s)", f"{ji['ref_tokens'] / ji['seconds']:,.0f}", "", None))
        rows.append(("speed-up vs jiwer", f"{ratio:.1f}x", f">= {TARGET_RATIO:g}x" if targeted else "",
                     ratio >= TARGET_RATIO if targeted else None))
    mem_target = TARGET_RSS_MB * a.n / 1_000_000 if a.n > 1_000_000 else TARGET_RSS_MB
    rows.append(("peak memory (MB)", f"{mem_mb:,.0f}", f"<= {mem_target:,.0f}", mem_mb <= mem_target))
    print()
    w0, w1, w2 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows), max(len(r[2]) for r in rows)
    print(f"{'metric':<{w0}}  {'value':>{w1}}  {'target':<{w2}}  met")
    for name, val, tgt, ok in rows:
        print(f"{name:<{w0}}  {val:>{w1}}  {tgt:<{w2}}  {'' if ok is None else ('yes' if ok else 'NO')}")
    print("(peak memory: the larger of rusage self + largest worker and the sampled process-tree PSS, worst run)")

    status = 0
    if ji is not None:
        sub_fa, sub_ji = fa["subset"], ji["subset"]
        # sclite's split is not jiwer's (nor, in rare utterances, its total): then the
        # totals are shown side by side, not required equal.
        same = fa["subset_rows"] == ji["rows"] and all(sub_fa[f] == sub_ji[f] for f in COUNT_FIELDS)
        if a.align == "sclite":
            err_fa = sum(sub_fa[f] for f in COUNT_FIELDS[1:])
            err_ji = sum(sub_ji[f] for f in COUNT_FIELDS[1:])
            detail = ", ".join(f"{f[0].upper()} {sub_fa[f]:,} vs {sub_ji[f]:,}" for f in COUNT_FIELDS)
            print(f"\ntotals on {ji['rows']:,} rows, fairaudit --align sclite vs jiwer: errors {err_fa:,} vs "
                  f"{err_ji:,} ({detail})")
            return 0
        detail = ", ".join(f"{f[0].upper()} {sub_fa[f]:,}" + ("" if sub_fa[f] == sub_ji[f] else f" vs jiwer {sub_ji[f]:,}")
                           for f in COUNT_FIELDS)
        print(f"\ntotals on {ji['rows']:,} rows, fairaudit vs jiwer: {'OK' if same else 'MISMATCH'} ({detail})")
        status = 0 if same else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
