"""The console view: the seed paper's table (bottom cohort, its WER, WER gap %, share %)."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fairaudit import numbers as num
from fairaudit.result import AuditResult
from fairaudit.units import rate_name, report_unit


def summary_table(result: AuditResult, system: str | None = None) -> Table:
    """A rich Table with one row per discoverer (skipped ones say why)."""
    o = result.overall
    rate = rate_name(report_unit(result.report))
    name = f" \\[{escape(system)}]" if system else ""
    table = Table(title=f"fairaudit{name}: overall {rate} {num.wer(o['wer'])} %, {o['speakers']:,} speakers, "
                        f"{o['utterances']:,} utterances", title_justify="left")
    table.add_column("Discoverer", no_wrap=True)
    table.add_column("Bottom cohort", overflow="fold", min_width=34, max_width=60)
    # The held-out gap (cohorts found on other speakers) is the headline; the gap as found
    # is inflated by the search, so it has no interval here (its fixed-cohort bootstrap
    # interval stays in report.json with its caveat).
    for name in (f"Bottom {rate} %", f"Top {rate} %", f"Held-out {rate} gap %", "Held-out CI",
                 f"{rate} gap % as found", "Null p95 %", "p", "Bottom share %", "Cohorts", "Speakers"):
        table.add_column(name, justify="right", no_wrap=True)
    for key, d in result.discoverers.items():
        if d.get("skipped"):
            table.add_row(Text(key), Text(f"skipped: {d['skipped']}", style="dim"), *[""] * 10)
            continue
        by_id = {c["id"]: c for c in d["cohorts"]}
        bottom, top = by_id.get(d["bottom"]), by_id.get(d["top"])
        perm = d.get("permutation") or {}
        table.add_row(Text(key), Text(bottom["label"] if bottom else d.get("note", "n/a")),
                      num.wer(bottom["wer"]) if bottom else "n/a", num.wer(top["wer"]) if top else "n/a",
                      num.heldout_gap(d), num.heldout_interval(d), num.gap(d),
                      num.pct(perm.get("null_gap_p95_pct")), num.p_value(d.get("p_value"), num.NA),
                      num.pct(d["bottom_share_pct"]), str(d["cohort_count"]), f"{d['audited_speakers']:,}")
    return table


def print_report(result: AuditResult, console: Console | None = None) -> None:
    """Print the summary table, what each discoverer left out, and the row accounting."""
    console = console or Console(highlight=False)
    systems = result.system_names if result.report.get("systems") else []
    if systems:
        for name in systems:
            console.print(summary_table(result.for_system(name), name))
        console.print(side_by_side_table(result))
    else:
        console.print(summary_table(result))
    for key, d in result.discoverers.items():
        for reason, n in (d.get("not_audited") or {}).items():
            console.print(Text(f"  {key}: {n:,} speaker(s) not audited: {reason}", style="dim"))
    acc = result.report["accounting"]
    console.print(Text(f"rows read {acc['rows_read']:,} = scored {acc['rows_scored']:,} + dropped {acc['rows_dropped']:,}"))
    for reason, d in acc["dropped"].items():
        example = f", e.g. {d['examples'][0]}" if d.get("examples") else ""
        console.print(Text(f"  dropped {d['rows']:,}: {reason} ({d['reason']}{example})", style="dim"))
    for w in [*acc.get("warnings", []), *result.report.get("warnings", [])]:
        console.print(Text(f"  warning: {w}", style="yellow"))


def side_by_side_table(result: AuditResult) -> Table:
    """Systems side by side: per discoverer, each system's WER gap % and bottom-cohort share %."""
    systems = result.system_names
    rate = rate_name(report_unit(result.report))
    table = Table(title=f"systems side by side: {rate} gap % (bottom-cohort share %)", title_justify="left")
    table.add_column("Discoverer", no_wrap=True)
    for name in systems:
        table.add_column(Text(name), justify="right", no_wrap=True)
    overall = [f"{num.wer(result.for_system(n).overall['wer'])} % {rate}" for n in systems]
    table.add_row("overall", *overall)
    for key in result.discoverers:
        cells = []
        for name in systems:
            d = result.for_system(name).discoverers.get(key, {})
            gap = num.gap(d)
            cells.append("skipped" if d.get("skipped") else f"{gap} ({num.pct(d.get('bottom_share_pct'))})")
        table.add_row(Text(key), *cells)
    return table


def comparison_table(result: AuditResult) -> list[Table]:
    """Tables of a `fairaudit compare` result: overall ΔWER, then per discoverer each cohort."""
    rep = result.report
    base, cand = rep["baseline"], rep["candidate"]
    rate = rate_name(report_unit(rep))
    o = rep["overall"]
    head = Table(title=f"compare: {base} (baseline) vs {cand} (candidate) on the same cohorts", title_justify="left")
    for col in ("", f"{rate} {base} %", f"{rate} {cand} %", f"Δ{rate} points", "95% CI", "p"):
        head.add_column(Text(col), justify="right" if col else "left", no_wrap=True)
    head.add_row("overall", num.wer(o[base]["wer"]), num.wer(o[cand]["wer"]), num.delta(o["delta_wer"]),
                 num.delta_interval(o.get("ci_low"), o.get("ci_high")), num.p_value(o.get("p_value"), num.NA))
    tables = [head]
    for key, d in rep["discoverers"].items():
        if d.get("skipped"):
            t = Table(title=f"{key}: skipped: {d['skipped']}", title_justify="left")
            tables.append(t)
            continue
        gb, gc = d["gap"][base], d["gap"][cand]
        t = Table(title=f"{key}: {rate} gap {num.gap(gb)} % ({base}) -> {num.gap(gc)} % ({cand})",
                  title_justify="left")
        for col in ("Cohort", "Speakers", f"{rate} {base} %", f"{rate} {cand} %", f"Δ{rate} points", "95% CI", "p"):
            t.add_column(Text(col), justify="left" if col == "Cohort" else "right", no_wrap=col != "Cohort",
                         overflow="fold", max_width=60 if col == "Cohort" else None)
        for c in d["cohorts"]:
            label = c["label"] + (" (too few speakers)" if c.get("too_few_speakers") else "")
            t.add_row(Text(label), str(c["speakers"]), num.wer(c["wer"][base]), num.wer(c["wer"][cand]),
                      num.delta(c["delta_wer"]), num.delta_interval(c.get("ci_low"), c.get("ci_high")), num.p_value(c.get("p_value"), num.NA))
        tables.append(t)
    return tables
