"""The explorable layer of the HTML report: data blocks, the inline script and its policy.

The page stays one self-contained, offline file.  What the script needs reaches it only as
JSON inside ``<script type="application/json" id="...">`` blocks (never executed), escaped
so that no text can end the block early (:func:`escape_json`); large blocks are deflated and
base64-encoded and decoded on demand in the browser with ``DecompressionStream``.  The one
executable script is a constant file (``templates/_explore.js``, no data in it) whose
SHA-256 goes into a Content-Security-Policy meta tag: no other script can run, and the page
can fetch nothing (``default-src 'none'``).  The script builds the DOM with
``createElement``/``textContent`` only.

Everything here is derived from report.json (nothing is recomputed), deterministically: the
same report gives the same bytes.
"""
from __future__ import annotations

import base64
import csv
import functools
import hashlib
import io
import json
import math
import re
import zlib
from importlib import resources
from typing import Any, Iterable

from markupsafe import Markup

#: JSON blocks larger than this (bytes) are deflated and base64-encoded
COMPRESS_MIN_BYTES = 256 * 1024
#: zlib level: 6 packs a 100k-speaker table in well under a second, 9 gains ~2 %
ZLIB_LEVEL = 6
#: the policy: nothing may be fetched; images only from data: URIs; the one script by hash
CSP_TEMPLATE = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src '{hash}'; "
                "base-uri 'none'; form-action 'none'")

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


# --------------------------------------------------------------------------- blocks

def escape_json(text: str) -> str:
    """JSON text made safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` only occur inside JSON strings, where ``\\u003c`` etc. mean
    the same characters: no ``</script>`` or ``<!--`` can appear, and U+2028/2029 (line
    terminators in older JavaScript) are escaped too.  ``JSON.parse`` gives back the data.
    """
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)


def dumps(obj: Any) -> str:
    """Compact, deterministic JSON (no NaN: it is not JSON)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def data_block(block_id: str, obj: Any, compress: bool | None = None) -> Markup:
    """``<script type="application/json" id=block_id>`` holding ``obj``.

    ``compress``: None = deflate when the JSON exceeds :data:`COMPRESS_MIN_BYTES`.  A
    compressed block carries ``data-encoding="deflate-base64"`` (zlib stream, base64).
    """
    if not re.fullmatch(r"[A-Za-z][\w-]*", block_id):
        raise ValueError(f"block id {block_id!r} is not a plain identifier")
    text = dumps(obj)
    raw = text.encode("utf-8")
    if compress is None:
        compress = len(raw) > COMPRESS_MIN_BYTES
    if compress:
        body = base64.b64encode(zlib.compress(raw, ZLIB_LEVEL)).decode("ascii")
        return Markup(f'<script type="application/json" id="{block_id}" data-encoding="deflate-base64" '
                      f'data-bytes="{len(raw)}">{body}</script>\n')
    return Markup(f'<script type="application/json" id="{block_id}">{escape_json(text)}</script>\n')


@functools.lru_cache(maxsize=1)
def script_source() -> str:
    """The page's one executable script (a constant file: no report data in it)."""
    js = resources.files("fairaudit.reports").joinpath("templates/_explore.js").read_text(encoding="utf-8")
    low = js.lower()
    # the script is inserted verbatim: it must not be able to end its element or open a comment
    if "</script" in low or "<!--" in low or "<script" in low:
        raise RuntimeError("_explore.js contains '<script', '</script' or '<!--'")
    return js


