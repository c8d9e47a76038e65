"""Read a decoded test set into one utterance frame.

All formats end in the same shape (:class:`RawUtterances`): a pandas frame with
``utt_id``, ``speaker_id`` and either ``reference``/``hypothesis`` (text mode) or
``errors``/``ref_words`` (counts mode), plus any other columns of the input; its index is
the 1-based input row number, so every message can name the row.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from ..errors import UserInputError
from . import columns, prefetch, text_files
from .common import detect_format, read_lines, require_file
from .missing import DEFAULT_NA_VALUES, MissingValues, check_missing_attribute

#: what a reference utterance without a hypothesis in a system's file becomes: ``drop``
#: (counted as ``no_hypothesis``) or ``empty`` (scored as an empty hypothesis: all deletions)
MISSING_HYP_MODES = ("drop", "empty")


@dataclass
class InputSpec:
    """Where the utterances are and which columns mean what.

    ``path`` is the utterance table, or the reference file for ``kaldi``/``trn`` input
    (then ``hyp_path`` is the hypothesis file).  Column names are those of the input.
    """

    path: str
    format: str | None = None
    hyp_path: str | None = None
    utt2spk: str | None = None
    utt_col: str = "utt_id"
    speaker_col: str = "speaker_id"
    ref_col: str = "reference"
    hyp_col: str = "hypothesis"
    errors_col: str | None = None
    ref_words_col: str | None = None
    wer_col: str | None = None
    #: further systems audited side by side: more hypothesis columns (text mode), more
    #: error/WER columns of the same kind as the first (counts mode), or more Kaldi/trn
    #: hypothesis files
    more_hyp_cols: tuple[str, ...] = ()
    more_value_cols: tuple[str, ...] = ()
    more_hyp_paths: tuple[str, ...] = ()
    #: one system per hypothesis table (system name -> file holding a key and a text
    #: column), joined to the reference table ``path`` by key: :mod:`fairaudit.io.hyp_tables`
    hyp_tables: dict[str, str] = field(default_factory=dict)
    hyp_key_col: str | None = None    # None: ``path`` if the table has it, else ``utt_id``
    hyp_text_col: str | None = None   # None: ``prediction`` if the table has it, else ``hypothesis``
    match_keys: str = "auto"          # exact | stem | auto (exact, else stem)
    #: a reference utterance that a system's hypothesis file (table, Kaldi, trn) lacks:
    #: see :data:`MISSING_HYP_MODES`
    missing_hyp: str = "drop"
    #: attribute cells that mean "unknown" (:mod:`fairaudit.io.missing`)
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    missing_attribute: str = "unknown"

    @property
    def counts_mode(self) -> bool:
        return bool(self.errors_col or self.wer_col)

    @property
    def missing_values(self) -> MissingValues:
        """How missing attribute values are read (``na_values``, ``missing_attribute``)."""
        return MissingValues(self.na_values, self.missing_attribute)

    @property
    def system_names(self) -> list[str]:
        """One name per audited system: the hypothesis/WER/errors column or hypothesis file
        (or the NAME of each hypothesis table)."""
        if self.hyp_tables:
            return list(self.hyp_tables)
        if self.hyp_path:
            return [self.hyp_path, *self.more_hyp_paths]
        if self.counts_mode:
            return [self.errors_col or self.wer_col, *self.more_value_cols]
        return [self.hyp_col, *self.more_hyp_cols]


@dataclass
class RawUtterances:
    """The input as read, before scoring (see module docstring)."""

    frame: pd.DataFrame
    mode: str  # "text" or "counts"
    rows_read: int
    unparsable: list[str] = field(default_factory=list)  # one description per bad row
    orphan_hypotheses: list[str] = field(default_factory=list)  # hyp ids with no reference
    warnings: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    #: system name -> column of ``frame`` holding its hypothesis (text) or errors (counts)
    systems: dict[str, str] = field(default_factory=dict)
    #: hypothesis lines of this system that give no row (drop reason -> one description
    #: per line: a trn line without '(utt-id)', a repeated hypothesis id), counted in
    #: ``rows_read`` like ``orphan_hypotheses``
    hypothesis_drops: dict[str, list[str]] = field(default_factory=dict)
    #: the same for every system of a Kaldi/trn input with several hypothesis files
    #: (system name -> drop reason -> descriptions, ``no_reference`` = its orphan ids)
    system_drops: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: per row of ``frame``: this system's hypothesis file has no hypothesis for it (None:
    #: every row has one); with ``missing_hyp="drop"`` such rows are dropped as
    #: ``no_hypothesis``, with ``"empty"`` scored as empty output (all deletions)
    missing_hypothesis: np.ndarray | None = None
    #: the same mask for every system with its own hypothesis file
    system_missing: dict[str, np.ndarray] = field(default_factory=dict)
    missing_hyp: str = "drop"
    #: per system, how its hypotheses met the references (report.json ``inputs.matching``)
    matching: dict[str, dict] = field(default_factory=dict)
    missing_values: MissingValues = field(default_factory=MissingValues)

    def for_system(self, name: str) -> "RawUtterances":
        """The input as seen by one system: its column becomes ``hypothesis``/``errors``,
        and its own hypothesis file's unmatched lines are the ones counted."""
        target = "hypothesis" if self.mode == "text" else "errors"
        col = self.systems.get(name, target)
        frame = self.frame.drop(columns=[c for c in self.frame.columns if c.startswith(SYSTEM_PREFIX)])
        frame[target] = self.frame[col]
        orphans, hyp_drops, rows = self.orphan_hypotheses, self.hypothesis_drops, self.rows_read
        if name in self.system_drops:
            own = self.system_drops[name]
            orphans = own.get("no_reference", [])
            hyp_drops = {k: v for k, v in own.items() if k != "no_reference"}
            rows = (self.rows_read - len(self.orphan_hypotheses) - sum(map(len, self.hypothesis_drops.values()))
                    + len(orphans) + sum(map(len, hyp_drops.values())))
        return RawUtterances(frame, self.mode, rows, self.unparsable, orphans, self.warnings, self.paths,
                             {name: target}, hyp_drops, missing_hypothesis=self.system_missing.get(
                                 name, self.missing_hypothesis), missing_hyp=self.missing_hyp,
                             matching=self.matching, missing_values=self.missing_values)


