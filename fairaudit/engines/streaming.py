"""Bounded-memory scoring: read the input in chunks, score each, keep compact counts.

Parquet is read row group by row group (``ParquetFile.iter_batches``), CSV/TSV with
pyarrow's streaming CSV reader (the parse options and invalid-row accounting of
:mod:`fairaudit.io.readers`), JSONL with pyarrow's streaming JSON reader.  Each chunk
goes through :class:`~fairaudit.engines.accumulate.Accumulator`, so the scored set equals
the in-memory engine's except that it holds no transcripts: the few the report shows
(worst utterances) are read again by row number (:class:`TextSource`).
"""
from __future__ import annotations

import glob
import os
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import UserInputError
from ..io.common import detect_format, require_file
from ..io import columns, text_files
from ..io.readers import InputSpec, _need, _short, _undecodable_or, csv_header
from ..speakers import ScoredSet
from .accumulate import Accumulator

#: rows per chunk: about 0.3 GB of transient memory with 10-word transcripts
DEFAULT_CHUNK_ROWS = 500_000
_CSV_BLOCK = 1 << 24


def parquet_files(path: str) -> list[str]:
    """The Parquet files of ``path``: the file itself, or a directory's/glob's ``*.parquet`` (sorted)."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path))
    else:
        require_file(path)
        return [path]
    if not files:
        raise UserInputError("no Parquet files found", path=path, hint="pass a .parquet file, a directory of them or a glob")
    return files


def input_format(spec: InputSpec) -> str:
    if os.path.isdir(spec.path) or any(ch in spec.path for ch in "*?["):
        return "parquet"
    require_file(spec.path)
    return detect_format(spec.path, spec.format)


def check_streamable(spec: InputSpec, engine: str) -> str:
    """The table format of ``spec``, or a UserInputError saying why ``engine`` cannot read it."""
    fmt = input_format(spec)
    allowed = ("parquet",) if engine == "dask" else ("parquet", "csv", "tsv", "jsonl")
    if fmt not in allowed or spec.hyp_path:
        raise UserInputError(f"--engine {engine} reads {'/'.join(allowed)} tables, not {fmt}", path=spec.path,
                             hint="use --engine default for this input")
    if spec.counts_mode:
        raise UserInputError(f"--engine {engine} scores transcripts; precomputed counts take the default engine",
                             path=spec.path, hint="use --engine default (counts need little memory)")
    if len(spec.system_names) > 1:
        raise UserInputError(f"--engine {engine} scores one system at a time", path=spec.path,
                             hint="give one --hyp-col, or use --engine default")
    return fmt


def _string_cols(spec: InputSpec) -> list[str]:
    return [spec.utt_col, spec.speaker_col, spec.ref_col, spec.hyp_col, "zip"]


class _CsvBad:
    """The readers' invalid-row handler: count every bad row, keep the first 5 messages."""

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []

    def __call__(self, row):
        self.count += 1
        if len(self.examples) < 5:
            # The in-memory reader parses in parallel and never knows the line number.
            self.examples.append(f"a line: expected {row.expected_columns} fields, got {row.actual_columns}")
        return "skip"


def _csv_reader(path: str, delimiter: str, spec: InputSpec, bad: _CsvBad, columns: list[str] | None = None):
    quote = '"' if delimiter == "," else False
    header = csv_header(path, delimiter)
    parse = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=bad, newlines_in_values=delimiter == ",",
                               quote_char=quote)
    types = {c: pa.string() for c in _string_cols(spec) if c in header}
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False,
                                   include_columns=columns or [])
    encoding = text_files.current_encoding()
    try:
        return text_files.with_block_retry(lambda size: pacsv.open_csv(
            path, parse_options=parse, convert_options=convert,
            read_options=pacsv.ReadOptions(block_size=max(size, _CSV_BLOCK), encoding=encoding)))
    except pa.ArrowInvalid as exc:
        raise _undecodable_or(exc, path, UserInputError(
            f"cannot parse: {_short(exc)}", path=path,
            hint="fix that line or pass --input-format to choose another reader")) from exc


def _batches(reader, path: str) -> Iterator[pa.RecordBatch]:
    try:
        for batch in reader:
            yield batch
    except pa.ArrowInvalid as exc:
        if text_files.is_block_too_small(exc):
            # The first block was read at open time with a retried size; a longer row
            # further down cannot be re-read without starting again.
            raise UserInputError(f"a row is longer than the streaming reader's block ({_CSV_BLOCK >> 20} MB)",
                                 path=path, hint="use --engine default (it retries with larger blocks)") from exc
        raise _undecodable_or(exc, path, UserInputError(
            f"cannot parse: {_short(exc)}", path=path,
            hint="fix that line, or use --engine default (it reads bad JSON lines one by one)")) from exc


