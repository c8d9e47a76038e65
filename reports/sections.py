"""The view model of one discoverer's section of the HTML report.

Every section shows the same standard parts for any discoverer (headline facts, the
statistics, the bar chart of cohorts, the cohort table, the worst utterances); what is
specific to a discoverer comes from its :meth:`~fairaudit.discover.Discoverer.report_section`
hook as a :class:`ReportSection`: title, method text, extra facts, figures (above the bar
chart), blocks before the figures (``intro``) and after the cohort table (``blocks``),
and a short note per cohort for the table.  Everything here is plain text: the template
escapes it (labels and values are untrusted).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: details longer than this (characters, as JSON) are not listed by the generic section
MAX_FACT_CHARS = 240


@dataclass
class Figure:
    """An embedded PNG: ``src`` is a data URI (see fairaudit.reports.html.figures.png)."""

    src: str
    alt: str
    caption: str = ""
    width: int | None = None
    css: str = "figure"


@dataclass
class Table:
    """A small table of text cells.  A cell is a string or ``{"text", "tag", "class"}``
    (``tag``: a highlighted word after the text, e.g. "chosen")."""

    columns: list[str]
    rows: list[list[Any]]
    numeric: list[bool] | None = None
    row_classes: list[str] | None = None
    css: str = ""


@dataclass
class Block:
    """A headed paragraph and/or table.  ``spans``: (text, style) pieces of the paragraph,
    style one of "" (plain), "b" (bold), "mono" (code-like), "bmono" (both)."""

    heading: str = ""
    spans: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    table: Table | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ReportSection:
    """What a discoverer contributes to its section of the report."""

    title: str
    method: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    intro: list[Block] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    cohort_notes: dict[str, str] = field(default_factory=dict)


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def plain(value: Any) -> str:
    """A JSON-ish value as one line of text, floats to 4 decimals (the template escapes it)."""
    if isinstance(value, str):
        return value
    return json.dumps(rounded(value), ensure_ascii=False, sort_keys=True)


def detail_facts(details: dict, skip: tuple[str, ...] = (), params: dict | None = None) -> list[tuple[str, str]]:
    """Facts from a discoverer's ``details``: every entry short enough to read on one line
    (long arrays such as projections are left to figures), except ``skip`` and values
    equal to a parameter of the same name."""
    params = params or {}
    out = []
    for k, v in (details or {}).items():
        if k in skip or (k in params and params[k] == v):
            continue
        text = plain(v)
        if len(text) <= MAX_FACT_CHARS:
            out.append((str(k).replace("_", " "), text))
    return out


def generic_section(discoverer, entry: dict, report: dict) -> ReportSection:
    """The section of a discoverer that brings none: its title, its description and its
    short details as facts (the standard parts are drawn for every discoverer)."""
    return ReportSection(title=discoverer.title or discoverer.name, method=discoverer.description,
                         facts=detail_facts(entry.get("details") or {}, params=entry.get("params") or {}))
