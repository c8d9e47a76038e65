"""The view model of the HTML report: every value formatted (fairaudit.numbers), every
figure drawn, each discoverer's own section from its ``report_section`` hook."""
from __future__ import annotations

import warnings
from typing import Any

from fairaudit import numbers as num
from fairaudit.reports import explore
from fairaudit.reports.sections import ReportSection, detail_facts, fact_rows
from fairaudit.units import RATE_TITLES, TOKEN_NAMES, rate_name, report_unit

from .figures import DPI, bar_chart, figure, mpl_context, png, short

fmt_wer, fmt_pct, fmt_gap, fmt_pp, fmt_count, fmt_ci, fmt_level, fmt_p = (
    num.wer, num.pct, num.gap, num.pp, num.count, num.interval, num.level, num.p_value)


def _interval(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return None, None


def section_for(key: str, entry: dict, report: dict) -> ReportSection:
    """The discoverer's own part of its section (its :meth:`report_section` hook), or the
    generic one when its class is not installed here (a report from elsewhere)."""
    from fairaudit.discover import registry

    cls = registry().get(entry.get("name") or key.split(":")[0])
    if cls is None:
        return ReportSection(title=key, facts=detail_facts(entry.get("details") or {}, params=entry.get("params")))
    try:
        disc = cls(**(entry.get("init_params") or {}))
    except Exception:  # noqa: BLE001 - parameters of another version: the section needs none
        disc = cls()
    return disc.report_section(entry, report)


def _cohort_rows(entry: dict, notes: dict[str, str]) -> list[dict]:
    rows = []
    for c in sorted(entry.get("cohorts", []), key=lambda c: c["rank"]):
        role = ("bottom" if c["id"] == entry.get("bottom") else "top" if c["id"] == entry.get("top") else "")
        rows.append({**c, "role": role, "ci": fmt_ci(c.get("wer_ci_low"), c.get("wer_ci_high")),
                     "details_text": notes.get(c["id"], "")})
    return rows


def _rate_ratio_rows(entry: dict, adjusted: bool) -> dict | None:
    """Each cohort against the rest, raw and adjusted side by side, and the sentences for
    gaps the adjustment explains away (from report.json; nothing recomputed)."""
    cohorts = [c for c in sorted(entry.get("cohorts", []), key=lambda c: c["rank"]) if c.get("rate_ratio")]
    if not cohorts:
        return None
    rows, sentences = [], []
    for c in cohorts:
        raw, adj = c["rate_ratio"], c.get("adjusted") or {}
        rows.append({"id": c["id"], "label": c["label"], "speakers": fmt_count(raw.get("speakers")),
                     "raw": num.rate_ratio_block(raw), "raw_p": fmt_p(raw.get("p_value"), num.NA),
                     "raw_holm": fmt_p(raw.get("p_holm"), num.NA), "raw_bh": fmt_p(raw.get("q_bh"), num.NA),
                     "adj": num.rate_ratio_block(adj), "adj_holm": fmt_p(adj.get("p_holm"), num.NA),
                     "adj_bh": fmt_p(adj.get("q_bh"), num.NA), "explained": bool(adj.get("explained_away")),
                     "note": adj.get("note") or raw.get("note") or ""})
        if adj.get("explained_away") and (raw.get("rate_ratio") or 0) > 1:
            sentences.append(f"{c['label']}: the raw gap (rate ratio {num.rate_ratio_block(raw, with_p=True)}) is "
                             f"explained away by {', '.join(adj.get('covariates') or [])}: at equal covariates the "
                             f"rate ratio is {num.rate_ratio_block(adj)}.")
    held = entry.get("rate_ratio_heldout")
    where = None
    if held:
        where = ("These cohorts were found by a search over the errors, so their rate ratios are fitted on held-out "
                 f"speakers: the search ran on {fmt_count(held.get('discovery_speakers'))} speakers chosen at random, "
                 f"its cohorts were applied to the other {fmt_count(held.get('heldout_speakers'))}, and each cohort "
                 f"here is measured through the re-found cohort it shares most speakers with (overlap, Jaccard "
                 f"index, at least {held.get('min_overlap')}).")
        if held.get("note"):
            where += f" {held['note']}."
    return {"rows": rows, "adjusted": adjusted, "sentences": sentences, "heldout": where,
            "method": cohorts[0]["rate_ratio"].get("method", "")}


def _worse_than_rest(report: dict) -> dict | None:
    """The headline list of cohorts significantly worse than the rest (report.rate_ratios)."""
    rr = report.get("rate_ratios")
    if not rr:
        return None
    adjusted = bool(rr.get("covariates"))
    tests = (rr.get("family") or {}).get("adjusted_tests" if adjusted else "raw_tests")
    rows = [{"discoverer": w["discoverer"], "label": w.get("label", w["cohort"]), "ratio": num.rate_ratio_block(w),
             "holm": fmt_p(w.get("p_holm"), num.NA), "bh": fmt_p(w.get("q_bh"), num.NA)}
            for w in rr.get("worse_than_rest") or []]
    explained = []
    for key, entry in (report.get("discoverers") or {}).items():
        for c in entry.get("cohorts", []) if not entry.get("skipped") else []:
            adj, raw = c.get("adjusted") or {}, c.get("rate_ratio") or {}
            if adj.get("explained_away") and (raw.get("rate_ratio") or 0) > 1:
                explained.append(f"{key}: {c['label']}: raw {num.rate_ratio_block(raw, with_p=True)}; adjusted "
                                 f"{num.rate_ratio_block(adj)}")
    return {"rows": rows, "adjusted": adjusted, "tests": tests, "rule": rr.get("rule", ""),
            "covariates": ", ".join(c["name"] for c in rr.get("covariates") or []), "explained": explained,
            "method": rr.get("method", ""), "model": rr.get("model")}


def _worst(entry: dict, redacted: bool, counts_mode: bool) -> dict | None:
    utts = entry.get("worst_utterances") or []
    if not utts:
        return None
    rows = []
    for u in utts:
        al = u.get("alignment")
        ops = {"sub": 0, "del": 0, "ins": 0}
        if al:
            for op, *_ in al:
                if op in ops:
                    ops[op] += 1
        rows.append({**u, "alignment": al, "ops": ops})
    any_text = any(r["alignment"] for r in rows)
    if any_text:
        note = None
    elif redacted:
        note = "Transcripts were redacted (--redact-text): utterance ids and counts only."
    elif counts_mode:
        note = "The input held precomputed error counts, not transcripts: utterance ids and counts only."
    else:
        note = "No transcripts are stored in this report: utterance ids and counts only."
    return {"rows": rows, "note": note, "any_text": any_text}


def _summary_row(key: str, entry: dict, anchor: str) -> dict:
    if entry.get("skipped"):
        return {"key": key, "anchor": anchor, "skipped": entry["skipped"]}
    by_id = {c["id"]: c for c in entry.get("cohorts", [])}
    bottom, top = by_id.get(entry.get("bottom")), by_id.get(entry.get("top"))
    held = entry.get("heldout") or {}
    hci = _interval(held.get("ci_pct")) if held.get("estimate") else (None, None)
    return {"key": key, "anchor": anchor, "skipped": None,
            "bottom_label": bottom["label"] if bottom else None, "note": entry.get("note"),
            "bottom_wer": fmt_wer(bottom["wer"]) if bottom else "n/a",
            "top_wer": fmt_wer(top["wer"]) if top else "n/a",
            "gap": fmt_gap(entry), "gap_pp": fmt_pp(entry.get("wer_gap_abs")),
            "share": fmt_pct(entry.get("bottom_share_pct")),
            "utt_share": fmt_pct(entry.get("bottom_utterance_share_pct")),
            "cohorts": entry.get("cohort_count", len(entry.get("cohorts", []))),
            "audited": fmt_count(entry.get("audited_speakers")),
            "level": fmt_level(entry.get("ci_level")), "p_value": fmt_p(entry.get("p_value")),
            # the headline: the gap on held-out speakers (the gap as found is inflated by the search)
            "heldout": fmt_pct(held["gap_pct"]) if held.get("estimate") else ("n/a" if held else ""),
            "heldout_ci": fmt_ci(*hci, ratio=False) if hci[0] is not None else "",
            "heldout_reason": None if held.get("estimate") else held.get("reason")}


def build_context(report: dict) -> dict:
    """The template's view of a report: formatted strings and figures (data URIs)."""
    overall = report.get("overall") or {}
    inputs = report.get("inputs") or {}
    options = inputs.get("options") or {}
    redacted = bool(options.get("redact_text"))
    counts_mode = inputs.get("mode") == "counts"
    rate = rate_name(report_unit(report))
    sections, summary = [], []
    with warnings.catch_warnings(), mpl_context():
        # Glyphs missing from the bundled font (CJK, emoji) are drawn as boxes: not an error.
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing")
        warnings.filterwarnings("ignore", message=r".*[Mm]atplotlib currently does not support")
        for i, (key, entry) in enumerate((report.get("discoverers") or {}).items()):
            anchor = f"d{i + 1}"
            summary.append(_summary_row(key, entry, anchor))
            own = section_for(key, entry, report)
            sec = {"key": key, "anchor": anchor, "title": own.title or key, "entry": entry, "method": own.method,
                   "skipped": entry.get("skipped")}
            if not entry.get("skipped"):
                sec.update({
                    "summary": summary[-1], "rows": _cohort_rows(entry, own.cohort_notes),
                    "has_ci": any(c.get("wer_ci_low") is not None for c in entry.get("cohorts", [])),
                    "not_audited": list((entry.get("not_audited") or {}).items()),
                    "params": fact_rows(entry.get("params")),
                    "bars": bar_chart(entry, overall.get("wer"), rate),
                    "honest": _honest_facts(entry), "facts": own.facts, "intro": own.intro,
                    "figures": own.figures, "blocks": own.blocks, "definitions": own.cohort_definitions,
                    "worst": _worst(entry, redacted, counts_mode),
                    "rate_ratios": _rate_ratio_rows(entry, bool((report.get("rate_ratios") or {}).get("covariates"))),
                    "bottom": next((c for c in entry.get("cohorts", []) if c["id"] == entry.get("bottom")), None),
                })
            sections.append(sec)
        power = _power(report)
    acc = report.get("accounting") or {}
    page = explore.page_context(report, sections, summary)  # data blocks, the script and its policy
    return {
        "report": report, "overall": overall, "accounting": acc,
        "dropped": [(k, v) for k, v in (acc.get("dropped") or {}).items()],
        "matching": _matching(report),
        "attribute_missing": list((acc.get("attribute_missing") or {}).items()),
        "na_values": inputs.get("na_values"), "missing_attribute": inputs.get("missing_attribute", "unknown"),
        "warnings": [*(acc.get("warnings") or []), *(report.get("warnings") or [])],
        "summary": summary, "sections": sections, "worse_than_rest": _worse_than_rest(report),
        "show_p": any(r.get("p_value") for r in summary),
        "show_heldout": any(r.get("heldout") for r in summary),
        "show_heldout_ci": any(r.get("heldout_ci") for r in summary),
        "level": next((r["level"] for r in summary if r.get("heldout_ci")), fmt_level(None)),
        "overall_ci": fmt_ci(*_interval(overall.get("wer_ci"))),
        "files": inputs.get("files") or [], "normalization": inputs.get("normalization") or {},
        "options": fact_rows(options), "mode": inputs.get("mode"),
        "tool": report.get("tool") or {}, "schema_version": report.get("schema_version"),
        "redacted": redacted, "power": power, "systems": _systems_table(report), "explore": page,
        "fmt_wer": fmt_wer, "fmt_pct": fmt_pct, "fmt_level": fmt_level, "fmt_pp": fmt_pp, "fmt_count": fmt_count,
        **unit_context(report),
    }


def unit_context(report: dict) -> dict:
    """What the report's rate is called (WER, CER, MER) and what its tokens are, for every
    header; the numbers keep their field names (``wer``, ``ref_words``)."""
    unit = report_unit(report)
    return {"rate": rate_name(unit), "rate_title": RATE_TITLES[unit], "tokens": TOKEN_NAMES[unit], "unit": unit,
            "alignment": (report.get("inputs") or {}).get("alignment") or "jiwer"}


def _systems_table(report: dict) -> dict | None:
    """Several systems audited side by side: per discoverer, each system's bottom cohort,
    its WER, the gap and the share (the sections below show the first system)."""
    systems = report.get("systems")
    if not systems:
        return None
    names = list(systems)
    overall = [fmt_wer((systems[n].get("overall") or {}).get("wer")) for n in names]
    keys = list(report.get("discoverers") or {})
    rows = []
    for key in keys:
        cells = []
        for n in names:
            entry = (systems[n].get("discoverers") or {}).get(key) or {}
            if entry.get("skipped") or not entry:
                cells.append({"skipped": True})
                continue
            bottom = next((c for c in entry.get("cohorts", []) if c["id"] == entry.get("bottom")), None)
            cells.append({"skipped": False, "label": bottom["label"] if bottom else "n/a",
                          "wer": fmt_wer(bottom["wer"]) if bottom else "n/a", "gap": fmt_gap(entry),
                          "share": fmt_pct(entry.get("bottom_share_pct")), "p": fmt_p(entry.get("p_value")),
                          # the bottom cohort vs the rest (every-cohort tests; --adjust)
                          "rr": num.rate_ratio_block(entry["rate_ratio"]) if entry.get("rate_ratio") else None,
                          "adj": num.rate_ratio_block(entry["adjusted"]) if entry.get("adjusted") else None})
        rows.append({"key": key, "cells": cells})
    return {"names": names, "overall": overall, "rows": rows, "first": report.get("system") or names[0]}


def _honest_facts(entry: dict) -> list[tuple[str, str]]:
    """Uncertainty and selection-bias checks of the gap, when the audit computed them."""
    facts = []
    held = entry.get("heldout") or {}
    if held.get("estimate"):
        lo, hi = _interval(held.get("ci_pct"))
        ci = f", {fmt_level(held.get('level'))} CI {fmt_ci(lo, hi, ratio=False)} %" if lo is not None else ""
        facts.append(("held-out gap", f"{fmt_pct(held['gap_pct'])} %{ci}: cohorts found on some speakers, measured "
                                      f"on the others ({held.get('folds')} folds x {held.get('repeats')} random "
                                      "splits); the gap to quote"))
    elif held:
        facts.append(("held-out gap", f"no honest estimate: {held.get('reason')}"))
    lo, hi = _interval(entry.get("wer_gap_ci_pct"))
    boot = entry.get("bootstrap") or {}
    if lo is not None:
        n = f" ({boot['n']:,} resamples of {boot.get('unit', 'speaker')}s)" if isinstance(boot.get("n"), int) else ""
        facts.append((f"gap as found, {fmt_level(entry.get('ci_level'))} CI",
                      f"{fmt_ci(lo, hi, ratio=False)} %{n}, the found cohorts held fixed: it ignores the search "
                      "that chose them, so it is not an interval for the disparity"))
    perm = entry.get("permutation") or {}
    if perm.get("null_gap_median_pct") is not None or entry.get("p_value") is not None:
        text = "the same search on data whose speakers' errors are shuffled"
        used = perm.get("permutations_used")
        if perm.get("stopped_early") and isinstance(used, int) and isinstance(perm.get("n"), int):
            # Besag-Clifford: stopped at the stop_after-th null value >= the observed one
            text += (f" ({used:,} of {perm['n']:,} times: stopped at the {perm.get('stop_after')}th null value "
                     f"at least the observed one)")
        elif isinstance(perm.get("n"), int):
            text += f" ({perm['n']:,} times)"
        if perm.get("null_gap_median_pct") is not None:
            text += f" finds a median gap of {fmt_pct(perm['null_gap_median_pct'])} %"
            if perm.get("null_gap_p95_pct") is not None:
                text += f" (95th percentile {fmt_pct(perm['null_gap_p95_pct'])} %)"
        if entry.get("p_value") is not None:
            text += f"; p = {fmt_p(entry['p_value'])}"
        facts.append(("permutation null", text))
    return facts


def _power(report: dict) -> dict | None:
    """The optional "power" section (added by `fairaudit power`): detectable gap vs cohort share."""
    power = report.get("power")
    if not isinstance(power, dict) or not isinstance(power.get("discoverers"), dict):
        return None
    settings = power.get("settings") or {}
    gaps = settings.get("gaps_pct") or []
    top = float(max(gaps)) if gaps else None
    rows, readings, series = [], [], []
    for key, d in power["discoverers"].items():
        if not isinstance(d, dict):
            continue
        if d.get("skipped"):
            rows.append({"key": key, "cohort": f"skipped: {d['skipped']}", "share": "", "speakers": "", "gap": ""})
            continue
        xs, ys, miss = [], [], []
        for r in d.get("shares") or []:
            g = r.get("min_detectable_gap_pct")
            share = r.get("planted_share_pct") if r.get("label") is not None else r.get("target_share_pct")
            rows.append({"key": key, "cohort": r.get("label") or f"{fmt_pct(r.get('target_share_pct'), 0)} % cohort",
                         "share": fmt_pct(r.get("planted_share_pct")), "speakers": fmt_count(r.get("planted_speakers")),
                         "gap": (f"> {top:g}" if top is not None else "not reached") if g is None else num.whole_pct(g)})
            if r.get("reading"):
                readings.append(str(r["reading"]))
            if share is not None and share > 0:
                (xs if g is not None else miss).append(float(share))
                if g is not None:
                    ys.append(float(g))
        series.append((key, xs, ys, miss))
    power_figure = None
    if any(xs or miss for _, xs, _, miss in series):
        import matplotlib.ticker
        fig = figure(7.5, 3.8)
        ax = fig.add_subplot()
        ceiling = (top or max((y for _, _, ys, _ in series for y in ys), default=100.0)) * 1.15
        for i, (key, xs, ys, miss) in enumerate(series):
            color = f"C{i % 10}"
            if xs:
                ax.plot(xs, ys, marker="o", color=color, label=short(key, 30))
            if miss:
                ax.scatter(miss, [ceiling] * len(miss), marker="^", color=color, label=None if xs else short(key, 30))
        ax.axhline(ceiling, color="#999999", linewidth=0.6, linestyle=":")
        ax.text(0.99, ceiling, "▲ not detectable up to the largest planted gap ", fontsize=7, va="bottom", ha="right",
                transform=ax.get_yaxis_transform(), color="#666666")
        ax.set_xscale("log")
        # Plain tick labels: math text is off in these figures (labels are untrusted text).
        ticks = [0.5, 1, 2, 5, 10, 25, 50, 100]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        lo = min((x for _, xs, _, miss in series for x in (*xs, *miss)), default=1.0)
        ax.set_xlim(min(lo, 1.0) * 0.8, 100)
        ax.set_xlabel("bottom-cohort share (% of audited speakers)")
        ax.set_ylabel(f"smallest gap found {num.ratio_as_pct(float(settings.get('power', 0.8)))} of the time (%)")
        ax.set_ylim(0, ceiling * 1.12)
        ax.grid(color="#eeeeee", linewidth=0.6)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        power_figure = {"src": png(fig), "alt": "smallest detectable WER gap against bottom-cohort share, per discoverer",
                  "width": int(7.5 * DPI)}
    return {"rows": rows, "readings": readings, "figure": power_figure, "method": power.get("method") or "",
            "simulations": settings.get("simulations"), "alpha": settings.get("alpha"),
            "power": settings.get("power")}


def _matching(report: dict) -> list[dict]:
    """Per system with its own hypothesis file: how its hypotheses met the references
    (``inputs.matching``) and its rows read = scored + dropped."""
    systems = report.get("systems") or {}
    out = []
    for name, m in ((report.get("inputs") or {}).get("matching") or {}).items():
        acc = (systems.get(name) or report).get("accounting") or {}
        out.append({"name": name, **m, "rows_read": acc.get("rows_read"), "rows_scored": acc.get("rows_scored"),
                    "rows_dropped": acc.get("rows_dropped")})
    return out
