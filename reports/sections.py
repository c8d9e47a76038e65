"""The view model of one discoverer's section of the HTML report.

Every section shows the same standard parts for any discoverer (headline facts, the
statistics, the bar chart of cohorts, the cohort table, the worst utterances); what is
specific to a discoverer comes from its :meth:`~fairaudit.discover.Discoverer.report_section`
hook as a :class:`ReportSection`: title, method text, extra facts, figures (above the bar
chart), blocks before the figures (``intro``) and after the cohort table (``blocks``),
a short note per cohort for the table, and each cohort's definition in words for its
drill-down.  Figures may carry a ``layer`` (their shapes in PNG pixels) and tables
``cohort_ids`` (which row is which cohort): the page then hovers and opens drill-downs on
them (:mod:`fairaudit.reports.explore`).  Everything here is plain text: the template
escapes it (labels and values are untrusted).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

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
    #: hover/click geometry in the PNG's pixels (origin top left), from
    #: :mod:`fairaudit.reports.figure_layers`: ``{"w", "h", "rects": [[x, y, width, height,
    #: cohort index]]}`` or ``{"w", "h", "points": [[x, y, cohort index]]}``; the cohort
    #: index is into the entry's ``cohorts``
    layer: dict | None = None


@dataclass
class Table:
    """A small table of text cells.  A cell is a string or ``{"text", "tag", "class", "note"}``
    (``tag``: a highlighted word after the text, e.g. "chosen"; ``note``: a small line under
    it).  Every table is sortable, filterable and downloadable on the page; ``cohort_ids``
    (one per row, None for a row that is no cohort) makes cell ``drill_col`` open the
    cohort's drill-down; ``filename`` names its CSV download."""

    columns: list[str]
    rows: list[list[Any]]
    numeric: list[bool] | None = None
    row_classes: list[str] | None = None
    css: str = ""
    cohort_ids: list[str | None] | None = None
    drill_col: int = 0
    filename: str = ""


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
    #: cohort id -> its definition in sentences (the drill-down; default: its label)
    cohort_definitions: dict[str, list[str]] = field(default_factory=dict)


def plain(value: Any) -> str:
    """A value from report.json as words and numbers, never as JSON.

    Floats to 4 significant digits (whole numbers with thousands separators), booleans as
    yes/no, lists joined by commas, dicts as "key: value" pairs.
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return plain(int(value))
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        sep = ", " if all(not isinstance(v, (list, tuple, dict)) for v in value) else "; "
        return sep.join(plain(v) for v in value)
    if isinstance(value, dict):
        if not value:
            return "none"
        return "; ".join(f"{k}: {plain(v)}" for k, v in value.items())  # keys may be column names: as is
    return str(value)


def _words(key: Any) -> str:
    return str(key).replace("_", " ")


def fact_rows(d: dict | None, exclude: Iterable[str] = (), max_items: int = 12) -> list[tuple[str, str]]:
    """Rows (label, text) for a dict of parameters or details, in words (:func:`plain`).

    A nested dict becomes one row per entry ("outer › inner"); a list of dicts longer than
    ``max_items`` becomes a count (the entries stay in report.json).
    """
    rows: list[tuple[str, str]] = []
    skip = set(exclude)

    def walk(obj: dict, prefix: str) -> None:
        for k, v in obj.items():
            if not prefix and k in skip:
                continue
            label = f"{prefix} › {_words(k)}" if prefix else _words(k)
            if isinstance(v, dict) and v and (any(isinstance(x, (dict, list)) for x in v.values()) or len(v) > 6):
                walk(v, label)
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                if len(v) > max_items:
                    rows.append((label, f"{len(v):,} entries (listed in report.json)"))
                else:
                    rows.extend((f"{label} {i}", plain(x)) for i, x in enumerate(v, 1))
            else:
                rows.append((label, plain(v)))

    walk(d or {}, "")
    return rows


def detail_facts(details: dict, skip: tuple[str, ...] = (), params: dict | None = None) -> list[tuple[str, str]]:
    """Facts from a discoverer's ``details``, as readable rows: every entry short enough to
    read on one line (long arrays such as projections are left to figures), except ``skip``
    and values equal to a parameter of the same name."""
    params = params or {}
    kept = {k: v for k, v in (details or {}).items() if not (k in params and params[k] == v)}
    return [(k, v) for k, v in fact_rows(kept, exclude=skip) if len(v) <= MAX_FACT_CHARS]


def generic_section(discoverer, entry: dict, report: dict) -> ReportSection:
    """The section of a discoverer that brings none: its title, its description and its
    short details as facts (the standard parts are drawn for every discoverer)."""
    return ReportSection(title=discoverer.title or discoverer.name, method=discoverer.description,
                         facts=detail_facts(entry.get("details") or {}, params=entry.get("params") or {}))
