"""--align sclite vs the real sclite and vs --align jiwer, on the Artie corpus (all nine systems).

    python benchmarks/bench_sclite.py [--realdata ../shared/realdata] [--systems a,b]

For each recogniser of ``artie/predictions``: fairaudit's default normalisation on both
sides, then

* fairaudit ``--align sclite`` against NIST sclite (Debian ``sctk``; skipped with a note
  when it is not installed) run on trn files of the same normalised words: utterances
  whose S/D/I differ (must be 0), and the time of each;
* ``--align jiwer`` against ``--align sclite``: speakers whose S/D/I split differs, and
  speakers whose total errors differ, with the corpus totals of each.

The issue's figures (pocketsphinx output, 1,800 utterances, 120 speakers) are not
available here; these are the Artie ones.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def artie(root: Path, system: str) -> pd.DataFrame:
    """References joined to one system's predictions by file stem; ids in sclite's rm form."""
    read = lambda p: pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    ref = read(root / "artie-bias-corpus.tsv")
    hyp = read(root / "predictions" / f"{system}.tsv")
    ref["stem"] = ref["path"].map(lambda p: os.path.splitext(p)[0])
    hyp["stem"] = hyp["path"].map(lambda p: os.path.splitext(p)[0])
    m = ref.merge(hyp[["stem", "prediction"]], on="stem", how="left")
    m["prediction"] = m["prediction"].fillna("")
    speakers = {c: f"s{i:04d}" for i, c in enumerate(sorted(m["client_id"].unique()))}
    m["spk"] = m["client_id"].map(speakers)
    m["id"] = [f"{s}-{stem}" for s, stem in zip(m["spk"], m["stem"])]
    return m


def per_speaker(spk: pd.Series, c) -> pd.DataFrame:
    return pd.DataFrame({"spk": spk.to_numpy(), "S": c.substitutions, "D": c.deletions,
                         "I": c.insertions}).groupby("spk").sum()


def main(argv=None) -> int:
    from fairaudit.normalize import normalize
    from fairaudit.scoring import count_errors
    from fairaudit.sctk import find_sclite, run_sclite

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--realdata", default=str(HERE.parent.parent / "shared" / "realdata"))
    ap.add_argument("--systems", default=None, help="comma-separated (default: every predictions/*.tsv)")
    a = ap.parse_args(argv)
    root = Path(a.realdata) / "artie"
    systems = a.systems.split(",") if a.systems else sorted(p.stem for p in (root / "predictions").glob("*.tsv"))
    exe = find_sclite()
    print(f"sclite: {exe or 'not installed (apt-get install sctk): the sclite columns are skipped'}")
    head = (f"{'system':<20} {'utts':>5} {'spk':>4}  {'vs sclite':>9} {'sclite s':>8} {'ours s':>7}  "
            f"{'split≠':>6} {'total≠':>6}  {'S/D/I --align jiwer':>20}  {'S/D/I --align sclite':>20}")
    print(head)
    status = 0
    for system in systems:
        m = artie(root, system)
        refs, hyps = m["sentence"].tolist(), m["prediction"].tolist()
        t0 = time.perf_counter()
        sc = count_errors(refs, hyps, alignment="sclite", workers=1)
        ours_s = time.perf_counter() - t0
        ji = count_errors(refs, hyps, alignment="jiwer", workers=1)
        cell_cmp, cell_t = "-", "-"
        if exe:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                utt, _ = run_sclite(m["id"], normalize(refs).to_pylist(), normalize(hyps).to_pylist(), tmp, exe)
                cell_t = f"{time.perf_counter() - t0:.2f}"
            ours = list(zip(sc.substitutions.tolist(), sc.deletions.tolist(), sc.insertions.tolist()))
            differ = sum(utt.get(i) != tuple(o) for i, o in zip(m["id"], ours))
            cell_cmp = "all equal" if differ == 0 else f"{differ} DIFFER"
            status |= differ != 0
        ps, pj = per_speaker(m["spk"], sc), per_speaker(m["spk"], ji)
        split = int((ps != pj).any(axis=1).sum())
        total = int((ps.sum(axis=1) != pj.sum(axis=1)).sum())
        fmt = lambda c: "/".join(f"{int(x.sum()):,}" for x in (c.substitutions, c.deletions, c.insertions))
        print(f"{system:<20} {len(m):>5} {len(ps):>4}  {cell_cmp:>9} {cell_t:>8} {ours_s:>7.2f}  "
              f"{split:>6} {total:>6}  {fmt(ji):>20}  {fmt(sc):>20}")
    print("split≠: speakers whose S/D/I differ between --align jiwer and --align sclite; total≠: whose S+D+I differ")
    return status


if __name__ == "__main__":
    sys.exit(main())
