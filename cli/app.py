"""`fairaudit` commands."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Annotated, Optional

import typer

from fairaudit import __version__
from fairaudit import numbers as num
from fairaudit.audit import score_input
from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec
from fairaudit.io.writers import write_table
from fairaudit.speakers import UTTERANCE_COLUMNS
from fairaudit.stats.permutation import SEQUENTIAL_STOP_AFTER
from fairaudit.stats.report import stage
from fairaudit.units import TOKEN_NAMES, rate_name

from fairaudit.outputs import shown

from . import common as c
from .guards import checked

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Audit speech recognisers for performance fairness.")

Engine = Annotated[str, typer.Option("--engine", help="How to read and score: auto (streaming above 500 MB), default (in memory), streaming (bounded memory), dask (a dask.distributed cluster).")]
Scheduler = Annotated[Optional[str], typer.Option("--scheduler", help="With --engine dask: address of a running dask.distributed scheduler (default: a local cluster, one worker per core).")]
ChunkRows = Annotated[Optional[int], typer.Option("--chunk-rows", help="With --engine streaming: rows per chunk (default 500000).")]

# Inputs shorter than this score in well under a second: no progress bar.
_PROGRESS_MIN_ROWS = 50_000


def _version(value: bool):
    if value:
        print(f"fairaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version.")] = False):
    pass


def _check_out_format(fmt: str) -> str:
    if fmt not in ("csv", "parquet"):
        raise UserInputError(f"unknown output format {fmt!r}", hint="--format takes csv or parquet")
    return fmt


@app.command()
@c.user_errors
@checked()
@c.with_input
def score(
    spec: InputSpec,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "fairaudit_out",
    speakers: c.Speakers = None, normalize: c.Normalize = "default", unit: c.Unit = "word", align: c.Align = "jiwer",
    format: Annotated[str, typer.Option("--format", help="Output table format: csv|parquet.")] = "csv",
    workers: c.Workers = None, quiet: c.Quiet = False,
    engine: Engine = "auto", scheduler: Scheduler = None, chunk_rows: ChunkRows = None,
):
    """Score a decoded test set: per-utterance and per-speaker word errors, and row accounting."""
    _check_out_format(format)
    with c.progress_bar("scoring", None, not quiet) as progress:
        scored = score_input(spec, normalize, speakers, workers=workers, progress=progress, engine=engine,
                             chunk_rows=chunk_rows, scheduler=scheduler, unit=unit, alignment=align)
    os.makedirs(out, exist_ok=True)
    write_table(scored.utterances[UTTERANCE_COLUMNS], os.path.join(out, "utterance_scores"), format)
    write_table(scored.speakers, os.path.join(out, "speaker_scores"), format)
    accounting = scored.accounting.to_dict() | {"normalization": normalize, "mode": scored.mode, "unit": unit,
                                                "rate": rate_name(unit), "alignment": align, **scored.input_report}
    with open(os.path.join(out, "accounting.json"), "w", encoding="utf-8") as fh:
        json.dump(accounting, fh, indent=2)
    if not quiet:
        print_summary(scored, shown(out))


@app.command()
@c.user_errors
@checked()
@c.with_input
@c.with_discovery
def audit(
    spec: InputSpec,
    discovery: c.DiscoveryOptions,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "fairaudit_out",
    speakers: c.Speakers = None, normalize: c.Normalize = "default", unit: c.Unit = "word", align: c.Align = "jiwer",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples of speakers for confidence intervals (0: none).")] = 1000,
    permutations: Annotated[int, typer.Option("--permutations", help="Permutations for each discoverer's selection-corrected p-value (0: none).")] = 200,
    permutations_stop_after: Annotated[int, typer.Option("--permutations-stop-after", help="Sequential p-value (Besag-Clifford): stop a discoverer's permutations at the H-th null gap >= the observed one (p = H / permutations run); 0: always run --permutations.")] = SEQUENTIAL_STOP_AFTER,
    ci_level: Annotated[float, typer.Option("--ci-level", help="Confidence level of the intervals.")] = 0.95,
    honest_gap: Annotated[bool, typer.Option("--honest-gap/--no-honest-gap", help="Also measure each gap on held-out speakers (discover on some speakers, measure on the others).")] = True,
    heldout_splits: Annotated[int, typer.Option("--heldout-splits", min=1, help="Random repetitions of the speaker split for the held-out gap.")] = 5,
    heldout_folds: Annotated[int, typer.Option("--heldout-folds", min=2, help="Folds of speakers for the held-out gap (each held out once per repetition).")] = 2,
    adjust: Annotated[Optional[list[str]], typer.Option("--adjust", help="Covariates for adjusted rate ratios (comma-separated or repeated; utterance- or speaker-level columns, numeric or categorical; ref_words = utterance length), e.g. --adjust device,snr_db.")] = None,
    adjust_model: Annotated[str, typer.Option("--adjust-model", help="gee (Poisson GEE, speaker clusters) or frailty (gamma speaker random intercept).")] = "gee",
    adjust_bins: Annotated[int, typer.Option("--adjust-bins", help="Quantile bins of a numeric covariate.")] = 5,
    cohort_tests: Annotated[bool, typer.Option("--cohort-tests/--no-cohort-tests", help="Test every cohort against the rest (rate ratio, Holm and BH across the audit).")] = True,
    no_html: Annotated[bool, typer.Option("--no-html", help="Do not write report.html.")] = False,
    redact_text: Annotated[bool, typer.Option("--redact-text", help="Keep transcripts out of report.json and report.html.")] = False,
    fail_on_gap: Annotated[Optional[float], typer.Option("--fail-on-gap", help="Gate in one step: exit 1 when a discoverer's WER gap (%) exceeds this, or when no gap could be checked (which gap: --fail-on-gap-basis).")] = None,
    fail_on_gap_basis: Annotated[str, typer.Option("--fail-on-gap-basis", help="Which gap --fail-on-gap checks: headline (the held-out gap when estimated, else the gap as found, labelled), heldout or found (as `fairaudit gate --gap`).", metavar="headline|heldout|found")] = "headline",
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="With --fail-on-gap: pass when no discoverer could be checked.")] = False,
    workers: c.Workers = None, quiet: c.Quiet = False,
    engine: Engine = "auto", scheduler: Scheduler = None, chunk_rows: ChunkRows = None,
    profile: Annotated[bool, typer.Option("--profile", help="Print the wall time of every stage (read, score, each discoverer's discovery, bootstrap, permutations, held-out gap, views) after the run; report.json has them as timings either way.")] = False,
):
    """Score, discover cohorts, and write report.json, cohorts.csv, assignments.csv, speaker_scores.csv, utterance_scores.parquet and report.html."""
    from fairaudit.audit import audit as run_audit
    from fairaudit.reports.console import print_report
    from fairaudit.reports.gate import parse_gap_basis
    from fairaudit.stats import parallel

    # a misspelt basis is a usage error before the audit runs, not after
    basis = parse_gap_basis(fail_on_gap_basis, "--fail-on-gap-basis")
    c.prefetch_input(spec, engine)
    warm = parallel.while_waiting(c.warm_html) if not no_html else contextlib.nullcontext()
    tables = c.ScoredTablesJob(out)
    with c.progress_bar("scoring", None, not quiet) as progress, warm, tables.running():
        result = run_audit(spec, speakers=speakers, normalization=normalize, **discovery.audit_kwargs(),
                           workers=workers, progress=progress, redact_text=redact_text, n_boot=bootstrap,
                           n_perm=permutations, ci_level=ci_level, honest=honest_gap, engine=engine,
                           chunk_rows=chunk_rows, scheduler=scheduler, unit=unit, alignment=align,
                           adjust=adjust or (), adjust_model=adjust_model, adjust_bins=adjust_bins,
                           cohort_tests=cohort_tests,
                           heldout_splits=heldout_splits, heldout_folds=heldout_folds,
                           perm_stop_after=permutations_stop_after, on_scored=tables.start)
    written = ["report.json", "cohorts.csv", "assignments.csv", "speaker_scores.csv", "utterance_scores.parquet"]
    # The HTML page is rendered beside the tables and the console view on large audits
    # (a forked process: they need only the finished result).
    # (the scored tables' writer finished long ago, beside discovery: its error, if any, first)
    early = tables.finish(result.timings)
    html = None if no_html else c.start_html(result, os.path.join(out, "report.html"))
    result.save(out, report=False, written=early)
    if not quiet:
        with stage(result.timings, "views:console"):
            print_report(result, c.out_console)
    # report.json's text while the page renders; its timings, with the views', added last
    body = result.to_json() if html is not None else None
    if html is not None:
        result.timings["views:html"] = html.finish()
        written.append("report.html")
    result.save_report(out, body=body)
    if not quiet:
        c.out_console.print(f"wrote {shown(out)}/: {', '.join(written)}")
    if profile:
        from fairaudit.profile import format_rows, stage_rows

        c.out_console.print(format_rows(stage_rows(result.timings)), markup=False, highlight=False)
    if fail_on_gap is not None:
        from fairaudit.reports.gate import GateConfig

        from .cmd_gate import run_gate

        raise typer.Exit(run_gate(result.report, GateConfig(max_gap_pct=fail_on_gap, allow_empty=allow_empty,
                                                            gap=basis), quiet=quiet))


def print_summary(scored, out: str | None = None) -> None:
    o = scored.overall
    acc = scored.accounting
    con = c.out_console
    wer = num.wer_pct(o["wer"])
    con.print(f"{rate_name(scored.unit)} {wer}  ({o['errors']:,} errors / {o['ref_words']:,} reference "
              f"{TOKEN_NAMES[scored.unit]})  speakers {o['speakers']:,}  utterances {o['utterances']:,}  "
              f"normalisation: {scored.normalization}, alignment: {scored.alignment}")
    from fairaudit.reports.console import print_inputs

    print_inputs({"inputs": scored.input_report, "accounting": acc.to_dict()}, con)
    con.print(f"rows read {acc.rows_read:,} = scored {acc.rows_scored:,} + dropped {acc.rows_dropped:,}")
    for reason, n in sorted(acc.dropped.items()):
        example = f" (e.g. {acc.examples[reason][0]})" if acc.examples.get(reason) else ""
        con.print(f"  dropped {n:,}: {reason}{example}", markup=False)
    if acc.empty_reference_insertions:
        con.print(f"  ({acc.empty_reference_insertions:,} inserted words in empty-reference rows, outside every WER)")
    for w in acc.warnings:
        con.print(f"  warning: {w}")
    if out:
        con.print(f"wrote {out}/")


def main() -> None:
    """The ``fairaudit`` console command."""
    from fairaudit import allocator

    allocator.tune()   # reuse freed memory: fewer page faults (see fairaudit.allocator)
    try:
        app()
    except SystemExit as exc:
        _exit_now(exc.code)
        raise
    _exit_now(0)


def _exit_now(code) -> None:
    """End the process at once with ``code`` once the exit handlers ran and the output is
    flushed: tearing the interpreter down object by object took ~0.6 s after a large audit
    (1.4 GB of tables and arrays freed one at a time) for nothing the user sees.  Returns
    (the caller exits normally) for a message exit code or when the output cannot be
    flushed (a closed pipe: Python's own exit reports it)."""
    import atexit

    if code is not None and not isinstance(code, int):
        return
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        return
    os._exit(code or 0)


# Commands defined in their own modules register themselves on `app` when imported.
from . import commands  # noqa: E402,F401