SYSTEM_PREFIX = "::system::"


# ---------------------------------------------------------------- table formats

def _other_reader(flag: str | None) -> str:
    """How to choose another reader: the format flag, or (side tables) the file's extension."""
    return f"pass {flag}" if flag else "name the file by its format (.csv, .tsv, .jsonl, .parquet)"


def _read_csv(path: str, delimiter: str, string_cols: list[str],
              flag: str | None = "--input-format") -> tuple[pa.Table, list[str]]:
    bad: list[str] = []

    def on_bad(row):
        where = f"line {row.number}" if row.number is not None else "a line"
        bad.append(f"{where}: expected {row.expected_columns} fields, got {row.actual_columns}")
        return "skip"

    parse = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_bad,
                               newlines_in_values=delimiter == ",",
                               quote_char='"' if delimiter == "," else False)
    header = csv_header(path, delimiter, flag)
    types = {c: pa.string() for c in string_cols if c in header}
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    encoding = text_files.current_encoding()
    try:
        table = text_files.with_block_retry(lambda size: pacsv.read_csv(
            path, parse_options=parse, convert_options=convert,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=size, encoding=encoding)))
    except pa.ArrowInvalid as exc:
        raise _undecodable_or(exc, path, UserInputError(
            f"cannot parse: {_short(exc)}", path=path,
            hint=f"fix that line or {_other_reader(flag)} to choose another reader")) from exc
    return table, bad


def csv_header(path: str, delimiter: str, flag: str | None = "--input-format") -> list[str]:
    """Column names of a CSV/TSV file (one-line errors for an unreadable or undecodable
    header; rows longer than pyarrow's block are retried with a larger block)."""
    quote = '"' if delimiter == "," else False
    encoding = text_files.current_encoding()
    try:
        names = text_files.with_block_retry(lambda size: pacsv.open_csv(
            path, parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=quote,
                                                   invalid_row_handler=lambda row: "skip"),
            read_options=pacsv.ReadOptions(block_size=size, encoding=encoding)).schema.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _undecodable_or(exc, path, UserInputError(
            f"cannot read as {'CSV' if delimiter == ',' else 'TSV'}: {_short(exc)}", path=path,
            hint=f"check the delimiter and header row, or {_other_reader(flag)}")) from exc
    columns.check_unique_names(names, path)
    return names


