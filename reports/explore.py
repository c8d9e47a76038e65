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
import json
import re
import zlib
from importlib import resources
from typing import Any

from markupsafe import Markup

from fairaudit import numbers as num

from .sections import fact_rows, plain

#: JSON blocks larger than this (bytes) are deflated and base64-encoded
COMPRESS_MIN_BYTES = 256 * 1024
#: zlib level: on a 100k-speaker table (4.2 MB of JSON) level 3 takes 0.08 s for 1.10 MB,
#: level 6 0.33 s for 1.02 MB (8 % smaller), level 1 0.04 s for 1.19 MB: 3 keeps the page
#: small at a quarter of the time (the block is the one large part of report.html)
ZLIB_LEVEL = 3
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

# Facts are rows of words: the helpers (plain, fact_rows) live with the section model the
# discoverers use (fairaudit.reports.sections).
readable = plain


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

def lat_text(v: float) -> str:
    """A latitude in words: 33.75 -> '33.75°N'."""
    return f"{abs(v):.2f}°{'N' if v >= 0 else 'S'}"


def lon_text(v: float) -> str:
    """A longitude in words: -84.49 -> '84.49°W'."""
    return f"{abs(v):.2f}°{'E' if v >= 0 else 'W'}"


def box_text(b: list) -> str:
    """A [lat0, lat1, lon0, lon1] box in words."""
    la0, la1, lo0, lo1 = (float(x) for x in b[:4])
    return f"{lat_text(la0)} to {lat_text(la1)}, {lon_text(lo0)} to {lon_text(lo1)}"


def attribute_values(label: str, columns: list[str]) -> list[tuple[str, str]] | None:
    """(column, value) pairs of an attribute cohort label 'a=x, b=y' (columns known), or None."""
    pairs, rest = [], label
    for i, col in enumerate(columns):
        if not rest.startswith(f"{col}="):
            return None
        rest = rest[len(col) + 1:]
        if i + 1 < len(columns):
            cut = rest.find(f", {columns[i + 1]}=")
            if cut < 0:
                return None
            pairs.append((col, rest[:cut]))
            rest = rest[cut + 2:]
        else:
            pairs.append((col, rest))
    return pairs


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


def _adjusted_rows(adj: Any) -> list[list[str]] | None:
    """The adjusted rate ratio of a cohort vs the rest (issue 16), as rows."""
    if not isinstance(adj, dict) or not adj:
        return None
    rows = []
    rr = adj.get("rate_ratio")
    if rr is not None:
        text = f"{rr:.2f}"
        ci = adj.get("rate_ratio_ci")
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci:
            text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        if adj.get("p_value") is not None:
            text += f", p = {num.p_value(adj['p_value'])}"
        rows.append(["adjusted rate ratio vs the rest", text])
    for k, v in adj.items():
        if k in ("rate_ratio", "rate_ratio_ci", "p_value"):
            continue
        rows.append([str(k).replace("_", " "), readable(v)])
    return rows


def _worst_rows(utts: list[dict]) -> list[dict]:
    out = []
    for u in utts or []:
        ops = {"sub": 0, "del": 0, "ins": 0}
        for item in u.get("alignment") or []:
            if item and item[0] in ops:
                ops[item[0]] += 1
        row = {"utt_id": str(u.get("utt_id")), "speaker_id": str(u.get("speaker_id")),
               "errors": num.count(u.get("errors")), "ref_words": num.count(u.get("ref_words")),
               "wer": num.wer(u.get("wer")), "ops": [ops["sub"], ops["del"], ops["ins"]]}
        if u.get("alignment"):
            row["alignment"] = [[a[0], a[1], a[2]] for a in u["alignment"]]
        out.append(row)
    return out


