"""Options shared by several commands, the error-to-exit-code mapping and the progress bar."""
from __future__ import annotations

import functools
import inspect
import re
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fairaudit.discover import registry
from fairaudit.discover.params import Interval, check, is_flag_only, metavar, parse_cli
from fairaudit.discover.sides import side_flags
from fairaudit.errors import UserInputError
from fairaudit.forked import ForkedJob
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
MinSpeakers = Annotated[int, typer.Option("--min-speakers", help="Smallest cohort (speakers) that can be bottom/top.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: same seed, same result.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="Processes for scoring (default: all cores) and, from 5,000 speakers, for the discoverers' statistics (default: up to 4, no more than the cores; same results in any number). 1 = everything in one process.")]


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


# ---------------------------------------------------------------- discovery flags, from the registry

@dataclass
class DiscoveryOptions:
    """What the discovery flags of a command say: which discoverers (None = the defaults),
    the parameters given on the command line (``{name: {param: value}}``, flags not given
    are absent), the repeatable instances (``--by``), the common ``--min-speakers`` and
    ``--seed``, and the side-input flags given (flag name -> value)."""

    names: list[str] | None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, list[list[str]]] = field(default_factory=dict)
    min_speakers: int = 20
    seed: int = 0
    side: dict[str, Any] = field(default_factory=dict)

    def build(self):
        """The discoverers, validated (:func:`fairaudit.audit.build_discoverers`)."""
        from fairaudit.audit import build_discoverers

        return build_discoverers(self.names, min_speakers=self.min_speakers, seed=self.seed, params=self.params,
                                 instances=self.instances)

    def audit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fairaudit.audit` / :func:`fairaudit.compare.compare`."""
        side = dict(self.side)
        builtin = {k: side.pop(k, None) for k in ("census", "embeddings", "embedding_ids")}
        return {**builtin, "side_inputs": side, "discoverers": self.names, "params": self.params,
                "min_speakers": self.min_speakers, "seed": self.seed, "instances": self.instances}


def param_help(cls, param: str) -> str:
    """First sentence of a parameter's description in the class docstring (numpydoc
    "Parameters" section), with its default."""
    doc = textwrap.dedent((cls.__doc__ or "").split("\n", 1)[-1])
    text = ""
    m = re.search(rf"^{re.escape(param)} : [^\n]*\n((?:[ \t]+\S[^\n]*\n?)+)", doc, re.M)
    if m:
        body = " ".join(line.strip() for line in m.group(1).splitlines())
        text = re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0]
    default = cls.param_defaults().get(param)
    shown = "" if default in (None, (), [], inspect.Parameter.empty) else f" [default: {default}]"
    return (text or f"The {param.replace('_', ' ')} parameter of the {cls.name} discoverer.") + shown


def _decl(cls, param: str) -> list:
    decl = cls.parameter_constraints().get(param)
    if decl:
        return decl
    default = cls.param_defaults().get(param)
    return [type(default)] if default not in (None, inspect.Parameter.empty) else [str]


def _discovery_params() -> tuple[list[tuple[str, Any, Any]], dict[str, tuple[str, str, str]]]:
    """(parameters to publish on a command, ident -> (kind, discoverer or side input, param))."""
    reg = registry()
    selectable = [n for n, c in reg.items() if c.instance_param is None]
    defaults = [n for n, c in reg.items() if c.default and c.instance_param is None]
    out: list[tuple[str, Any, Any]] = [
        ("discoverers", Annotated[Optional[str], typer.Option(
            "--discoverers", help=f"Comma-separated discoverers to run (available: {', '.join(selectable)}; "
                                  f"default: {','.join(defaults)}).")], None),
        ("min_speakers", Annotated[int, typer.Option("--min-speakers", help="Smallest cohort (speakers) that can be "
                                                     "bottom/top.")], 20),
        ("seed", Annotated[int, typer.Option("--seed", help="Random seed: same seed, same result.")], 0),
    ]
    lookup: dict[str, tuple[str, str, str]] = {}
    for f in side_flags():
        ident = f"side__{f.name}"
        out.append((ident, Annotated[Optional[str], typer.Option(f.flag, help=f.help)], None))
        lookup[ident] = ("side", "", f.name)
    for name, cls in reg.items():
        for param in cls.own_params():
            ident = f"disc_{len(lookup)}"
            lookup[ident] = ("param", name, param)
            decls = (cls.flag(param), *cls.flag_aliases.get(param, ()))
            help_text = param_help(cls, param)
            if param == cls.instance_param:
                help_text += " Repeatable: one set of cohorts per flag; 'a,b' for intersections."
                ann = Annotated[Optional[list[str]], typer.Option(*decls, help=help_text, metavar="A[,B]")]
            elif is_flag_only(_decl(cls, param)):
                flag = cls.flag(param)
                off = flag[:2] + "no-" + flag[2:]   # --automatic-l2-normalize -> --no-automatic-l2-normalize
                ann = Annotated[Optional[bool], typer.Option(f"{flag}/{off}", help=help_text)]
            else:
                ann = Annotated[Optional[str], typer.Option(*decls, help=help_text, metavar=metavar(_decl(cls, param)))]
            out.append((ident, ann, None))
    return out, lookup


def with_discovery(fn):
    """Give a command the discovery flags, generated from the registry: --discoverers,
    --min-speakers, --seed, every side input's flags (--census, --embeddings, ...) and
    --<discoverer>-<param> for every parameter of every registered discoverer (with the
    spellings in its ``flag_aliases``: --k, --geo-max-regions, --max-depth, --by, ...).
    The command receives them as one ``discovery: DiscoveryOptions``."""
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "discovery"]
    generated, lookup = _discovery_params()
    shared = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=ann)
              for name, ann, default in generated]

    @functools.wraps(fn)
    def wrapper(**kwargs):
        values = {name: kwargs.pop(name) for name, _, _ in generated}
        return fn(discovery=discovery_options(values, lookup), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + shared)
    return wrapper


def discovery_options(values: dict[str, Any], lookup: dict[str, tuple[str, str, str]]) -> DiscoveryOptions:
    """The DiscoveryOptions of parsed flag values (text parsed by each parameter's constraints)."""
    check(values["min_speakers"], [Interval(int, 1, None)], name="minimum cohort size", flag="--min-speakers")
    reg = registry()
    text = values["discoverers"]
    names = None if text is None else [n.strip() for n in text.split(",") if n.strip()]
    opts = DiscoveryOptions(names=names, min_speakers=values["min_speakers"], seed=values["seed"])
    for ident, (kind, name, param) in lookup.items():
        value = values.get(ident)
        if value is None:
            continue
        if kind == "side":
            opts.side[param] = value
            continue
        cls = reg[name]
        if param == cls.instance_param:
            groups = [[c.strip() for c in v.split(",") if c.strip()] for v in value]
            opts.instances[name] = [g for g in groups if g]
        elif isinstance(value, bool):
            opts.params.setdefault(name, {})[param] = value
        else:
            opts.params.setdefault(name, {})[param] = parse_cli(value, _decl(cls, param))
    return opts


def prefetch_input(spec, engine: str | None) -> None:
    """Start reading a Parquet utterance table (in memory, the default engine) in a
    background thread and import what discovery needs meanwhile
    (:mod:`fairaudit.io.prefetch`): about a second of start-up on one core at 1M rows.
    Anything unusual (another format, a chunked engine, an unreadable name) is left to the
    audit, which reads and reports as always."""
    from fairaudit.engines import resolve_engine
    from fairaudit.io import prefetch
    from fairaudit.io.common import detect_format

    try:
        if resolve_engine(engine, spec) != "default" or detect_format(spec.path, spec.format) != "parquet":
            return
    except Exception:   # the audit reports it, with its file and fix
        return
    if prefetch.start(spec.path):
        prefetch.warm_imports()


def _big(speakers) -> bool:
    # Below this a fork costs more than the work it moves.
    from fairaudit.stats import parallel

    return speakers is not None and len(speakers) >= parallel.PARALLEL_MIN_SPEAKERS


def _write_html_timed(result, path: str) -> float:
    import time

    from fairaudit.reports.html import write_html

    t0 = time.perf_counter()
    write_html(result, path)
    return time.perf_counter() - t0


def _write_tables_timed(speakers, utterances, out: str) -> tuple[float, list[str]]:
    import time

    from fairaudit.result import write_scored_tables

    t0 = time.perf_counter()
    try:
        paths = write_scored_tables(speakers, utterances, out)
    except OSError as exc:   # (a full disk, a folder removed under the run): the user's to fix
        raise UserInputError(f"cannot write the speaker and utterance tables ({exc.strerror or exc})",
                             path=out, hint="free some disk space or choose another --out") from None
    return time.perf_counter() - t0, sorted(paths)


class ScoredTablesJob:
    """speaker_scores.csv and utterance_scores.parquet of the first system, written as soon
    as scoring is done (pass :meth:`start` as ``audit(on_scored=...)``): in a forked
    process on large audits, on the core that discovery leaves idle, so the tables no
    longer wait for the statistics."""

    def __init__(self, out: str):
        self.out, self.job = out, None

    def start(self, scored_sets) -> None:
        first = next(iter(scored_sets.values()))
        if _big(first.speakers):   # small audits write them with the other tables
            self.job = ForkedJob(_write_tables_timed, (first.speakers, first.utterances, self.out),
                                 f"writing the scored tables in {self.out}", fork=True)

    def finish(self, timings: dict | None = None) -> list[str]:
        """Wait for the tables; returns the keys written (for ``AuditResult.save(written=)``)."""
        if self.job is None:
            return []
        seconds, keys = self.job.finish()
        if timings is not None:
            timings["write:scored_tables"] = seconds
        return keys

    @contextmanager
    def running(self):
        """The audit's extent: a failure inside stops the writer (no orphan process)."""
        try:
            yield self
        except BaseException:
            if self.job is not None:
                self.job.kill()
            raise


def warm_html() -> None:
    """Import what writing report.html needs (matplotlib, the templates) and draw one tiny
    figure (font cache), so the page's forked process starts warm (about 0.5 s of a cold
    page at 100k speakers); run while the statistics workers compute."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from fairaudit.reports.html import render

    render.environment().get_template("report.html.j2")
    FigureCanvasAgg(Figure(figsize=(1, 1))).draw()


def start_html(result, path: str) -> ForkedJob:
    """Start writing report.html for ``result``: in a forked process on large audits
    (``.finish()`` waits and returns the rendering time, seconds)."""
    return ForkedJob(_write_html_timed, (result, path), f"writing {path}", fork=_big(result.speakers))
