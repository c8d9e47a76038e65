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

Normaliser fingerprint (``inputs.normalization.fingerprint``): what turned transcripts
into tokens, recorded so that two reports are only compared when their numbers mean the
same thing.

A benchmark silently breaks when a normaliser changes under it (a library version bump
that spells numbers differently, a new Unicode rule): the WERs of two runs then differ
for reasons that have nothing to do with the recogniser.  The fingerprint records the
normalisation mode, whether Unicode NFC is applied, the unit and the alignment, the
versions of the libraries the tokens depend on, and the normalised form (and tokens) of
a fixed set of canary sentences chosen to exercise the fragile rules.  ``gate
--baseline`` and ``compare --cohorts`` refuse reports whose fingerprints differ
(:func:`check_comparable`), naming what differs, unless told to allow it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable

from .errors import UserInputError
from .normalize import normalize
from .units import rate_name, report_unit, tokenize

#: options that choose which discoverers run, not what the data are: a section for some
#: of a report's discoverers may join it
_SELECTION = {"discoverers", "by"}
#: InputSpec fields that are files (hashed) rather than options
_FILE_FIELDS = ("path", "hyp_path", "utt2spk", "more_hyp_paths", "hyp_tables")


def sha256_file(path: str) -> str:
    """SHA-256 (hex) of a file's bytes."""
    from .io import prefetch

    known = prefetch.digest(path)   # hashed beside the imports when the CLI read it early
    if known is not None:
        return known
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_files(spec=None, **side: Any) -> list[dict]:
    """``[{"role", "path", "sha256"}]`` of the run's input files that exist: the utterance
    input of ``spec`` (an InputSpec), its hypothesis files (role ``hypotheses``; a
    hypothesis table ``hypotheses:NAME``) and utt2spk file, then each
    ``side`` path by role (speakers=..., census=..., embeddings=..., embedding_ids=...)."""
    roles: list[tuple[str, Any]] = []
    if spec is not None:
        roles += [("utterances", spec.path), *(("hypotheses", h) for h in [spec.hyp_path, *spec.more_hyp_paths]),
                  *((f"hypotheses:{n}", h) for n, h in spec.hyp_tables.items()), ("utt2spk", spec.utt2spk)]
    roles += list(side.items())
    out = []
    for role, p in roles:
        if isinstance(p, (str, os.PathLike)) and os.path.isfile(p):
            out.append({"role": role, "path": str(p), "sha256": sha256_file(str(p))})
    return out


def _canonical_by(by: Iterable) -> list[str]:
    return [b if isinstance(b, str) else ",".join(b) for b in by]


