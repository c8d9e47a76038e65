"""Which cohorts of an audit to hand to mitigation: the bottom ones, the ones worse than
the rest after multiplicity control, every cohort, or cohorts named by the user.

A cohort is named ``KEY:ID``: the discoverer's report key (``geographic``,
``attribute:gender``) and the cohort id (``R03``, ``A01``), as in assignments.csv, e.g.
``geographic:R03`` or ``attribute:gender:A01``.

"Worse than the rest" reads the every-cohort-vs-the-rest tests of an audit (issue 16):
:func:`worse_than_rest` is the one accessor, and documents the fields it reads.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from .errors import UserInputError

#: selection rules of ``--cohorts``
RULES = ("bottom", "worse", "all")
#: multiplicity controls a "worse than the rest" call can use: Holm-adjusted p-values
#: (family-wise error) or Benjamini-Hochberg q-values (false discovery rate)
MULTIPLICITY = {"holm": "p_holm", "bh": "q_bh"}
#: where a cohort entry may hold its test against the rest: in a block of its own, or
#: flat on the entry (read in this order; the first holding a p-value is used)
_TEST_BLOCKS = ("vs_rest", "raw", None)


@dataclass
class Selected:
    """One chosen cohort: discoverer ``key``, cohort ``id`` and ``label``, ``why`` it was
    chosen (text), its ``speakers``/``utterances`` (counts) and ``wer`` (ratio)."""

    key: str
    id: str
    label: str
    why: str
    speakers: int
    utterances: int
    wer: float | None

    @property
    def name(self) -> str:
        """``KEY:ID``, as ``--cohort`` takes it."""
        return f"{self.key}:{self.id}"

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name}


def _cohort(entry: dict, cid: str) -> dict | None:
    return next((c for c in entry.get("cohorts", []) if str(c.get("id")) == str(cid)), None)


def _selected(key: str, c: dict, why: str) -> Selected:
    return Selected(key=key, id=str(c["id"]), label=str(c.get("label", c["id"])), why=why,
                    speakers=int(c.get("speakers") or 0), utterances=int(c.get("utterances") or 0),
                    wer=c.get("wer"))


def worse_than_rest(cohort: dict, alpha: float = 0.05, multiplicity: str = "holm") -> bool | None:
    """Whether a cohort entry of report.json is worse than the rest of its discoverer's
    speakers after multiplicity control; None when the entry carries no such test.

    Read, in order: a boolean ``worse_than_rest`` on the entry (the audit's own headline
    call, used as is when ``multiplicity`` is the audit's rule, Holm); else the first of
    ``entry["vs_rest"]``, ``entry["raw"]`` or the entry itself that holds ``p_holm``
    (Holm-adjusted p-value) or ``q_bh`` (Benjamini-Hochberg q-value): worse when its
    ``rate_ratio`` (cohort vs the rest, ratio) is above 1 and the adjusted value of
    ``multiplicity`` is below ``alpha``.
    """
    field = MULTIPLICITY[multiplicity]
    flag = cohort.get("worse_than_rest")
    if isinstance(flag, bool) and multiplicity == "holm":
        return flag
    for name in _TEST_BLOCKS:
        block = cohort if name is None else cohort.get(name)
        if not isinstance(block, dict) or field not in block:
            continue
        q, ratio = block.get(field), block.get("rate_ratio")
        if q is None or ratio is None:
            return False
        return bool(float(ratio) > 1.0 and float(q) < alpha)
    return None


def parse_name(text: str, report: dict) -> tuple[str, str]:
    """(discoverer key, cohort id) of ``KEY:ID``; the key is the longest report key that
    ``text`` starts with (keys may hold colons: ``attribute:gender:A01``)."""
    keys = sorted(report.get("discoverers", {}), key=len, reverse=True)
    for key in keys:
        if text.startswith(key + ":") and len(text) > len(key) + 1:
            return key, text[len(key) + 1:]
    raise UserInputError(f"--cohort {text!r}: no discoverer of this audit is named by its start",
                         hint=f"write KEY:ID with KEY one of {', '.join(report.get('discoverers', {})) or 'none'}")


def select_cohorts(report: dict, rule: str | None = None, named: Iterable[str] = (),
                   discoverers: Iterable[str] | None = None, *, alpha: float = 0.05,
                   multiplicity: str = "holm") -> list[Selected]:
    """The cohorts to export, in report order, each once.

    ``rule``: ``bottom`` (each discoverer's bottom cohort), ``worse`` (every cohort worse
    than the rest after multiplicity control, :func:`worse_than_rest`), ``all`` (every
    cohort) or None (``bottom`` unless cohorts are ``named``).  ``named``: ``KEY:ID``
    strings, added to what the rule selects.  ``discoverers``: report keys the rule is
    restricted to (named cohorts are taken wherever they are).  A cohort with fewer
    speakers than its discoverer's minimum is never chosen by a rule (its WER is too
    noisy to act on), only by name.
    """
    named = list(named)
    if rule is None:
        rule = "bottom" if not named else None
    if rule is not None and rule not in RULES:
        raise UserInputError(f"--cohorts {rule!r} is not a selection rule", hint=f"use one of {', '.join(RULES)}")
    if multiplicity not in MULTIPLICITY:
        raise UserInputError(f"--multiplicity {multiplicity!r} is unknown", hint="use holm or bh")
    if not 0.0 < float(alpha) < 1.0:
        raise UserInputError(f"--alpha {alpha} must lie strictly between 0 and 1", hint="e.g. --alpha 0.05")
    entries = report.get("discoverers", {})
    keys = list(entries)
    if discoverers is not None:
        discoverers = list(discoverers)
        unknown = [k for k in discoverers if k not in entries]
        if unknown:
            raise UserInputError(f"--discoverer {unknown[0]!r} is not in this audit",
                                 hint=f"its discoverers are {', '.join(keys) or 'none'}")
        keys = [k for k in keys if k in discoverers]
    out: list[Selected] = []
    tested = False
    for key in keys:
        entry = entries[key]
        if entry.get("skipped") or rule is None:
            continue
        if rule == "bottom":
            c = _cohort(entry, entry.get("bottom")) if entry.get("bottom") is not None else None
            if c is not None:
                out.append(_selected(key, c, "bottom cohort (highest WER)"))
            continue
        for c in entry.get("cohorts", []):
            if rule == "all":
                if not c.get("too_few_speakers"):
                    out.append(_selected(key, c, "every cohort"))
                continue
            call = worse_than_rest(c, alpha, multiplicity)
            tested |= call is not None
            if call and not c.get("too_few_speakers"):
                rule_text = {"holm": "Holm-adjusted p", "bh": "Benjamini-Hochberg q"}[multiplicity]
                out.append(_selected(key, c, f"worse than the rest ({rule_text} < {alpha:g})"))
    if rule == "worse" and not tested:
        raise UserInputError("this audit has no every-cohort-vs-the-rest tests to choose 'worse' cohorts by",
                             hint="audit with a fairaudit that tests every cohort against the rest, or use "
                                  "--cohorts bottom / --cohort KEY:ID")
    for text in named:
        key, cid = parse_name(text, report)
        entry = entries[key]
        if entry.get("skipped"):
            raise UserInputError(f"--cohort {text!r}: the {key} discoverer was skipped in this audit "
                                 f"({entry['skipped']})")
        c = _cohort(entry, cid)
        if c is None:
            ids = ", ".join(str(x["id"]) for x in entry.get("cohorts", [])[:12])
            raise UserInputError(f"--cohort {text!r}: {key} has no cohort {cid!r}", hint=f"its cohorts are {ids}")
        out.append(_selected(key, c, "named"))
    seen: set[str] = set()
    unique = []
    for s in out:
        if s.name not in seen:
            seen.add(s.name)
            unique.append(s)
    if not unique:
        raise UserInputError(f"no cohort to export: {_nothing(rule, keys)}",
                             hint="name cohorts with --cohort KEY:ID, or lower --min-speakers in the audit")
    return unique


def _nothing(rule: str | None, keys: list[str]) -> str:
    if not keys:
        return "the audit has no discoverer to choose from"
    if rule == "worse":
        return "no cohort is worse than the rest after multiplicity control"
    return "no discoverer of the audit has a bottom cohort (fewer than two cohorts with enough speakers)"
