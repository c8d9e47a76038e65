"""`fairaudit export` and `fairaudit assign`: from discovered cohorts to the data that fixes them."""
from __future__ import annotations

import json
import os
from typing import Annotated, Optional

import typer
from rich.table import Table

from fairaudit import numbers as num
from fairaudit.discover.sides import side_flags
from fairaudit.errors import UserInputError

from fairaudit.outputs import shown

from . import common as c
from .guards import checked
from .app import app

ReportArg = Annotated[str, typer.Argument(metavar="REPORT_JSON", show_default=False,
                                          help="report.json written by `fairaudit audit` (or its folder).")]


def _formats(values: list[str] | None) -> list[str]:
    """--format given as repeated flags and/or comma-separated lists."""
    out = [f.strip() for v in (values or ["csv"]) for f in v.split(",") if f.strip()]
    return out or ["csv"]


@app.command("export")
@c.user_errors
@checked(encoding=False)
def export(
    report_json: ReportArg,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "fairaudit_export",
    cohorts: Annotated[Optional[str], typer.Option("--cohorts", help="Which cohorts: bottom (each discoverer's bottom cohort), worse (those the audit found worse than the rest after multiplicity control: needs report.json's rate_ratios.worse_than_rest) or all [default: bottom, unless --cohort is given].", show_default=False)] = None,
    cohort: Annotated[Optional[list[str]], typer.Option("--cohort", metavar="KEY:ID", help="A cohort by name, as in assignments.csv: geographic:R03, attribute:gender:A01; repeatable, added to --cohorts.", show_default=False)] = None,
    discoverer: Annotated[Optional[list[str]], typer.Option("--discoverer", help="Restrict --cohorts to this discoverer (report key); repeatable.", show_default=False)] = None,
    format: Annotated[Optional[list[str]], typer.Option("--format", help="Manifest formats: csv, jsonl, nemo, kaldi, hf (Hugging Face datasets JSONL); repeatable or comma-separated [default: csv].", show_default=False)] = None,
    dev_fraction: Annotated[float, typer.Option("--dev-fraction", help="Share of each cohort's speakers in the dev split (0: no dev); no speaker is in both.")] = 0.1,
    seed: c.Seed = 0,
    weight_cap: Annotated[float, typer.Option("--weight-cap", help="Largest raw sample weight (ratio >= 1; 1 = no reweighting); see docs/methods.md.")] = 3.0,
    utterances: Annotated[Optional[str], typer.Option("--utterances", "--input", help="The utterance table the audit read (transcripts, audio paths; the utterance ids when the report folder has no utterance_scores.parquet) [default: the file report.json records].", show_default=False)] = None,
    input_format: Annotated[Optional[str], typer.Option("--input-format", help="Format of --utterances when its extension does not say: csv|tsv|jsonl|parquet|kaldi|trn|nemo.", show_default=False)] = None,
    audio_col: Annotated[Optional[str], typer.Option("--audio-col", help="Audio-path column of the utterance table [default: the first of audio_filepath, audio_path, audio, path, wav, ...].", show_default=False)] = None,
    duration_col: Annotated[Optional[str], typer.Option("--duration-col", help="Duration column (seconds) [default: duration if present; else measured from WAV headers].", show_default=False)] = None,
    wav_scp: Annotated[Optional[str], typer.Option("--wav-scp", help="Kaldi wav.scp giving each utterance's audio (any input).", show_default=False)] = None,
    audio_root: Annotated[Optional[str], typer.Option("--audio-root", help="Folder that relative audio paths are under.", show_default=False)] = None,
    normalize_text: Annotated[bool, typer.Option("--normalize-text", help="Write transcripts normalised as the audit scored them (default: as in the input).")] = False,
    kaldi_wav_command: Annotated[Optional[str], typer.Option("--kaldi-wav-command", help="wav.scp entry for an audio file, {path} replaced by the quoted path [default: the path for WAV, 'sox {path} -t wav - |' otherwise].", show_default=False)] = None,
    quiet: c.Quiet = False,
):
    """Training manifests of the under-served cohorts (train/dev split by speaker), sample weights and cohort features."""
    from fairaudit.export import export as run_export
    from fairaudit.result import AuditResult

    result = AuditResult.load(report_json)
    summary = run_export(result, out, cohorts=cohorts, named=cohort or (), discoverers=discoverer,
                         formats=_formats(format), dev_fraction=dev_fraction, seed=seed, weight_cap=weight_cap,
                         input_path=utterances, input_format=input_format, audio_col=audio_col,
                         duration_col=duration_col, wav_scp=wav_scp, audio_root=audio_root,
                         normalize_text=normalize_text, kaldi_wav_command=kaldi_wav_command)
    if not quiet:
        print_export(summary, shown(out))