def run_options(spec=None, *, normalization: str, min_speakers: int, discoverers: Iterable[str],
                by: Iterable = (), params: dict | None = None, encoding: str | None = None, unit: str = "word",
                alignment: str = "jiwer") -> dict:
    """The fingerprinted options (see the module docstring), JSON-able.  ``unit`` and
    ``alignment`` decide what the counts are, so they are inputs too."""
    columns = {}
    if spec is not None:
        columns = {f.name: (list(v) if isinstance(v, tuple) else v)
                   for f in dataclasses.fields(spec) if f.name not in _FILE_FIELDS
                   for v in [getattr(spec, f.name)]}
        if spec.hyp_tables:  # the files are hashed; which system each one is, is an option
            columns["hyp_tables"] = list(spec.hyp_tables)
    from .io.text_files import current_encoding

    return {"input": columns, "encoding": encoding or current_encoding(), "normalization": normalization,
            "unit": unit, "alignment": alignment, "min_speakers": int(min_speakers), "discoverers": list(discoverers), "by": _canonical_by(by),
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


# ---------------------------------------------------------------- normaliser fingerprint
#: Tricky cases: apostrophes (straight, curly, at word edges), numbers, hyphens,
#: decomposed vs precomposed accents, case rules beyond ASCII, odd white space, CJK,
#: kana, Thai and code-switching.  Never edit an entry: add new ones at the end (a
#: changed list makes every older report incomparable).
CANARIES = (
    "Don't STOP — it's 5 o'clock, isn't it?",
    "\u2018Curly\u2019 quotes, rock \u2019n\u2019 roll and `backticks`",
    "caf\u00e9 vs cafe\u0301 na\u00efve r\u00e9sum\u00e9",
    "twenty-five 25 1,000.50 3rd 100% $20 1/2",
    "Mr. Smith's colour, the U.S.A. and e-mail",
    "\u0130stanbul STRASSE stra\u00dfe \u03a3\u039f\u03a6\u0399\u0391",
    "tab\tand  double  spaces\u00a0no-break\u3000ideographic",
    "\u6211\u559c\u6b22 machine learning \u548c Python\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u30ab\u30bf\u30ab\u30ca\uff01",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \u2460 \ufb01ne",
)
#: libraries whose behaviour the tokens depend on (whisper-normalizer only in its mode)
LIBRARIES = ("jiwer", "rapidfuzz", "pyarrow", "whisper-normalizer")


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def applies_nfc() -> bool:
    """Whether normalisation composes Unicode (NFC) before anything else: tested on the
    behaviour of the ``none`` mode, so it holds whatever module applies it."""
    return normalize(["e\u0301"], "none").to_pylist()[0] == "\u00e9"


def normalizer_fingerprint(normalization: str, unit: str = "word", alignment: str = "jiwer") -> dict:
    """The fingerprint recorded in report.json (``inputs.normalization.fingerprint``)."""
    normalised = normalize(list(CANARIES), normalization).to_pylist()
    tokens = tokenize(list(CANARIES), normalization, unit)
    fp = {
        "mode": normalization, "nfc": applies_nfc(), "unit": unit, "alignment": alignment,
        "versions": {name: _version(name) for name in LIBRARIES},
        "canaries": [{"text": t, "normalized": n, "tokens": len(k)} for t, n, k in zip(CANARIES, normalised, tokens)],
    }
    fp["digest"] = hashlib.sha256(json.dumps(fp, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return fp


def _relevant_versions(fp: dict) -> dict:
    versions = dict(fp.get("versions") or {})
    if fp.get("mode") != "whisper":
        versions.pop("whisper-normalizer", None)
    return versions


def fingerprint_differences(new: dict | None, old: dict | None) -> list[str]:
    """What differs between two fingerprints, as short phrases ("new vs old"); empty if
    nothing that changes tokens differs.  The unit is compared by :func:`check_comparable`."""
    if not new or not old:
        which = "the report" if not new else "the baseline"
        return [f"{which} has no normaliser fingerprint (written by a fairaudit that did not record one)"]
    out = []
    for key, label in (("mode", "normalisation"), ("nfc", "NFC"), ("alignment", "alignment")):
        if new.get(key) != old.get(key):
            out.append(f"{label} {new.get(key)} vs {old.get(key)}")
    vn, vo = _relevant_versions(new), _relevant_versions(old)
    for name in sorted(set(vn) | set(vo)):
        if vn.get(name) != vo.get(name):
            out.append(f"{name} {vn.get(name) or 'absent'} vs {vo.get(name) or 'absent'}")
    cn = {c["text"]: c for c in new.get("canaries") or []}
    co = {c["text"]: c for c in old.get("canaries") or []}
    changed = [t for t in cn if t in co and (cn[t]["normalized"], cn[t].get("tokens")) !=
               (co[t]["normalized"], co[t].get("tokens"))]
    if changed:
        t = changed[0]
        out.append(f"{len(changed)} canary sentence(s) normalise differently, e.g. {t!r}: "
                   f"{cn[t]['normalized']!r} vs {co[t]['normalized']!r}")
    return out


def report_fingerprint(report: dict) -> dict | None:
    """The fingerprint of a report.json (None for reports written before fingerprints)."""
    return ((report.get("inputs") or {}).get("normalization") or {}).get("fingerprint")


def check_comparable(report: dict, baseline: dict, *, allow_normalizer_change: bool = False,
                     path: str | None = None, against: str = "the baseline") -> list[str]:
    """Refuse (one-line :class:`UserInputError`) to compare two reports whose unit or
    normaliser fingerprint differ.

    A different unit is always refused: a CER gap and a WER gap are different quantities,
    and no flag makes them comparable.  Other differences are refused unless
    ``allow_normalizer_change``; then they are returned (for a warning line).  Phrases
    read "this one vs ``against``"; ``path`` names the file the message is about.
    """
    unit_new, unit_old = report_unit(report), report_unit(baseline)
    if unit_new != unit_old:
        raise UserInputError(f"the reports are in different units: {rate_name(unit_new)} ({unit_new}) vs "
                             f"{rate_name(unit_old)} ({unit_old} in {against})", path=path,
                             hint="score both with the same --unit")
    diffs = fingerprint_differences(report_fingerprint(report), report_fingerprint(baseline))
    if diffs and not allow_normalizer_change:
        raise UserInputError(f"normaliser fingerprints differ (this one vs {against}): " + "; ".join(diffs), path=path,
                             hint="score both the same way, or pass --allow-normalizer-change to compare anyway")
    return diffs