def _undecodable_or(exc: Exception, path: str, error: UserInputError) -> UserInputError:
    """The decoding error naming the first bad line when ``exc`` is pyarrow's "invalid
    UTF8", else ``error``."""
    if "UTF8" in str(exc) or "UTF-8" in str(exc) or "decode" in str(exc).lower():
        return text_files.first_undecodable(path) or error
    return error


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200]


def _read_jsonl(path: str) -> tuple[pa.Table | pd.DataFrame, list[str]]:
    if text_files.is_utf8():  # pyarrow reads UTF-8 only; other encodings take the line reader
        try:
            table = pajson.read_json(path)
            columns.check_unique_names(table.schema.names, path)
            return table, []
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # Fall back to one line at a time so one bad line costs one row, not the file.
    records, bad = [], []
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            records.append(rec)
        except ValueError as exc:
            bad.append(f"line {i}: {str(exc)[:80]}")
    return pd.DataFrame.from_records(records), bad


def _read_table(path: str, fmt: str, string_cols: list[str],
                flag: str | None = "--input-format") -> tuple[pd.DataFrame, list[str]]:
    """(frame, descriptions of unparsable rows) of a CSV/TSV/JSONL/Parquet table.

    ``flag`` is the option that overrides the format (None for side tables, whose format
    comes from the extension), for the hints.
    """
    require_file(path)
    if fmt == "parquet":
        try:
            table = prefetch.take(path)   # read beside the imports (fairaudit.io.prefetch), or now
            table, bad = (pq.read_table(path) if table is None else table), []
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserInputError(f"not a readable Parquet file: {_short(exc)}", path=path,
                                 hint=f"{_other_reader(flag)} if the extension is wrong") from exc
    elif fmt in ("csv", "tsv"):
        table, bad = _read_csv(path, "," if fmt == "csv" else "\t", string_cols, flag)
    else:
        table, bad = _read_jsonl(path)
    if not isinstance(table, pd.DataFrame):
        columns.check_unique_names(table.schema.names, path)
        text_files.check_decodable_table(table, path)
    frame = table if isinstance(table, pd.DataFrame) else table.to_pandas()
    return frame, bad


# ---------------------------------------------------------------- kaldi / trn / nemo