def drill_block(key: str, anchor: str, title: str, entry: dict, report: dict,
                definitions: dict[str, list[str]] | None = None, worst_note: str | None = None) -> dict:
    """What the drill-down panel of each cohort of one discoverer shows (display strings).

    ``definitions``: the discoverer's sentences per cohort id (its report section's
    ``cohort_definitions``); a cohort without one is defined by its label, and its
    ``details`` are listed as rows instead.
    """
    definitions = definitions or {}
    rate, tokens = _names(report)
    level = num.level(entry.get("ci_level"))
    drill = entry.get("drilldown") or {}
    worst = drill.get("worst") or {}
    systems = drill.get("systems") or {}
    first_system = report.get("system")
    cohorts = []
    n = len(entry.get("cohorts") or [])
    for c in entry.get("cohorts") or []:
        cid = c["id"]
        role = "bottom" if cid == entry.get("bottom") else "top" if cid == entry.get("top") else ""
        ci = num.interval(c.get("wer_ci_low"), c.get("wer_ci_high"))
        facts = [
            ["rank", "rank", f"{c.get('rank')} of {n} (1 = highest {rate})"],
            ["wer", f"{rate} %", num.wer(c.get("wer"))],
        ]
        if ci:
            facts.append(["ci", f"{rate} {level} CI", ci + " (speaker bootstrap, cohorts held fixed)"])
        facts += [
            ["speakers", "speakers", f"{num.count(c.get('speakers'))} ({num.pct(c.get('share_pct'))} % of audited)"],
            ["utterances", "utterances", f"{num.count(c.get('utterances'))} ({num.pct(c.get('utterance_share_pct'))} %)"],
            ["ref_words", f"reference {tokens}", num.count(c.get("ref_words"))],
            ["errors", "errors", f"{num.count(c.get('errors'))} (S {num.count(c.get('substitutions'))}, "
                                      f"D {num.count(c.get('deletions'))}, I {num.count(c.get('insertions'))})"],
        ]
        if c.get("too_few_speakers"):
            facts.append(["eligible", "eligible", "no: fewer speakers than the minimum, cannot be bottom or top"])
        defined = definitions.get(cid)
        details = [] if defined else fact_rows(c.get("details") or {})
        sys_rows = None
        if cid in systems:
            base = (systems[cid].get(first_system) or {}).get("wer")
            sys_rows = []
            for name, s in systems[cid].items():
                delta = "" if name == first_system or base is None or s.get("wer") is None else \
                    f"{100 * (s['wer'] - base):+.2f} pp"
                sys_rows.append([name, num.wer(s.get("wer")), delta, num.count(s.get("errors")),
                                 num.count(s.get("ref_words")), num.count(s.get("speakers"))])
        utts = worst.get(cid)
        if role == "bottom" and len(entry.get("worst_utterances") or []) > len(utts or []):
            utts = entry["worst_utterances"]
        cohorts.append({
            "id": cid, "label": str(c.get("label", cid)), "role": role, "few": bool(c.get("too_few_speakers")),
            "definition": list(defined) if defined else [str(c.get("label", cid))], "facts": facts,
            "details": details,
            "adjusted": _adjusted_rows(c.get("adjusted")), "systems": sys_rows,
            "worst": _worst_rows(utts) if utts is not None else None,
            "speakers": num.count(c.get("speakers")), "wer": num.wer(c.get("wer")), "ci": ci,
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
            "level": num.level(t.get("ci_level")), "ci_method": t.get("ci_method") or "",
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


# --------------------------------------------------------------------------- the page

def _table_block(table, entry: dict, anchor: str, key: str, name: str) -> dict:
    """Drill-down targets and file name of a section's table (a :class:`~.sections.Table`)."""
    block = {"filename": table.filename or f"{name}-{_safe_name(key)}.csv"}
    if table.cohort_ids:
        position = {c["id"]: i for i, c in enumerate(entry.get("cohorts") or [])}
        block["drill"] = {"col": table.drill_col,
                          "rows": [[f"fa-drill-{anchor}", position[i]] if i in position else None
                                   for i in table.cohort_ids]}
    return block


def page_context(report: dict, sections: list[dict], summary: list[dict]) -> dict:
    """The data blocks of a report page and the ids the template puts on its tables and figures.

    ``sections``/``summary``: the view model of :func:`fairaudit.reports.html.build_context`
    (each section holds its discoverer's ``intro``/``blocks`` (with tables), ``figures``
    (with layers), ``bars`` and ``definitions``).  Each non-skipped section gets
    ``explore``: the block ids of its cohort table, bar chart, and of each figure and block
    table (None where there is nothing to add).  Every discoverer, a plugin's generic
    section included, gets the same drill-downs.
    """
    inputs = report.get("inputs") or {}
    redacted = bool((inputs.get("options") or {}).get("redact_text"))
    counts_mode = inputs.get("mode") == "counts"
    csvs = cohort_csv(report)
    blocks: list[Markup] = []
    anchors: dict[str, str] = {}
    meta_sections = []
    note = None
    if redacted:
        note = "Transcripts were redacted (--redact-text): utterance ids and counts only."
    elif counts_mode:
        note = "The input held precomputed error counts, not transcripts: utterance ids and counts only."
    for sec in sections:
        if sec.get("skipped"):
            continue
        key, anchor, entry = sec["key"], sec["anchor"], sec["entry"]
        anchors[key] = anchor
        ids: dict[str, Any] = {"drill": f"fa-drill-{anchor}", "cohorts": f"fa-cohorts-{anchor}"}
        blocks.append(data_block(ids["drill"], drill_block(key, anchor, sec.get("title", key), entry, report,
                                                           sec.get("definitions"), note)))
        blocks.append(data_block(ids["cohorts"], cohort_table_block(entry, sec.get("rows") or [], csvs.get(key),
                                                                     key, anchor)))
        for part in ("intro", "blocks"):
            ids[part] = []
            for j, blk in enumerate(sec.get(part) or []):
                if getattr(blk, "table", None) is None:
                    ids[part].append(None)
                    continue
                bid = f"fa-{part}{j + 1}-{anchor}"
                name = _safe_name((blk.heading or "table").lower())
                blocks.append(data_block(bid, _table_block(blk.table, entry, anchor, key, name)))
                ids[part].append(bid)
        ids["figures"] = []
        for j, fig in enumerate(sec.get("figures") or []):
            if not getattr(fig, "layer", None):
                ids["figures"].append(None)
                continue
            fid = f"fa-fig{j + 1}-{anchor}"
            blocks.append(data_block(fid, {**fig.layer, "drill": ids["drill"]}))
            ids["figures"].append(fid)
        layer = (sec.get("bars") or {}).get("layer")
        if layer:
            ids["bars"] = f"fa-bars-{anchor}"
            blocks.append(data_block(ids["bars"], {**layer, "drill": ids["drill"]}))
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
