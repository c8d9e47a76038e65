"""Which cohorts of an audit to hand to mitigation: the bottom ones, the ones worse than
the rest after multiplicity control, every cohort, or cohorts named by the user.

A cohort is named ``KEY:ID``: the discoverer's report key (``geographic``,
``attribute:gender``) and the cohort id (``R03``, ``A01``), as in assignments.csv, e.g.
``geographic:R03`` or ``attribute:gender:A01``.

"Worse than the rest" is the audit's own call, read from report.json's
``rate_ratios.worse_than_rest`` (every cohort against the rest of its discoverer's
speakers, Holm-adjusted across all cohorts and discoverers): :func:`worse_than_rest` is
the one accessor, and documents the fields it reads.  An audit without that section
cannot answer the question; it is refused in one line, never guessed from raw p-values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from .errors import UserInputError

#: selection rules of ``--cohorts``
RULES = ("bottom", "worse", "all")
#: what ``--cohorts worse`` needs, named in its refusal
WORSE_SECTION = "rate_ratios.worse_than_rest"


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


def worse_than_rest(report: dict) -> list[dict] | None:
    """The cohorts the audit found worse than the rest after multiplicity control, or None
    when its report.json has no such section (an audit without every-cohort tests).

    Read: ``report["rate_ratios"]["worse_than_rest"]``, a list of objects with
    ``discoverer`` (report key), ``cohort`` (cohort id), ``rate_ratio`` (cohort vs the
    rest, ratio) and ``p_holm`` (Holm-adjusted p-value); other fields are ignored.  A
    malformed section is a UserInputError naming the field.
    """
    block = report.get("rate_ratios")
    if not isinstance(block, dict) or "worse_than_rest" not in block:
        return None
    items = block["worse_than_rest"]
    if not isinstance(items, list):
        raise UserInputError(f"report.json: {WORSE_SECTION} is not a list",
                             hint="run the audit again with a fairaudit that writes it")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "discoverer" not in item or "cohort" not in item:
            raise UserInputError(f"report.json: {WORSE_SECTION}[{i}] has no discoverer/cohort",
                                 hint="run the audit again with a fairaudit that writes it")
        out.append(item)
    return out


def _why_worse(item: dict) -> str:
    parts = []
    if isinstance(item.get("rate_ratio"), (int, float)):
        parts.append(f"rate ratio {item['rate_ratio']:.2f} vs the rest")
    if isinstance(item.get("p_holm"), (int, float)):
        parts.append(f"Holm-adjusted p {item['p_holm']:.3g}")
    return "worse than the rest after multiplicity control" + (f" ({', '.join(parts)})" if parts else "")


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
                   discoverers: Iterable[str] | None = None) -> list[Selected]:
    """The cohorts to export, in report order, each once.

    ``rule``: ``bottom`` (each discoverer's bottom cohort), ``worse`` (every cohort the
    audit found worse than the rest after multiplicity control, :func:`worse_than_rest`;
    refused when the audit has no such section), ``all`` (every cohort) or None
    (``bottom`` unless cohorts are ``named``).  ``named``: ``KEY:ID`` strings, added to
    what the rule selects.  ``discoverers``: report keys the rule is restricted to (named
    cohorts are taken wherever they are).  A cohort with fewer speakers than its
    discoverer's minimum is never chosen by ``bottom``/``all`` (its WER is too noisy to
    act on), only by name or by the audit's own worse-than-the-rest call.
    """
    named = list(named)
    if rule is None:
        rule = "bottom" if not named else None
    if rule is not None and rule not in RULES:
        raise UserInputError(f"--cohorts {rule!r} is not a selection rule", hint=f"use one of {', '.join(RULES)}")
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
    if rule == "worse":
        items = worse_than_rest(report)
        if items is None:
            raise UserInputError(f"--cohorts worse needs an audit whose report.json has a {WORSE_SECTION} "
                                 f"section (every cohort tested against the rest, Holm-adjusted); this one has none",
                                 hint="audit again with a fairaudit that tests every cohort against the rest, or "
                                      "use --cohorts bottom or --cohort KEY:ID")
        for item in items:
            key, cid = str(item["discoverer"]), str(item["cohort"])
            if key not in keys:
                if key not in entries:
                    raise UserInputError(f"report.json: {WORSE_SECTION} names discoverer {key!r}, which the audit "
                                         f"does not have", hint="run the audit again: the report is inconsistent")
                continue
            c = _cohort(entries[key], cid)
            if c is None:
                raise UserInputError(f"report.json: {WORSE_SECTION} names cohort {cid!r} of {key}, which it does "
                                     f"not have", hint="run the audit again: the report is inconsistent")
            out.append(_selected(key, c, _why_worse(item)))
    for key in keys:
        entry = entries[key]
        if entry.get("skipped") or rule not in ("bottom", "all"):
            continue
        if rule == "bottom":
            c = _cohort(entry, entry.get("bottom")) if entry.get("bottom") is not None else None
            if c is not None:
                out.append(_selected(key, c, "bottom cohort (highest WER)"))
            continue
        for c in entry.get("cohorts", []):
            if not c.get("too_few_speakers"):
                out.append(_selected(key, c, "every cohort"))
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
        return "the audit found no cohort worse than the rest after multiplicity control"
    return "no discoverer of the audit has a bottom cohort (fewer than two cohorts with enough speakers)"