def print_export(summary: dict, out: str) -> None:
    """The export in a few lines: cohorts chosen, rows per format and split, weights."""
    con = c.out_console
    table = Table(title="cohorts exported", title_justify="left")
    for col in ("cohort", "label", "speakers", "utterances", "WER", "why"):
        table.add_column(col, justify="right" if col in ("speakers", "utterances", "WER") else "left")
    for s in summary["selection"]:
        table.add_row(s["name"], s["label"], num.count(s["speakers"]), num.count(s["utterances"]),
                      num.wer_pct(s["wer"]) if s["wer"] is not None else "–", s["why"])
    con.print(table)
    sp = summary["split"]
    con.print(f"split by speaker (seed {sp['seed']}): train {num.count(sp['train']['speakers'])} speakers / "
              f"{num.count(sp['train']['utterances'])} utterances, dev {num.count(sp['dev']['speakers'])} / "
              f"{num.count(sp['dev']['utterances'])}")
    for fmt, w in summary["formats"].items():
        left = "; ".join(f"{n:,} {why}" for why, n in w["left_out"].items())
        con.print(f"{fmt}: {num.count(w['rows'])} utterances" + (f" (left out: {left})" if left else ""),
                  markup=False)
    wt = summary["weights"]
    if wt["utterances"]:
        con.print(f"weights: {num.count(wt['utterances'])} utterances, mean 1, range {wt['min']:.3g}–{wt['max']:.3g}"
                  f" (cap {wt['cap']:g})")
    for w in summary["source"].get("warnings") or []:
        con.print(f"warning: {w}", markup=False)
    con.print(f"wrote {out}/: export.json, weights.csv, cohort_weights.csv, speaker_cohorts.csv, "
              f"{', '.join(summary['formats'])}/")


def _side_params():
    """The side-input flags (--census, --embeddings, --embedding-ids, plugins'), as
    (parameter name, annotated type) pairs for `assign`."""
    return [(f"side__{f.name}", Annotated[Optional[str], typer.Option(
        f.flag, help=f"{f.help} [default: the file report.json records]", show_default=False)]) for f in side_flags()]


def _with_side_flags(fn):
    import functools
    import inspect

    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "side"]
    extra = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=a)
             for n, a in _side_params()]
    # the flags of the signature made here: a side input registered later (a plugin loaded
    # after import) has no parameter to pop
    names = [p.name for p in extra]

    @functools.wraps(fn)
    def wrapper(**kwargs):
        side = {n[len("side__"):]: kwargs.pop(n) for n in names}
        return fn(side={k: v for k, v in side.items() if v is not None}, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra)
    return wrapper


@app.command("assign")
@c.user_errors
@checked()
@_with_side_flags
def assign(
    speakers_table: Annotated[str, typer.Argument(metavar="SPEAKERS", show_default=False, help="Speaker table (CSV/TSV/JSONL/Parquet): speaker_id plus what the audit's discoverers read (lat/lon, zip, attribute columns).")],
    side: dict,
    from_: Annotated[Optional[str], typer.Option("--from", help="report.json of the audit whose cohorts to apply (or its folder).", show_default=False)] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory: assignments.csv and assign.json.")] = "fairaudit_assign",
    speaker_col: c.SpeakerCol = "speaker_id",
    weight_cap: Annotated[float, typer.Option("--weight-cap", help="Largest raw cohort weight (ratio >= 1), as for export.")] = 3.0,
    quiet: c.Quiet = False,
):
    """Put speakers who were not in the audit into its cohorts, by the definitions report.json saved."""
    from fairaudit.assign import assign_speakers
    from fairaudit.io.speakers import read_speakers
    from fairaudit.result import AuditResult
    from fairaudit.weights import check_cap

    if not from_:
        raise UserInputError("no audit given", hint="pass --from DIR/report.json (the audit whose cohorts to apply)")
    check_cap(weight_cap)
    result = AuditResult.load(from_)
    speakers = read_speakers(speakers_table, speaker_col)
    done = assign_speakers(result, speakers, side_inputs=side, weight_cap=weight_cap)
    os.makedirs(out, exist_ok=True)
    done.table.to_csv(os.path.join(out, "assignments.csv"), index=False, lineterminator="\n")
    done.summary["speakers_file"] = speakers_table
    with open(os.path.join(out, "assign.json"), "w", encoding="utf-8") as fh:
        json.dump(done.summary, fh, indent=2, ensure_ascii=False)
    if not quiet:
        print_assign(done.summary, shown(out))


def print_assign(summary: dict, out: str) -> None:
    con = c.out_console
    table = Table(title=f"{summary['speakers']:,} speakers placed into the audit's cohorts", title_justify="left")
    for col in ("discoverer", "placed", "not placed (why)", "audited: same cohort"):
        table.add_column(col, justify="right" if col == "placed" else "left")
    for key, d in summary["discoverers"].items():
        why = "; ".join(f"{n:,} {r}" for r, n in d["unplaced"].items()) or "–"
        same = (f"{d['same_cohort_as_audit']:,} of {d['audited_and_placed']:,}" if d["audited_and_placed"] else "–")
        table.add_row(key, f"{d['placed']:,}", why, same)
    con.print(table)
    con.print(f"wrote {out}/: assignments.csv, assign.json")