def script_hash(js: str | None = None) -> str:
    """CSP source of the script: ``'sha256-'`` + base64 of the SHA-256 of its UTF-8 text."""
    digest = hashlib.sha256((script_source() if js is None else js).encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def csp_policy() -> str:
    """The Content-Security-Policy of the report page."""
    return CSP_TEMPLATE.format(hash=script_hash())


def csp_meta() -> Markup:
    return Markup(f'<meta http-equiv="Content-Security-Policy" content="{csp_policy()}">')


def script_tag() -> Markup:
    # exactly the hashed text between the tags: the browser hashes the element's content
    return Markup(f"<script>{script_source()}</script>")


# --------------------------------------------------------------------------- readable facts

def readable(value: Any) -> str:
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
            return readable(int(value))
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        sep = ", " if all(not isinstance(v, (list, tuple, dict)) for v in value) else "; "
        return sep.join(readable(v) for v in value)
    if isinstance(value, dict):
        if not value:
            return "none"
        return "; ".join(f"{k}: {readable(v)}" for k, v in value.items())  # keys may be column names: as is
    return str(value)


def _words(key: Any) -> str:
    return str(key).replace("_", " ")


def fact_rows(d: dict | None, exclude: Iterable[str] = (), max_items: int = 12) -> list[tuple[str, str]]:
    """Rows (label, text) for a dict of parameters or details.

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
            if isinstance(v, dict) and v and any(isinstance(x, (dict, list)) for x in v.values()):
                walk(v, label)
            elif isinstance(v, dict) and len(v) > 6:
                walk(v, label)
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                if len(v) > max_items:
                    rows.append((label, f"{len(v):,} entries (listed in report.json)"))
                else:
                    for i, x in enumerate(v, 1):
                        rows.append((f"{label} {i}", readable(x)))
            else:
                rows.append((label, readable(v)))

    walk(d or {}, "")
    return rows


# --------------------------------------------------------------------------- candidate rules

def collapse_candidates(candidates: list[dict], chosen: str | None = None) -> list[dict]:
    """Candidate rules with the same split of the speakers shown once.

    Two rules split the same speakers when both sides have the same speaker counts and
    WERs (a rule and its complement, or a conjunction whose extra condition excludes
    nobody).  The row keeps the chosen rule if it is in the group, else the simplest
    (fewest conditions, then shortest); the others are listed in ``equivalent``.
    Order: as given (the first member of each group fixes the group's place).
    """
    groups: dict[Any, list[dict]] = {}
    for c in candidates:
        side_a = (c.get("speakers_in_rule"), _round(c.get("wer_in_rule")))
        side_b = (c.get("speakers_rest"), _round(c.get("wer_rest")))
        groups.setdefault(frozenset((side_a, side_b)), []).append(c)
    out = []
    for members in groups.values():
        rep = next((c for c in members if chosen is not None and c.get("rule") == chosen), None)
        if rep is None:
            rep = min(members, key=lambda c: (str(c.get("rule")).count(" AND "), len(str(c.get("rule"))),
                                              members.index(c)))
        out.append({**rep, "equivalent": [c.get("rule") for c in members if c is not rep]})
    return out


def _round(x: Any) -> Any:
    return round(x, 12) if isinstance(x, float) else x


# --------------------------------------------------------------------------- cohorts in words

def _lat(v: float) -> str:
    return f"{abs(v):.2f}°{'N' if v >= 0 else 'S'}"


def _lon(v: float) -> str:
    return f"{abs(v):.2f}°{'E' if v >= 0 else 'W'}"


def _box(b: list) -> str:
    la0, la1, lo0, lo1 = (float(x) for x in b[:4])
    return f"{_lat(la0)} to {_lat(la1)}, {_lon(lo0)} to {_lon(lo1)}"


def _attribute_values(label: str, columns: list[str]) -> list[tuple[str, str]] | None:
    """(column, value) pairs of an attribute cohort label 'a=x, b=y' (columns known)."""
    pairs, rest = [], label
    for i, col in enumerate(columns):
        if not rest.startswith(f"{col}="):
            return None
        rest = rest[len(col) + 1:]
        if i + 1 < len(columns):
            sep = f", {columns[i + 1]}="
            cut = rest.find(sep)
            if cut < 0:
                return None
            pairs.append((col, rest[:cut]))
            rest = rest[cut + 2:]
        else:
            pairs.append((col, rest))
    return pairs


def definition(kind: str, entry: dict, cohort: dict) -> list[str]:
    """A cohort's definition in sentences (plain text; the page shows it as text)."""
    d = cohort.get("details") or {}
    label = str(cohort.get("label", cohort.get("id")))
    if kind == "geographic" and d.get("cell"):
        lines = [f"Speakers whose coordinates fall in the map cell {_box(d['cell'])}"
                 + (f" (leaf {d['node']} of the clustering tree, depth {d['depth']})." if d.get("node") is not None
                    and d.get("depth") is not None else ".")]
        if d.get("members_box"):
            lines.append(f"Its speakers lie within {_box(d['members_box'])}"
                         + (f", around {d['place']}." if d.get("place") else "."))
        return lines
    if kind == "geodemographic" and d.get("rule"):
        rule = str(d["rule"])
        inner = re.fullmatch(r"NOT \((.*)\)", rule, re.S)
        if inner:
            return [f"Speakers whose zip code's census row does not satisfy {inner.group(1)}: "
                    "every other speaker with a census row."]
        return [f"Speakers whose zip code's census row satisfies {rule}."]
    if kind == "automatic":
        params = entry.get("params") or {}
        k = (entry.get("details") or {}).get("clusters_found") or params.get("k")
        text = f"Speakers whose embedding lies nearest to centroid {cohort.get('id')} of k-means"
        text += f" with {k} clusters" if k is not None else ""
        text += " on speaker-identification embeddings"
        text += " (L2-normalised)." if params.get("l2_normalize") else "."
        lines = [text, "The clusters were found without labels: the attributes below describe, they did not define."]
        mix = d.get("attribute_mix")
        if isinstance(mix, dict) and mix:
            parts = [f"{col}: " + ", ".join(f"{v} {100 * (s or 0):.0f} %" for v, s in vals.items())
                     for col, vals in mix.items() if isinstance(vals, dict)]
            lines.append("What it holds: " + "; ".join(parts) + ".")
        if d.get("main_region"):
            share = d.get("main_region_share")
            lines.append(f"Most often from {d['main_region']}"
                         + (f" ({100 * share:.0f} % of its speakers)." if isinstance(share, (int, float)) else "."))
        return lines
    if kind == "attribute":
        cols = [str(c) for c in ((entry.get("params") or {}).get("columns") or [])]
        pairs = _attribute_values(label, cols) if cols else None
        if pairs:
            return ["Speakers whose " + " and ".join(f"{c} is {v}" for c, v in pairs) + "."]
    # any other discoverer (plugins): its label, and its details as rows elsewhere
    return [label]


# --------------------------------------------------------------------------- CSV of cohorts.csv

def _csv_records(text: str) -> tuple[str, list[str]]:
    """Split CSV text into its header line and one text per record (a quoted field may hold newlines)."""
    lines = [line + "\n" for line in text.split("\n")]
    if lines and lines[-1] == "\n":
        lines.pop()
    consumed = 0

    def feed():
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    reader = csv.reader(feed())
    records, start = [], 0
    for _ in reader:
        records.append("".join(lines[start:consumed]))
        start = consumed
    return (records[0], records[1:]) if records else ("", [])


def cohort_csv(report: dict) -> dict[str, dict]:
    """Per discoverer, the header and record lines of cohorts.csv (written the same way).

    The rule the page keeps: a cohort table's CSV download, unfiltered and in its first
    order, is byte for byte the header of cohorts.csv plus its rows for that discoverer
    (``AuditResult.cohorts().to_csv(index=False)``: floats as Python writes them, booleans
    True/False, missing values empty, dicts as Python writes them).
    """
    from fairaudit.result import AuditResult

    frame = AuditResult(report=report).cohorts()
    if frame.empty:
        return {}
    header, records = _csv_records(frame.to_csv(index=False, lineterminator="\n"))
    out: dict[str, dict] = {}
    for key, line in zip(frame["discoverer"].tolist(), records):
        out.setdefault(key, {"header": header, "rows": []})["rows"].append(line)
    return out


# --------------------------------------------------------------------------- drill-down data

def _names(report: dict) -> tuple[str, str]:
    """What the report's rate is called (WER, CER, MER) and what its tokens are (words, ...)."""
    from fairaudit.units import TOKEN_NAMES, rate_name, report_unit

    unit = report_unit(report)
    return rate_name(unit), TOKEN_NAMES[unit]


def _fmt():
    from . import html  # the formatting helpers live with the view (imported late: html imports us)

    return html


def _adjusted_rows(adj: Any) -> list[list[str]] | None:
    """The adjusted rate ratio of a cohort vs the rest (issue 16), as rows."""
    if not isinstance(adj, dict) or not adj:
        return None
    f = _fmt()
    rows = []
    rr = adj.get("rate_ratio")
    if rr is not None:
        text = f"{rr:.2f}"
        lo, hi = f._interval(adj.get("rate_ratio_ci"))
        if lo is not None and hi is not None:
            text += f" [{lo:.2f}, {hi:.2f}]"
        if adj.get("p_value") is not None:
            text += f", p = {f.fmt_p(adj['p_value'])}"
        rows.append(["adjusted rate ratio vs the rest", text])
    for k, v in adj.items():
        if k in ("rate_ratio", "rate_ratio_ci", "p_value"):
            continue
        rows.append([_words(k), readable(v)])
    return rows


def _worst_rows(utts: list[dict]) -> list[dict]:
    f = _fmt()
    out = []
    for u in utts or []:
        ops = {"sub": 0, "del": 0, "ins": 0}
        for item in u.get("alignment") or []:
            if item and item[0] in ops:
                ops[item[0]] += 1
        row = {"utt_id": str(u.get("utt_id")), "speaker_id": str(u.get("speaker_id")),
               "errors": f.fmt_count(u.get("errors")), "ref_words": f.fmt_count(u.get("ref_words")),
               "wer": f.fmt_wer(u.get("wer")), "ops": [ops["sub"], ops["del"], ops["ins"]]}
        if u.get("alignment"):
            row["alignment"] = [[a[0], a[1], a[2]] for a in u["alignment"]]
        out.append(row)
    return out


def drill_block(key: str, anchor: str, kind: str, title: str, entry: dict, report: dict,
                worst_note: str | None) -> dict:
    """What the drill-down panel of each cohort of one discoverer shows (display strings)."""
    f = _fmt()
    rate, tokens = _names(report)
    level = f.fmt_level(entry.get("ci_level"))
    drill = entry.get("drilldown") or {}
    worst = drill.get("worst") or {}
    systems = drill.get("systems") or {}
    first_system = report.get("system")
    cohorts = []
    n = len(entry.get("cohorts") or [])
    for c in entry.get("cohorts") or []:
        cid = c["id"]
        role = "bottom" if cid == entry.get("bottom") else "top" if cid == entry.get("top") else ""
        ci = f.fmt_ci(c.get("wer_ci_low"), c.get("wer_ci_high"))
        facts = [
            ["rank", "rank", f"{c.get('rank')} of {n} (1 = highest {rate})"],
            ["wer", f"{rate} %", f.fmt_wer(c.get("wer"))],
        ]
        if ci:
            facts.append(["ci", f"{rate} {level} CI", ci + " (speaker bootstrap, cohorts held fixed)"])
        facts += [
            ["speakers", "speakers", f"{f.fmt_count(c.get('speakers'))} ({f.fmt_pct(c.get('share_pct'))} % of audited)"],
            ["utterances", "utterances", f"{f.fmt_count(c.get('utterances'))} ({f.fmt_pct(c.get('utterance_share_pct'))} %)"],
            ["ref_words", f"reference {tokens}", f.fmt_count(c.get("ref_words"))],
            ["errors", "errors", f"{f.fmt_count(c.get('errors'))} (S {f.fmt_count(c.get('substitutions'))}, "
                                      f"D {f.fmt_count(c.get('deletions'))}, I {f.fmt_count(c.get('insertions'))})"],
        ]
        if c.get("too_few_speakers"):
            facts.append(["eligible", "eligible", "no: fewer speakers than the minimum, cannot be bottom or top"])
        details = fact_rows({k: v for k, v in (c.get("details") or {}).items()
                             if k not in ("attribute_mix",)}) if kind not in ("geographic",) else []
        sys_rows = None
        if cid in systems:
            base = (systems[cid].get(first_system) or {}).get("wer")
            sys_rows = []
            for name, s in systems[cid].items():
                delta = "" if name == first_system or base is None or s.get("wer") is None else \
                    f"{100 * (s['wer'] - base):+.2f} pp"
                sys_rows.append([name, f.fmt_wer(s.get("wer")), delta, f.fmt_count(s.get("errors")),
                                 f.fmt_count(s.get("ref_words")), f.fmt_count(s.get("speakers"))])
        utts = worst.get(cid)
        if role == "bottom" and len(entry.get("worst_utterances") or []) > len(utts or []):
            utts = entry["worst_utterances"]
        cohorts.append({
            "id": cid, "label": str(c.get("label", cid)), "role": role, "few": bool(c.get("too_few_speakers")),
            "definition": definition(kind, entry, c), "facts": facts, "details": details,
            "adjusted": _adjusted_rows(c.get("adjusted")), "systems": sys_rows,
            "worst": _worst_rows(utts) if utts is not None else None,
            "speakers": f.fmt_count(c.get("speakers")), "wer": f.fmt_wer(c.get("wer")), "ci": ci,
        })
    return {"key": key, "anchor": anchor, "title": title, "level": level, "rate": rate, "tokens": tokens,
            "cohorts": cohorts,
            "first_system": first_system, "members": "members" in drill,
            "worst_per_cohort": drill.get("worst_per_cohort"), "worst_note": worst_note}


def speakers_block(report: dict, anchors: dict[str, str]) -> dict | None:
    """The per-speaker table and, per discoverer anchor, each speaker's cohort index."""
    t = report.get("speaker_table")
    if not isinstance(t, dict) or not t.get("speaker_id"):
        return None
    members = {}
    for key, anchor in anchors.items():
        m = ((report.get("discoverers") or {}).get(key) or {}).get("drilldown", {}).get("members")
        if isinstance(m, list) and len(m) == len(t["speaker_id"]):
            members[anchor] = m
    return {"id": t["speaker_id"], "utterances": t.get("utterances"), "ref_words": t.get("ref_words"),
            "errors": t.get("errors"), "ci_low": t.get("wer_ci_low"), "ci_high": t.get("wer_ci_high"),
            "level": _fmt().fmt_level(t.get("ci_level")), "ci_method": t.get("ci_method") or "",
            "rate": _names(report)[0], "tokens": _names(report)[1],
            "members": members}


def cohort_table_block(entry: dict, rows: list[dict], csv_rows: dict | None, key: str, anchor: str) -> dict:
    """Sort keys, CSV and drill-down targets of a discoverer's cohort table (rows in table order)."""
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts") or [])}
    keys = [[r.get("rank"), r.get("id"), r.get("label"), r.get("speakers"), r.get("share_pct"), r.get("utterances"),
             r.get("utterance_share_pct"), r.get("ref_words"), r.get("substitutions"), r.get("deletions"),
             r.get("insertions"), r.get("errors"), r.get("wer"), r.get("wer_ci_low")] for r in rows]
    block = {"keys": keys, "filename": f"cohorts-{_safe_name(key)}.csv",
             "drill": {"col": 1, "rows": [[f"fa-drill-{anchor}", position.get(r["id"])] for r in rows]}}
    if csv_rows:
        by_id = {}
        for line, c in zip(csv_rows["rows"], entry.get("cohorts") or []):
            by_id[c["id"]] = line
        if len(by_id) == len(rows):
            block["csv"] = {"header": csv_rows["header"], "rows": [by_id[r["id"]] for r in rows]}
    return block


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "table"


def rows_drill_block(ids: list[str], entry: dict, anchor: str, col: int, filename: str) -> dict:
    """A table whose rows are cohorts (by id): drill-down targets of its rows."""
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts") or [])}
    return {"filename": filename,
            "drill": {"col": col, "rows": [[f"fa-drill-{anchor}", position.get(i)] if i in position else None
                                           for i in ids]}}


def png_size(data_uri: str) -> tuple[int, int]:
    """Width and height (pixels) of a base64 PNG data URI, from its IHDR chunk."""
    raw = base64.b64decode(data_uri.split(",", 1)[1][:64])
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


# --------------------------------------------------------------------------- the page

def page_context(report: dict, sections: list[dict], summary: list[dict]) -> dict:
    """The data blocks of a report page and the ids the template puts on its tables and figures.

    ``sections``/``summary``: the view model of :func:`fairaudit.reports.html.build_context`;
    each non-skipped section gets ``explore`` (block ids for its cohort table, cluster
    table, candidate table and figures).
    """
    inputs = report.get("inputs") or {}
    redacted = bool((inputs.get("options") or {}).get("redact_text"))
    counts_mode = inputs.get("mode") == "counts"
    csvs = cohort_csv(report)
    blocks: list[Markup] = []
    anchors: dict[str, str] = {}
    meta_sections = []
    for sec in sections:
        if sec.get("skipped"):
            continue
        key, anchor, entry = sec["key"], sec["anchor"], sec["entry"]
        kind = entry.get("name") or key
        anchors[key] = anchor
        ids = {"drill": f"fa-drill-{anchor}", "cohorts": f"fa-cohorts-{anchor}"}
        note = None
        if redacted:
            note = "Transcripts were redacted (--redact-text): utterance ids and counts only."
        elif counts_mode:
            note = "The input held precomputed error counts, not transcripts: utterance ids and counts only."
        blocks.append(data_block(ids["drill"], drill_block(key, anchor, kind, sec.get("title", key), entry, report,
                                                           note)))
        blocks.append(data_block(ids["cohorts"], cohort_table_block(entry, sec.get("rows") or [], csvs.get(key),
                                                                     key, anchor)))
        if sec.get("mix"):
            ids["mix"] = f"fa-mix-{anchor}"
            blocks.append(data_block(ids["mix"], rows_drill_block([m["id"] for m in sec["mix"]["rows"]], entry, anchor,
                                                                  0, f"clusters-{_safe_name(key)}.csv")))
        if sec.get("geodem"):
            ids["candidates"] = f"fa-candidates-{anchor}"
            blocks.append(data_block(ids["candidates"], {"filename": f"candidate-rules-{_safe_name(key)}.csv"}))
        for fig in ("map", "scatter", "bars"):
            layer = (sec.get(fig) or {}).get("layer")
            if layer:
                ids[fig] = f"fa-{fig}-{anchor}"
                blocks.append(data_block(ids[fig], {**layer, "drill": ids["drill"]}))
        sec["explore"] = ids
        meta_sections.append({"anchor": anchor, "key": key, "title": sec.get("title", key), "drill": ids["drill"]})
    headline = []
    for row in summary:
        entry = (report.get("discoverers") or {}).get(row["key"]) or {}
        pos = {c["id"]: i for i, c in enumerate(entry.get("cohorts") or [])}
        bottom = entry.get("bottom")
        headline.append([f"fa-drill-{row['anchor']}", pos[bottom]] if not row.get("skipped") and bottom in pos
                        else None)
    blocks.insert(0, data_block("fa-headline", {"filename": "headline.csv", "drill": {"col": 1, "rows": headline}}))
    speakers = speakers_block(report, anchors)
    if speakers is not None:
        blocks.append(data_block("fa-speakers", speakers))
    meta = {"sections": meta_sections, "speakers": len(speakers["id"]) if speakers else 0,
            "systems": list(report.get("systems") or [])}
    blocks.insert(0, data_block("fa-meta", meta))
    return {"blocks": Markup("").join(blocks), "csp_meta": csp_meta(), "script": script_tag(),
            "speakers": meta["speakers"]}


def plain_page() -> dict:
    """The layer for a page without drill-downs (``fairaudit compare``): its tables become
    sortable, filterable and downloadable from their own cells."""
    meta = {"sections": [], "speakers": 0, "systems": []}
    return {"blocks": data_block("fa-meta", meta), "csp_meta": csp_meta(), "script": script_tag(), "speakers": 0}
