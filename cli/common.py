"""Options shared by several commands, the error-to-exit-code mapping and the progress bar."""
from __future__ import annotations

import functools
import inspect
import sys
from contextlib import contextmanager
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec

err_console = Console(stderr=True, highlight=False)
# Logs and pipes get a wide fixed width so the summary table does not fold into columns
# one word wide; a terminal keeps its own width.
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)

Input = Annotated[Optional[str], typer.Argument(help="Utterance table (.csv/.tsv/.jsonl/.parquet, optionally .gz), NeMo manifest, or Kaldi/trn reference file.", show_default=False)]
Ref = Annotated[Optional[str], typer.Option("--ref", help="Kaldi 'text' or sclite trn reference file (instead of INPUT).")]
Hyp = Annotated[Optional[list[str]], typer.Option("--hyp", help="Kaldi 'text' or sclite trn hypothesis file; repeat to audit several systems.")]
Utt2spk = Annotated[Optional[str], typer.Option("--utt2spk", help="Kaldi utt2spk file: '<utt-id> <speaker-id>' per line.")]
Format = Annotated[Optional[str], typer.Option("--input-format", help="Override the format from the extension: csv|tsv|jsonl|parquet|kaldi|trn|nemo.")]
UttCol = Annotated[str, typer.Option("--utt-col", help="Utterance-id column.")]
SpeakerCol = Annotated[str, typer.Option("--speaker-col", help="Speaker-id column.")]
RefCol = Annotated[str, typer.Option("--ref-col", help="Reference transcript column.")]
HypCol = Annotated[Optional[list[str]], typer.Option("--hyp-col", help="Hypothesis transcript column [default: hypothesis]; repeat to audit several systems side by side.", show_default=False)]
ErrorsCol = Annotated[Optional[list[str]], typer.Option("--errors-col", help="Precomputed word-error count column (no alignment is run); repeatable.")]
RefWordsCol = Annotated[Optional[str], typer.Option("--ref-words-col", help="Reference word count column (with --errors-col or --wer-col).")]
WerCol = Annotated[Optional[list[str]], typer.Option("--wer-col", help="Precomputed per-utterance WER column, as a fraction (0.25 = 25 %); repeatable.")]
HypTable = Annotated[Optional[list[str]], typer.Option("--hyp-table", metavar="NAME=FILE", help="A hypothesis table (CSV/TSV/JSONL/Parquet: a key and a text column) joined to the reference table INPUT by key; repeat for several systems, audited side by side.", show_default=False)]
HypKeyCol = Annotated[Optional[str], typer.Option("--hyp-key-col", help="Key column of the hypothesis tables [default: path if present, else utt_id]; the reference table's key is the column of the same name if it has one, else --utt-col.", show_default=False)]
HypTextCol = Annotated[Optional[str], typer.Option("--hyp-text-col", help="Text column of the hypothesis tables [default: prediction if present, else hypothesis].", show_default=False)]
MatchKeys = Annotated[str, typer.Option("--match-keys", help="How hypothesis-table keys meet reference keys: exact, stem (file name without folder and extension) or auto (exact, else stem if it matches more; decided per system).")]
MissingHyp = Annotated[str, typer.Option("--missing-hyp", help="A reference utterance that a system's hypothesis file (table, Kaldi, trn) lacks: drop (counted as no_hypothesis) or empty (scored as empty output: all deletions).")]
NaValues = Annotated[Optional[str], typer.Option("--na-values", help="Comma-separated markers of an unknown attribute value, compared case-insensitively (empty cells always count) [default: NA,N/A,null,None,nan].", show_default=False)]
MissingAttribute = Annotated[str, typer.Option("--missing-attribute", help="Speakers whose attribute is unknown: unknown (not audited on it, never a cohort) or cohort (the marker is a value like any other).")]
Speakers = Annotated[Optional[str], typer.Option("--speakers", help="Speaker table (CSV/Parquet): speaker_id plus any of lat, lon, zip and attributes.")]
Normalize = Annotated[str, typer.Option("--normalize", help="Text normalisation on both sides: default|none|whisper.")]
Unit = Annotated[str, typer.Option("--unit", help="What a token is: word (WER), char (CER, characters as jiwer.process_characters counts them, spaces included) or mixed (MER: each Chinese/Japanese/Thai/... character a token, other scripts split into words).")]
Align = Annotated[str, typer.Option("--align", help="Alignment: jiwer (Levenshtein, as jiwer) or sclite (NIST sclite's weights 4/3/3 and tie-breaking: per-utterance S/D/I identical to sclite's).")]
AllowNormalizerChange = Annotated[bool, typer.Option("--allow-normalizer-change", help="Compare with a report whose normaliser fingerprint (mode, NFC, alignment, library versions, canary sentences) differs; a different --unit is refused regardless.")]
Census = Annotated[Optional[str], typer.Option("--census", help="Census table: zip plus numeric columns (shares as 0-1 or 0-100).")]
Embeddings = Annotated[Optional[str], typer.Option("--embeddings", help="Speaker (or utterance) embeddings: .npy with --embedding-ids, or Parquet/CSV.")]
EmbeddingIds = Annotated[Optional[str], typer.Option("--embedding-ids", help="One speaker id per line, in the row order of the .npy matrix.")]
By = Annotated[Optional[list[str]], typer.Option("--by", help="Attribute cohorts, repeatable; 'a,b' for intersections.")]
Discoverers = Annotated[str, typer.Option("--discoverers", help="Comma-separated discoverers to run.")]
MinSpeakers = Annotated[int, typer.Option("--min-speakers", help="Smallest cohort (speakers) that can be bottom/top.")]
K = Annotated[str, typer.Option("--k", help="k-means clusters for the automatic discoverer, or 'auto'.")]
GeoMaxRegions = Annotated[int, typer.Option("--geo-max-regions", help="Most regions the geographic tree makes.")]
GeoMaxDepth = Annotated[int, typer.Option("--geo-max-depth", help="Deepest split of the geographic tree.")]
GeoCriterion = Annotated[str, typer.Option("--geo-criterion", help="Geographic split criterion: difference (Trinh et al.) or z (difference / its standard error).")]
MaxDepth = Annotated[int, typer.Option("--max-depth", help="Most attributes in a geodemographic rule.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: same seed, same result.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="Processes for scoring (default: all cores).")]


def make_spec(input: str | None, ref: str | None, hyp: list[str] | None, utt2spk: str | None, fmt: str | None,
              utt_col: str, speaker_col: str, ref_col: str, hyp_col: list[str] | None, errors_col: list[str] | None,
              ref_words_col: str | None, wer_col: list[str] | None, hyp_table: list[str] | None = None,
              hyp_key_col: str | None = None, hyp_text_col: str | None = None, match_keys: str = "auto",
              missing_hyp: str = "drop", na_values: str | None = None,
              missing_attribute: str = "unknown") -> InputSpec:
    """An InputSpec from the shared input flags; repeated system flags become several systems."""
    from fairaudit.io.hyp_tables import check_options, parse_hyp_tables
    from fairaudit.io.missing import check_missing_attribute, parse_na_values

    path = ref or input
    if not path:
        raise UserInputError("no input given", hint="pass an utterance table as INPUT, or --ref FILE --hyp FILE")
    if ref and input:
        raise UserInputError("give either INPUT or --ref, not both", path=input)
    if errors_col and wer_col:
        raise UserInputError("--errors-col and --wer-col exclude each other", hint="pass one of them")
    tables = parse_hyp_tables(hyp_table)
    if tables and (hyp_col or ref):
        raise UserInputError(f"--hyp-table excludes {'--hyp-col' if hyp_col else '--ref'}",
                             hint="give the reference table as INPUT and every system as --hyp-table NAME=FILE")
    if (hyp_key_col or hyp_text_col) and not tables:
        raise UserInputError(f"{'--hyp-key-col' if hyp_key_col else '--hyp-text-col'} names a column of the "
                             f"hypothesis tables, and no --hyp-table is given", hint="add --hyp-table NAME=FILE")
    hyp, hyp_col, errors_col, wer_col = (list(x or []) for x in (hyp, hyp_col, errors_col, wer_col))
    values = errors_col or wer_col
    spec = InputSpec(path=path, format=fmt, hyp_path=hyp[0] if hyp else None, utt2spk=utt2spk, utt_col=utt_col,
                     speaker_col=speaker_col, ref_col=ref_col, hyp_col=hyp_col[0] if hyp_col else "hypothesis",
                     errors_col=errors_col[0] if errors_col else None, ref_words_col=ref_words_col,
                     wer_col=wer_col[0] if wer_col else None, more_hyp_cols=tuple(hyp_col[1:]),
                     more_value_cols=tuple(values[1:]), more_hyp_paths=tuple(hyp[1:]), hyp_tables=tables,
                     hyp_key_col=hyp_key_col, hyp_text_col=hyp_text_col, match_keys=match_keys,
                     missing_hyp=missing_hyp, na_values=parse_na_values(na_values),
                     missing_attribute=missing_attribute)
    check_options(spec)   # bad values are refused before any work starts
    check_missing_attribute(missing_attribute)
    return spec


def user_errors(fn):
    """Turn UserInputError into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserInputError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True, highlight=False) \
                if sys.stderr.isatty() else print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2)

    return wrapper


@contextmanager
def progress_bar(label: str, total: int | None, enabled: bool):
    """A rich progress bar on stderr; yields a callback taking the number of items done."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as prog:
        task = prog.add_task(label, total=total)
        yield lambda n: prog.advance(task, n)


# The input flags shared by every command that reads a decoded test set, declared once:
# (parameter name, annotated type, default), in the order they appear in --help.
_INPUT_PARAMS = [
    ("input", Input, None), ("ref", Ref, None), ("hyp", Hyp, None), ("utt2spk", Utt2spk, None),
    ("input_format", Format, None), ("utt_col", UttCol, "utt_id"), ("speaker_col", SpeakerCol, "speaker_id"),
    ("ref_col", RefCol, "reference"), ("hyp_col", HypCol, None), ("errors_col", ErrorsCol, None),
    ("ref_words_col", RefWordsCol, None), ("wer_col", WerCol, None),
    ("hyp_table", HypTable, None), ("hyp_key_col", HypKeyCol, None), ("hyp_text_col", HypTextCol, None),
    ("match_keys", MatchKeys, "auto"), ("missing_hyp", MissingHyp, "drop"), ("na_values", NaValues, None),
    ("missing_attribute", MissingAttribute, "unknown"),
]


def with_input(fn):
    """Give a command the shared input flags (INPUT, --ref/--hyp/--utt2spk, the column
    mappings, precomputed counts); the command receives them as one ``spec: InputSpec``.

    Typer reads a command's parameters from its signature, so the wrapper publishes the
    command's own parameters plus the shared ones.
    """
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "spec"]
    shared = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=ann)
              for name, ann, default in _INPUT_PARAMS]

    @functools.wraps(fn)
    def wrapper(**kwargs):
        values = [kwargs.pop(name) for name, _, _ in _INPUT_PARAMS]
        return fn(spec=make_spec(*values), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=shared[:1] + own + shared[1:])
    return wrapper


def parse_k(k: str) -> int | str:
    """--k: a whole number >= 2, or 'auto'."""
    if k == "auto":
        return k
    try:
        value = int(k)
    except ValueError:
        raise UserInputError(f"--k {k!r} is not a whole number", hint="pass --k 10 or --k auto") from None
    if value < 2:
        raise UserInputError(f"--k {value} is too small", hint="k-means needs at least 2 clusters")
    return value


def discovery_params(discoverers: str, min_speakers: int, k: str = "10", geo_max_regions: int = 16,
                     geo_max_depth: int = 8, max_depth: int = 2,
                     geo_criterion: str = "difference") -> tuple[list[str], dict[str, dict]]:
    """(discoverer names, per-discoverer parameters) from the shared discovery flags."""
    if min_speakers < 1:
        raise UserInputError(f"--min-speakers {min_speakers} must be at least 1")
    names = [n.strip() for n in discoverers.split(",") if n.strip()]
    params = {"geographic": {"max_regions": geo_max_regions, "max_depth": geo_max_depth, "criterion": geo_criterion},
              "geodemographic": {"max_depth": max_depth}, "automatic": {"k": parse_k(k)}}
    return names, {n: params[n] for n in names if n in params}