def _split_id_line(line: str) -> tuple[str, str]:
    parts = line.strip().split(maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


_TRN = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")


def _id_lines(path: str, fmt: str):
    """(line number, utterance id, text) per non-blank line of a Kaldi text or trn file;
    the id is None for a trn line without '(utt-id)' at its end."""
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        if fmt == "trn":
            m = _TRN.match(line)
            if not m or not m.group(2).strip():
                yield i, None, line
                continue
            yield i, m.group(2).strip(), m.group(1)
        else:
            yield i, *_split_id_line(line)


def _bad_trn_line(path: str, line: int) -> str:
    return f"{os.path.basename(path)} line {line}: no '(utt-id)' at the end"


def _read_kaldi_text(path: str) -> tuple[dict[str, str], list[str], int]:
    out: dict[str, str] = {}
    dup: list[str] = []
    n = 0
    for _, utt, text in _id_lines(path, "kaldi"):
        n += 1
        if utt in out:
            dup.append(utt)
            continue
        out[utt] = text
    return out, dup, n


def _read_trn(path: str) -> tuple[dict[str, str], list[str], int, list[str]]:
    out: dict[str, str] = {}
    dup, bad = [], []
    n = 0
    for i, utt, text in _id_lines(path, "trn"):
        n += 1
        if utt is None:
            bad.append(_bad_trn_line(path, i))
            continue
        if utt in out:
            dup.append(utt)
            continue
        out[utt] = text
    return out, dup, n, bad


def _read_hypotheses(path: str, fmt: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Hypotheses by utterance id, and the lines that give none, by drop reason (each
    described by file and line): a trn line without '(utt-id)', a repeated id (first kept)."""
    out: dict[str, str] = {}
    drops: dict[str, list[str]] = {}
    for i, utt, text in _id_lines(path, fmt):
        if utt is None:
            drops.setdefault("unparsable_hypothesis", []).append(_bad_trn_line(path, i))
        elif utt in out:
            drops.setdefault("duplicate_hypothesis_id", []).append(
                f"{os.path.basename(path)} line {i}: utt_id={utt!r}")
        else:
            out[utt] = text
    return out, drops


def trn_speaker(utt_id: str) -> str:
    """sclite convention: the speaker is the part of the utterance id before the first '-' or '_'."""
    return re.split(r"[-_]", utt_id, maxsplit=1)[0]


def _read_utt2spk(path: str) -> dict[str, str]:
    out = {}
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise UserInputError(f"line {i} has no speaker after the utterance id", path=path,
                                 hint="utt2spk lines read '<utt-id> <speaker-id>'")
        out[parts[0]] = parts[1]
    return out


def _paired(spec: InputSpec, fmt: str) -> RawUtterances:
    if not spec.hyp_path:
        raise UserInputError(f"{fmt} input needs a hypothesis file", path=spec.path,
                             hint="pass --hyp FILE (same format as the reference file)")
    if fmt == "kaldi":
        refs, rdup, nref = _read_kaldi_text(spec.path)
        bad: list[str] = []
    else:
        refs, rdup, nref, bad = _read_trn(spec.path)
    read_hyps = [_read_hypotheses(h, fmt) for h in (spec.hyp_path, *spec.more_hyp_paths)]
    hyp_sets = [h for h, _ in read_hyps]
    hyps = hyp_sets[0]
    utt2spk = _read_utt2spk(spec.utt2spk) if spec.utt2spk else None
    if utt2spk is None and fmt == "kaldi":
        raise UserInputError("Kaldi text input needs the speaker of each utterance", path=spec.path,
                             hint="pass --utt2spk FILE")
    ids = list(refs)
    speakers = [utt2spk.get(u, "") if utt2spk is not None else trn_speaker(u) for u in ids]
    frame = pd.DataFrame({
        "utt_id": ids + rdup, "speaker_id": speakers + [""] * len(rdup),
        "reference": [refs[u] for u in ids] + [""] * len(rdup),
        "hypothesis": [hyps.get(u, "") for u in ids] + [""] * len(rdup),
    })
    names = spec.system_names
    for name, more in zip(names[1:], hyp_sets[1:]):
        frame[SYSTEM_PREFIX + name] = [more.get(u, "") for u in ids] + [""] * len(rdup)
    frame.index = np.arange(1, len(frame) + 1)
    # Every hypothesis line that pairs with no reference row is a row read and dropped:
    # per system, as each system has its own hypothesis file.
    system_drops = {name: {"no_reference": [u for u in h if u not in refs], **drops}
                    for name, (h, drops) in zip(names, read_hyps)}
    orphans = system_drops[names[0]]["no_reference"]
    hyp_drops = {k: v for k, v in system_drops[names[0]].items() if k != "no_reference"}
    # A reference utterance a hypothesis file lacks: dropped as no_hypothesis for that
    # system (or scored as empty output with missing_hyp="empty"); see fairaudit.speakers.score.
    missing = {name: np.array([u not in h for u in ids] + [False] * len(rdup), dtype=bool)
               for name, h in zip(names, hyp_sets)}
    matching = {name: {"file": path, "match": "exact", "match_option": "exact", "missing_hyp": spec.missing_hyp,
                       "references": len(ids), "matched": int((~missing[name][:len(ids)]).sum()),
                       "no_hypothesis": int(missing[name].sum()), "hypothesis_rows": len(h) + sum(map(len, d.values())),
                       "no_reference": len(system_drops[name]["no_reference"]),
                       "duplicate_keys": len(d.get("duplicate_hypothesis_id", []))}
                for name, path, (h, d) in zip(names, (spec.hyp_path, *spec.more_hyp_paths), read_hyps)}
    systems = {names[0]: "hypothesis", **{n: SYSTEM_PREFIX + n for n in names[1:]}}
    return RawUtterances(frame, "text", rows_read=nref + len(orphans) + sum(map(len, hyp_drops.values())),
                         unparsable=bad, orphan_hypotheses=orphans,
                         paths=[p for p in (spec.path, spec.hyp_path, *spec.more_hyp_paths, spec.utt2spk) if p],
                         systems=systems, hypothesis_drops=hyp_drops, system_drops=system_drops,
                         missing_hypothesis=missing[names[0]], system_missing=missing, missing_hyp=spec.missing_hyp,
                         matching=matching, missing_values=spec.missing_values)


def _nemo(spec: InputSpec) -> RawUtterances:
    require_file(spec.path)
    frame, bad = _read_jsonl(spec.path)
    frame = frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()
    # NeMo field names unless the user mapped others.
    ref = spec.ref_col if spec.ref_col != "reference" else "text"
    hyp = spec.hyp_col if spec.hyp_col != "hypothesis" else "pred_text"
    utt = spec.utt_col if spec.utt_col != "utt_id" else ("utt_id" if "utt_id" in frame else "audio_filepath")
    spk = spec.speaker_col if spec.speaker_col != "speaker_id" or "speaker_id" in frame else "speaker"
    utt2spk = _read_utt2spk(spec.utt2spk) if spec.utt2spk else None
    if utt2spk is not None and spk not in frame:
        frame[spk] = frame[utt].astype(str).map(utt2spk).fillna("")
    _need(frame, {ref: "--ref-col", hyp: "--hyp-col", utt: "--utt-col", spk: "--speaker-col or --utt2spk"}, spec.path)
    warnings: list[str] = []
    frame = columns.numbers_as_text(columns.ids_as_text(frame, [utt, spk], spec.path, warnings), [ref, hyp])
    frame = frame.rename(columns={ref: "reference", hyp: "hypothesis", utt: "utt_id", spk: "speaker_id"})
    frame.index = np.arange(1, len(frame) + 1)
    return RawUtterances(frame, "text", rows_read=len(frame) + len(bad), unparsable=bad, paths=[spec.path],
                         systems={hyp: "hypothesis"}, warnings=warnings, missing_values=spec.missing_values)


# ---------------------------------------------------------------- public entry

def _need(frame: pd.DataFrame, cols: dict[str, str], path: str) -> None:
    for col, flag in cols.items():
        if col not in frame.columns:
            have = ", ".join(map(str, list(frame.columns)[:12])) or "none"
            raise UserInputError(f"column {col!r} not found (columns: {have})", path=path,
                                 hint=f"name the right column with {flag}")


def _to_counts(frame: pd.DataFrame, spec: InputSpec, warnings: list[str]) -> pd.DataFrame:
    out = _to_counts_one(frame, spec, warnings)
    for col in spec.more_value_cols:
        kind = {"errors_col": col} if spec.errors_col else {"wer_col": col}
        one = InputSpec(path=spec.path, ref_words_col=spec.ref_words_col, **kind)
        out[SYSTEM_PREFIX + col] = _to_counts_one(frame, one, warnings)["errors"]
    return out


def _to_counts_one(frame: pd.DataFrame, spec: InputSpec, warnings: list[str]) -> pd.DataFrame:
    words_col = spec.ref_words_col
    if not words_col:
        raise UserInputError("precomputed counts need the number of reference words", path=spec.path,
                             hint="pass --ref-words-col COLUMN")
    value_col = spec.errors_col or spec.wer_col
    flag = "--errors-col" if spec.errors_col else "--wer-col"
    _need(frame, {words_col: "--ref-words-col", value_col: flag}, spec.path)
    words = _numeric(frame[words_col], words_col, spec.path)
    values = _numeric(frame[value_col], value_col, spec.path)
    if not np.allclose(words, np.round(words)):
        row = frame.index[np.flatnonzero(~np.isclose(words, np.round(words)))[0]]
        raise UserInputError(f"row {row}, column {words_col!r}: reference word count is not a whole number",
                             path=spec.path, hint="--ref-words-col must hold word counts")
    if spec.errors_col:
        errors = values
        frac = ~np.isclose(errors, np.round(errors))
        if frac.any():
            row = frame.index[np.flatnonzero(frac)[0]]
            raise UserInputError(f"row {row}, column {value_col!r}: error count is not a whole number",
                                 path=spec.path, hint="did you mean --wer-col?")
    else:
        errors = values * words
        off = np.abs(errors - np.round(errors)) > 0.01
        if off.any():
            warnings.append(f"{int(off.sum())} row(s): WER x reference words is not within 0.01 of a whole "
                            f"number of errors (rounded), e.g. row {frame.index[np.flatnonzero(off)[0]]}; "
                            f"is {value_col!r} a fraction (0.25 = 25 %)?")
    out = frame.drop(columns=[c for c in (words_col, value_col) if c in ("errors", "ref_words")], errors="ignore")
    out["ref_words"] = np.round(words).astype(np.int64)
    out["errors"] = np.round(errors).astype(np.int64)
    return out


def _numeric(col: pd.Series, name: str, path: str) -> np.ndarray:
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna() | (num < 0)
    if bad.any():
        row = col.index[np.flatnonzero(bad.to_numpy())[0]]
        raise UserInputError(f"row {row}, column {name!r}: {col.loc[row]!r} is not a non-negative number",
                             path=path, hint="fix or remove that row")
    return num.to_numpy(dtype=float)


def read_utterances(spec: InputSpec) -> RawUtterances:
    """Read the utterance input described by ``spec``; raise UserInputError on user mistakes."""
    from . import hyp_tables

    hyp_tables.check_options(spec)
    check_missing_attribute(spec.missing_attribute)
    require_file(spec.path)
    fmt = detect_format(spec.path, spec.format) if not (spec.hyp_path and not spec.format and _looks_kaldi(spec.path)) else "kaldi"
    if spec.hyp_tables and fmt not in ("csv", "tsv", "jsonl", "parquet"):
        raise UserInputError(f"--hyp-table joins hypothesis tables to a reference table, not a {fmt} file",
                             path=spec.path, hint="give INPUT as a .csv/.tsv/.jsonl/.parquet table, or use --ref/--hyp")
    if fmt in ("kaldi", "trn"):
        if spec.counts_mode:
            raise UserInputError(f"--errors-col/--wer-col need a table input, not {fmt}", path=spec.path)
        return _paired(spec, fmt)
    if fmt == "nemo":
        return _nemo(spec)
    string_cols = [spec.utt_col, spec.speaker_col, spec.ref_col, spec.hyp_col, *spec.more_hyp_cols, "zip"]
    if spec.hyp_tables:
        string_cols += hyp_tables.string_columns(spec)
    frame, bad = _read_table(spec.path, fmt, string_cols)
    frame.index = np.arange(1, len(frame) + 1)
    warnings: list[str] = []
    frame = columns.ids_as_text(frame, [spec.utt_col, spec.speaker_col], spec.path, warnings)
    if spec.hyp_tables:
        return hyp_tables.read_joined(spec, frame, bad, warnings)
    if not spec.counts_mode:
        frame = columns.numbers_as_text(frame, [spec.ref_col, spec.hyp_col, *spec.more_hyp_cols])
    need = {spec.utt_col: "--utt-col", spec.speaker_col: "--speaker-col"}
    if spec.counts_mode:
        _need(frame, need, spec.path)
        frame = _to_counts(frame, spec, warnings)
        mode = "counts"
        rename = {}
    else:
        need.update({spec.ref_col: "--ref-col", spec.hyp_col: "--hyp-col", **{h: "--hyp-col" for h in spec.more_hyp_cols}})
        _need(frame, need, spec.path)
        mode = "text"
        rename = {spec.ref_col: "reference", spec.hyp_col: "hypothesis",
                  **{h: SYSTEM_PREFIX + h for h in spec.more_hyp_cols}}
    rename.update({spec.utt_col: "utt_id", spec.speaker_col: "speaker_id"})
    # A mapped column could collide with an unrelated column that has the target name.
    clash = [v for k, v in rename.items() if v in frame.columns and k != v]
    frame = frame.drop(columns=clash).rename(columns=rename)
    names = spec.system_names
    systems = {names[0]: "hypothesis" if mode == "text" else "errors", **{n: SYSTEM_PREFIX + n for n in names[1:]}}
    if len(set(names)) != len(names):
        raise UserInputError("the same system column is given twice", path=spec.path, hint="name each column once")
    return RawUtterances(frame, mode, rows_read=len(frame) + len(bad), unparsable=bad,
                         warnings=warnings, paths=[spec.path], systems=systems, missing_values=spec.missing_values)


def _looks_kaldi(path: str) -> bool:
    name = os.path.basename(path)
    return "." not in name.replace(".gz", "")
