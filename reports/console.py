"""The console view: the seed paper's table (bottom cohort, its WER, WER gap %, share %)."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fairaudit.result import AuditResult


def _pct(x, digits=1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _wer(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def summary_table(result: AuditResult, system: str | None = None) -> Table:
    """A rich Table with one row per discoverer (skipped ones say why)."""
    o = result.overall
    name = f" \\[{escape(system)}]" if system else ""
    table = Table(title=f"fairaudit{name}: overall WER {_wer(o['wer'])} %, {o['speakers']:,} speakers, "
                        f"{o['utterances']:,} utterances", title_justify="left")
    table.add_column("Discoverer", no_wrap=True)
    table.add_column("Bottom cohort", overflow="fold", max_width=60)
    for name in ("Bottom WER %", "Top WER %", "WER gap %", "Bottom share %", "Cohorts", "Speakers audited"):
        table.add_column(name, justify="right", no_wrap=True)
    for key, d in result.discoverers.items():
        if d.get("skipped"):
            table.add_row(Text(key), Text(f"skipped: {d['skipped']}", style="dim"), "", "", "", "", "", "")
            continue
        by_id = {c["id"]: c for c in d["cohorts"]}
        bottom, top = by_id.get(d["bottom"]), by_id.get(d["top"])
        gap = _pct(d["wer_gap_pct"]) if d["wer_gap_pct"] is not None else (
            "undefined" if d["wer_gap_abs"] is not None else "n/a")
        table.add_row(Text(key), Text(bottom["label"] if bottom else d.get("note", "n/a")),
                      _wer(bottom["wer"]) if bottom else "n/a", _wer(top["wer"]) if top else "n/a", gap,
                      _pct(d["bottom_share_pct"]), str(d["cohort_count"]), f"{d['audited_speakers']:,}")
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
        console.print(Text(f"  dropped {d['rows']:,}: {reason} ({d['reason']})", style="dim"))
    for w in acc.get("warnings", []):
        console.print(Text(f"  warning: {w}", style="yellow"))


def side_by_side_table(result: AuditResult) -> Table:
    """Systems side by side: per discoverer, each system's WER gap % and bottom-cohort share %."""
    systems = result.system_names
    table = Table(title="systems side by side: WER gap % (bottom-cohort share %)", title_justify="left")
    table.add_column("Discoverer", no_wrap=True)
    for name in systems:
        table.add_column(Text(name), justify="right", no_wrap=True)
    overall = [f"{_wer(result.for_system(n).overall['wer'])} % WER" for n in systems]
    table.add_row("overall", *overall)
    for key in result.discoverers:
        cells = []
        for name in systems:
            d = result.for_system(name).discoverers.get(key, {})
            gap = _pct(d.get("wer_gap_pct")) if d.get("wer_gap_pct") is not None else (
                "undefined" if d.get("wer_gap_abs") is not None else "n/a")
            cells.append("skipped" if d.get("skipped") else f"{gap} ({_pct(d.get('bottom_share_pct'))})")
        table.add_row(Text(key), *cells)
    return table