def iter_batches(spec: InputSpec, fmt: str, chunk_rows: int, bad: _CsvBad,
                 columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``chunk_rows`` rows, in input order."""
    if fmt == "parquet":
        for path in parquet_files(spec.path):
            try:
                pf = pq.ParquetFile(path)
                yield from pf.iter_batches(batch_size=chunk_rows, columns=columns)
            except (pa.ArrowInvalid, OSError) as exc:
                raise UserInputError(f"not a readable Parquet file: {_short(exc)}", path=path,
                                     hint="pass --input-format if the extension is wrong") from exc
        return
    if fmt in ("csv", "tsv"):
        reader = _csv_reader(spec.path, "," if fmt == "csv" else "\t", spec, bad, columns)
    else:
        import pyarrow.json as pajson

        if not text_files.is_utf8():
            raise UserInputError(f"the streaming JSONL reader reads UTF-8 only, not {text_files.current_encoding()}",
                                 path=spec.path, hint="use --engine default, or re-encode the file as UTF-8")
        try:
            reader = pajson.open_json(spec.path, read_options=pajson.ReadOptions(block_size=_CSV_BLOCK))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise UserInputError(f"cannot parse: {_short(exc)}", path=spec.path,
                                 hint="use --engine default (it reads bad JSON lines one by one)") from exc
    for batch in _batches(reader, spec.path):
        if columns is not None and fmt == "jsonl":
            batch = batch.select([c for c in columns if c in batch.schema.names])
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def _rename(spec: InputSpec) -> dict[str, str]:
    return {spec.ref_col: "reference", spec.hyp_col: "hypothesis", spec.utt_col: "utt_id",
            spec.speaker_col: "speaker_id"}


def to_frame(batch: pa.RecordBatch | pa.Table, spec: InputSpec, first_row: int) -> pd.DataFrame:
    """A chunk as the in-memory reader would see it: renamed columns, 1-based row numbers."""
    frame = batch.to_pandas()
    frame = columns.numbers_as_text(columns.ids_as_text(frame, [spec.utt_col, spec.speaker_col], spec.path, []),
                                    [spec.ref_col, spec.hyp_col])
    rename = _rename(spec)
    clash = [v for k, v in rename.items() if v in frame.columns and k != v]
    frame = frame.drop(columns=clash).rename(columns=rename)
    frame.index = np.arange(first_row, first_row + len(frame))
    return frame


def _check_columns(batch: pa.RecordBatch, spec: InputSpec) -> None:
    cols = pd.DataFrame(columns=batch.schema.names)
    _need(cols, {spec.utt_col: "--utt-col", spec.speaker_col: "--speaker-col", spec.ref_col: "--ref-col",
                 spec.hyp_col: "--hyp-col"}, spec.path)


class TextSource:
    """Reference/hypothesis of given input rows, read again from the input (a second pass).

    Parquet reads only the row groups holding the rows; CSV/TSV/JSONL stream the file again.
    Rows are the 1-based row numbers of the scored set's ``utterances`` index.
    """

    def __init__(self, spec: InputSpec, fmt: str) -> None:
        self.spec, self.fmt = spec, fmt

    def __call__(self, rows) -> pd.DataFrame:
        rows = np.unique(np.asarray(rows, np.int64))
        cols = [self.spec.ref_col, self.spec.hyp_col]
        found = []
        if self.fmt == "parquet":
            start = 1
            for path in parquet_files(self.spec.path):
                pf = pq.ParquetFile(path)
                for g in range(pf.metadata.num_row_groups):
                    n = pf.metadata.row_group(g).num_rows
                    want = rows[(rows >= start) & (rows < start + n)]
                    if len(want):
                        t = pf.read_row_group(g, columns=cols).take(pa.array(want - start))
                        found.append(to_frame(t, self.spec, 0).set_axis(want))
                    start += n
        else:
            start = 1
            for batch in iter_batches(self.spec, self.fmt, DEFAULT_CHUNK_ROWS, _CsvBad(), cols):
                n = batch.num_rows
                want = rows[(rows >= start) & (rows < start + n)]
                if len(want):
                    found.append(to_frame(batch.take(pa.array(want - start)), self.spec, 0).set_axis(want))
                start += n
        if not found:
            return pd.DataFrame({"reference": pd.Series(dtype=object), "hypothesis": pd.Series(dtype=object)})
        return pd.concat(found)[["reference", "hypothesis"]]


def score_streaming(spec: InputSpec, normalization: str = "default", speaker_table: pd.DataFrame | None = None,
                    required_attributes=(), *, chunk_rows: int | None = None, workers: int | None = None,
                    progress=None, unit: str = "word", alignment: str = "jiwer") -> ScoredSet:
    """Score a Parquet/CSV/TSV/JSONL utterance table in chunks of ``chunk_rows`` rows.

    Same result as ``score(read_utterances(spec), ...)`` (same speaker table, accounting
    and utterance counts) with memory bounded by the chunk size plus compact
    per-utterance counts (about 60 bytes per utterance); ``utterances`` has no transcripts.
    """
    fmt = check_streamable(spec, "streaming")
    chunk_rows = DEFAULT_CHUNK_ROWS if chunk_rows is None else int(chunk_rows)
    if chunk_rows < 1:
        raise UserInputError(f"--chunk-rows {chunk_rows} must be at least 1")
    bad = _CsvBad()
    acc = Accumulator(normalization, workers=workers, progress=progress, unit=unit, alignment=alignment)
    row = 1
    warnings: list[str] = []
    for i, batch in enumerate(iter_batches(spec, fmt, chunk_rows, bad)):
        if i == 0:
            _check_columns(batch, spec)
            columns.check_unique_names(batch.schema.names, spec.path)
            text_files.check_decodable_table(pa.Table.from_batches([batch]), spec.path)
            warnings = columns.float_id_warnings(batch.schema, [spec.utt_col, spec.speaker_col], spec.path)
        acc.add(to_frame(batch, spec, row))
        row += batch.num_rows
    if row == 1:  # no batch at all: the in-memory reader names the missing columns the same way
        _check_columns(pa.RecordBatch.from_pydict({}), spec) if fmt != "parquet" else None
    acc.unparsable(bad.count, bad.examples)
    paths = [spec.path]
    return acc.finish(speaker_table, required_attributes, paths, warnings=warnings,
                      text_source=TextSource(spec, fmt))
