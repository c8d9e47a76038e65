"""Run NIST sclite (SCTK) on token strings and read its counts back: the cross-check of
``--align sclite`` (tests, benchmarks, and users who want to confirm on their own data).

sclite is not a dependency: :func:`find_sclite` looks for it on PATH and where Debian's
``sctk`` package installs it (``/usr/lib/sctk/bin``; ``/usr/bin/sctk`` is a wrapper).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_DEBIAN = "/usr/lib/sctk/bin/sclite"
_PRALIGN = re.compile(r"^id: \((.*?)\)\nScores: \(#C #S #D #I\) ([\d ]+)$", re.M)


def find_sclite() -> str | None:
    """Path of the sclite executable, or None when it is not installed."""
    found = shutil.which("sclite")
    if found:
        return found
    return _DEBIAN if os.access(_DEBIAN, os.X_OK) else None


def run_sclite(ids, refs, hyps, workdir: str | os.PathLike, exe: str | None = None, timeout: float = 600
               ) -> tuple[dict[str, tuple[int, int, int]], dict[str, tuple[int, int, int]]]:
    """Score hypotheses against references with sclite in trn mode; returns
    (per-utterance {id: (S, D, I)}, per-speaker {speaker: (S, D, I)}), all counts.

    ``ids`` are trn utterance ids in sclite's ``rm`` form, ``<speaker>-<rest>``, in lower
    case (sclite lower-cases hypothesis ids); ``refs``/``hyps`` are the token strings,
    tokens separated by spaces.  Per-utterance counts come from sclite's ``pralign``
    report, per-speaker totals from its ``rsum`` report (sclite's own sums).
    """
    exe = exe or find_sclite()
    if exe is None:
        raise FileNotFoundError("sclite is not installed (Debian: apt-get install sctk)")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    ref_trn, hyp_trn = work / "ref.trn", work / "hyp.trn"
    ref_trn.write_text("".join(f"{r} ({i})\n" for r, i in zip(refs, ids)), encoding="utf-8")
    hyp_trn.write_text("".join(f"{h} ({i})\n" for h, i in zip(hyps, ids)), encoding="utf-8")
    proc = subprocess.run([exe, "-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "rm", "-e", "utf-8",
                           "-o", "pralign", "rsum", "-O", str(work), "-f", "0"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"sclite failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    pra = (work / "hyp.trn.pra").read_text(encoding="utf-8")
    utts = {m.group(1): tuple(int(x) for x in m.group(2).split()[1:]) for m in _PRALIGN.finditer(pra)}
    speakers = {}
    for line in (work / "hyp.trn.raw").read_text(encoding="utf-8").splitlines():
        if "=====" in line:
            break  # the Sum/Mean/S.D./Median rows follow
        # | SPKR | # Snt # Wrd | Corr Sub Del Ins Err S.Err |
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] and cells[0] != "SPKR":
            numbers = cells[2].split()
            if len(numbers) >= 4 and all(x.isdigit() for x in numbers[:4]):
                speakers[cells[0]] = tuple(int(x) for x in numbers[1:4])
    return utts, speakers
