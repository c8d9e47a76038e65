"""`fairaudit gate`: exit 0 pass, 1 a check failed, 2 usage or input error."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from fairaudit.errors import UserInputError
from fairaudit.result import AuditResult

from . import common as c
from .app import app


def run_gate(report: dict, cfg, baseline: dict | None = None, junit: str | None = None,
             markdown_path: str | None = None, quiet: bool = False) -> int:
    """Evaluate, print one verdict line per check, write JUnit/Markdown; returns the exit code."""
    from fairaudit.reports.gate import evaluate, junit_xml, markdown, why_no_checks

    checks = evaluate(report, cfg, baseline)
    if not checks:
        # A gate that checked nothing has not passed: say why, exit 1 unless allowed.
        why = why_no_checks(report, cfg)
        if cfg.allow_empty:
            c.out_console.print(f"gate: passed: no checks ran ({why}); allowed by --allow-empty", markup=False)
            return 0
        c.out_console.print(f"gate: FAILED: no checks ran ({why}); pass --allow-empty to accept an empty gate",
                            markup=False)
        return 1
    for chk in checks:
        if not quiet or not chk.passed:
            c.out_console.print(chk.line(), markup=False, style="green" if chk.passed else "bold red")
    failed = sum(not ch.passed for ch in checks)
    c.out_console.print(f"gate: {'FAILED' if failed else 'passed'}: {len(checks) - failed} of {len(checks)} checks passed",
                        markup=False)
    for path, text in ((junit, junit_xml(checks) if junit else None),
                       (markdown_path, markdown(checks) if markdown_path else None)):
        if path:
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError as exc:
                raise UserInputError(f"cannot write: {exc.strerror}", path=path) from exc
    return 1 if failed else 0


@app.command("gate")
@c.user_errors
def gate(
    report: Annotated[str, typer.Argument(help="report.json of `fairaudit audit` (or compare.json of `fairaudit compare`).")],
    max_gap_pct: Annotated[Optional[float], typer.Option("--max-gap-pct", help="Fail when a discoverer's WER gap (%) exceeds this (which gap: --gap).")] = None,
    gap: Annotated[Optional[str], typer.Option("--gap", help="Which gap --max-gap-pct (and, on both reports, --max-gap-increase-pct) checks: headline (default: the held-out gap when the report has an estimate, else the gap as found, labelled), heldout (fail when there is none) or found (as found on the speakers that chose the cohorts: inflated by the search); config key `gap`.", metavar="headline|heldout|found")] = None,
    max_bottom_wer: Annotated[Optional[str], typer.Option("--max-bottom-wer", help="Fail when a bottom cohort's WER exceeds this (0.15 or '15%').")] = None,
    max_overall_wer: Annotated[Optional[str], typer.Option("--max-overall-wer", help="Fail when the overall WER exceeds this (0.15 or '15%').")] = None,
    discoverers: Annotated[Optional[str], typer.Option("--discoverers", help="Comma-separated discoverers to check (default: all that ran); config key `discoverers`. A named discoverer the report lacks or skipped fails the gate.")] = None,
    discoverer: Annotated[Optional[str], typer.Option("--discoverer", hidden=True, help="Old spelling of --discoverers.")] = None,
    allow_empty: Annotated[Optional[bool], typer.Option("--allow-empty/--no-allow-empty", help="Pass when no check could run (default: fail: a gate that checked nothing has not passed).", show_default=False)] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="An earlier report.json to compare gaps with.")] = None,
    max_gap_increase_pct: Annotated[Optional[float], typer.Option("--max-gap-increase-pct", help="Fail when a gap grew by more than this many percentage points vs --baseline (both gaps on the --gap basis: held-out on both when both have one).")] = None,
    max_delta_wer: Annotated[Optional[str], typer.Option("--max-delta-wer", help="compare.json: fail when a cohort's WER grew by more than this (0.01 or '1%').")] = None,
    max_adjusted_ratio: Annotated[Optional[float], typer.Option("--max-adjusted-ratio", help="Fail when a cohort's adjusted rate ratio vs the rest (audit --adjust) exceeds this, e.g. 1.25.")] = None,
    require_significant: Annotated[Optional[bool], typer.Option("--require-significant/--no-require-significant", help="Waive a failed gap check when the permutation p-value is >= 0.05.")] = None,
    config: Annotated[Optional[str], typer.Option("--config", help="TOML file with a [gate] table (default: ./fairaudit.toml, then [tool.fairaudit.gate] in ./pyproject.toml).")] = None,
    junit: Annotated[Optional[str], typer.Option("--junit", help="Write JUnit XML here (one testcase per check).")] = None,
    markdown: Annotated[Optional[str], typer.Option("--markdown", help="Write a Markdown summary here.")] = None,
    allow_normalizer_change: c.AllowNormalizerChange = False,
    quiet: c.Quiet = False,
):
    """Check a saved audit against thresholds: exit 0 pass, 1 fail, 2 usage/input error."""
    from fairaudit.reports.gate import load_config, parse_gap_basis, parse_wer

    cfg = load_config(config)
    if gap is not None:
        cfg.gap = parse_gap_basis(gap, "--gap")
    # Flags override the config file.
    for name, value in (("max_gap_pct", max_gap_pct), ("max_gap_increase_pct", max_gap_increase_pct),
                        ("max_adjusted_ratio", max_adjusted_ratio),
                        ("baseline", baseline), ("require_significant", require_significant),
                        ("allow_empty", allow_empty)):
        if value is not None:
            setattr(cfg, name, value)
    for name, value in (("max_bottom_wer", max_bottom_wer), ("max_overall_wer", max_overall_wer),
                        ("max_delta_wer", max_delta_wer)):
        if value is not None:
            setattr(cfg, name, parse_wer(value, f"--{name.replace('_', '-')}"))
    named = discoverers or discoverer
    if named:
        cfg.discoverers = [d.strip() for d in named.split(",") if d.strip()]
    doc = AuditResult.load(report).report
    base = AuditResult.load(cfg.baseline).report if cfg.baseline else None
    if base is not None:
        from fairaudit.fingerprint import check_comparable

        # Gaps are only comparable when both reports were scored the same way.
        allowed = check_comparable(doc, base, allow_normalizer_change=allow_normalizer_change, path=cfg.baseline)
        if allowed and not quiet:
            c.out_console.print("warning: comparing despite a different normaliser (--allow-normalizer-change): "
                                + "; ".join(allowed), markup=False, style="yellow")
    if cfg.max_gap_increase_pct is not None and base is None and doc.get("kind") != "comparison":
        raise UserInputError("--max-gap-increase-pct needs --baseline OLD.json")
    raise typer.Exit(run_gate(doc, cfg, base, junit, markdown, quiet))
