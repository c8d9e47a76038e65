"""What a report was computed from: input file hashes and the options that shape the data.

``report.json`` records ``inputs.fingerprint`` = ``{"sha256", "files", "options"}``: the
SHA-256 of each input file (by role, not by path: a moved file is the same input), and
the options that decide which rows are scored and which cohorts can be found (column
mapping, input format, encoding, normalisation, discoverers and their parameters,
``--by``, ``--min-speakers``).  Seeds and resample counts are left out: they change the
statistics, not the data.

A command that adds a section to an existing report (``fairaudit power DIR``) computes
the fingerprint of its own inputs first and refuses, before any work, to merge into a
report made from other inputs (:func:`check_same`): other file contents, another column
mapping, encoding, normalisation or ``--min-speakers``, or other parameters for a
discoverer both ran.  Running fewer (or other) discoverers is not a difference of inputs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Iterable

from .errors import UserInputError

#: options that choose which discoverers run, not what the data are: a section for some
#: of a report's discoverers may join it
_SELECTION = {"discoverers", "by"}
#: InputSpec fields that are files (hashed) rather than options
_FILE_FIELDS = ("path", "hyp_path", "utt2spk", "more_hyp_paths")


def sha256_file(path: str) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_files(spec=None, **side: Any) -> list[dict]:
    """``[{"role", "path", "sha256"}]`` of the run's input files that exist: the utterance
    input of ``spec`` (an InputSpec), its hypothesis and utt2spk files, then each
    ``side`` path by role (speakers=..., census=..., embeddings=..., embedding_ids=...)."""
    roles: list[tuple[str, Any]] = []
    if spec is not None:
        roles += [("utterances", spec.path), *(("hypotheses", h) for h in [spec.hyp_path, *spec.more_hyp_paths]),
                  ("utt2spk", spec.utt2spk)]
    roles += list(side.items())
    out = []
    for role, p in roles:
        if isinstance(p, (str, os.PathLike)) and os.path.isfile(p):
            out.append({"role": role, "path": str(p), "sha256": sha256_file(str(p))})
    return out


def _canonical_by(by: Iterable) -> list[str]:
    return [b if isinstance(b, str) else ",".join(b) for b in by]


def run_options(spec=None, *, normalization: str, min_speakers: int, discoverers: Iterable[str],
                by: Iterable = (), params: dict | None = None, encoding: str | None = None) -> dict:
    """The fingerprinted options (see the module docstring), JSON-able."""
    columns = {}
    if spec is not None:
        columns = {f.name: (list(v) if isinstance(v, tuple) else v)
                   for f in dataclasses.fields(spec) if f.name not in _FILE_FIELDS
                   for v in [getattr(spec, f.name)]}
    from .io.text_files import current_encoding

    return {"input": columns, "encoding": encoding or current_encoding(), "normalization": normalization,
            "min_speakers": int(min_speakers), "discoverers": list(discoverers), "by": _canonical_by(by),
            "params": json.loads(json.dumps(params or {}, sort_keys=True, default=str))}


def fingerprint(files: list[dict], options: dict) -> dict:
    """``{"sha256", "files": [{"role", "sha256"}], "options"}`` of a run."""
    files = [{"role": f["role"], "sha256": f["sha256"]} for f in files]
    digest = hashlib.sha256(json.dumps({"files": files, "options": options}, sort_keys=True).encode()).hexdigest()
    return {"sha256": digest, "files": files, "options": options}


def _differences(have: dict, want: dict) -> list[str]:
    out = []
    roles = {f["role"] for f in have.get("files", [])} | {f["role"] for f in want.get("files", [])}
    for role in sorted(roles):
        a = sorted(f["sha256"] for f in have.get("files", []) if f["role"] == role)
        b = sorted(f["sha256"] for f in want.get("files", []) if f["role"] == role)
        if a != b:
            out.append(f"the {role} file" + (" is missing" if not b else " was not an input" if not a else " differs"))
    if "options" in have:
        a, b = have["options"], want["options"]
        for key in sorted((set(a) | set(b)) - _SELECTION):
            if key == "params":  # a discoverer's parameters matter where both ran it
                for name in sorted(set(a.get(key, {})) & set(b.get(key, {}))):
                    if a[key][name] != b[key][name]:
                        out.append(f"{name} parameters ({a[key][name]!r} there, {b[key][name]!r} here)")
            elif a.get(key) != b.get(key):
                out.append(f"option {key} ({a.get(key)!r} there, {b.get(key)!r} here)")
    return out


def check_same(report_path: str, fp: dict, command: str = "fairaudit power") -> None:
    """Refuse (UserInputError) when ``report_path`` was computed from other inputs than ``fp``.

    A report without a fingerprint (written before fingerprints existed) is compared by
    its input files' hashes only.
    """
    try:
        with open(report_path, encoding="utf-8") as fh:
            report = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read the report to add to: {exc}", path=report_path,
                             hint="remove it, or choose another --out") from exc
    inputs = report.get("inputs", {}) if isinstance(report, dict) else {}
    have = inputs.get("fingerprint") or {"files": [{"role": f["role"], "sha256": f["sha256"]}
                                                   for f in inputs.get("files", [])]}
    if have.get("sha256") == fp["sha256"]:
        return
    diff = _differences(have, fp)
    if diff:
        raise UserInputError(f"was made from other inputs than this {command} run: {'; '.join(diff[:3])}",
                             path=report_path,
                             hint="use another --out, or run this command with the audit's inputs and options")
