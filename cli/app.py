"""`fairaudit` commands."""
from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from fairaudit import __version__
from fairaudit.audit import score_input
from fairaudit.errors import UserInputError
from fairaudit.io.writers import write_table
from fairaudit.speakers import UTTERANCE_COLUMNS

from . import common as c

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Audit speech recognisers for performance fairness.")

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
def score(
    input: c.Input = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "fairaudit_out",
    ref: c.Ref = None, hyp: c.Hyp = None, utt2spk: c.Utt2spk = None, input_format: c.Format = None,
    utt_col: c.UttCol = "utt_id", speaker_col: c.SpeakerCol = "speaker_id", ref_col: c.RefCol = "reference",
    hyp_col: c.HypCol = "hypothesis", errors_col: c.ErrorsCol = None, ref_words_col: c.RefWordsCol = None,
    wer_col: c.WerCol = None, speakers: c.Speakers = None, normalize: c.Normalize = "default",
    format: Annotated[str, typer.Option("--format", help="Output table format: csv|parquet.")] = "csv",
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Score a decoded test set: per-utterance and per-speaker word errors, and row accounting."""
    _check_out_format(format)
    spec = c.make_spec(input, ref, hyp, utt2spk, input_format, utt_col, speaker_col, ref_col, hyp_col,
                       errors_col, ref_words_col, wer_col)
    with c.progress_bar("scoring", None, not quiet) as progress:
        scored = score_input(spec, normalize, speakers, workers=workers, progress=progress)
    os.makedirs(out, exist_ok=True)
    write_table(scored.utterances[UTTERANCE_COLUMNS], os.path.join(out, "utterance_scores"), format)
    write_table(scored.speakers, os.path.join(out, "speaker_scores"), format)
    accounting = scored.accounting.to_dict() | {"normalization": normalize, "mode": scored.mode}
    with open(os.path.join(out, "accounting.json"), "w", encoding="utf-8") as fh:
        json.dump(accounting, fh, indent=2)
    if not quiet:
        print_summary(scored, out)


def print_summary(scored, out: str | None = None) -> None:
    o = scored.overall
    acc = scored.accounting
    con = c.out_console
    wer = "n/a" if o["wer"] is None else f"{100 * o['wer']:.2f} %"
    con.print(f"WER {wer}  ({o['errors']:,} errors / {o['ref_words']:,} reference words)  "
              f"speakers {o['speakers']:,}  utterances {o['utterances']:,}  normalisation: {scored.normalization}")
    con.print(f"rows read {acc.rows_read:,} = scored {acc.rows_scored:,} + dropped {acc.rows_dropped:,}")
    for reason, n in sorted(acc.dropped.items()):
        con.print(f"  dropped {n:,}: {reason}")
    if acc.empty_reference_insertions:
        con.print(f"  ({acc.empty_reference_insertions:,} inserted words in empty-reference rows, outside every WER)")
    for w in acc.warnings:
        con.print(f"  warning: {w}")
    if out:
        con.print(f"wrote {out}/")


def main() -> None:
    app()
