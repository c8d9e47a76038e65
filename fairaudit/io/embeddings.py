"""Read speaker embeddings (for the automatic discoverer) into one matrix per speaker.

Three layouts are accepted:

* ``.npy`` matrix (n x d) plus an ids file (``--embedding-ids``): one speaker id per
  line, in row order.  Rows are speakers.
* a table (Parquet, CSV, TSV, JSONL) with ``speaker_id`` and either many numeric vector
  columns (e.g. ``e0 .. e191``) or one list-valued column (e.g. ``embedding``; in CSV a
  string such as ``"[0.1, 0.2, ...]"``).  Rows are speakers.
* the same table keyed by ``utt_id`` (one vector per utterance): the vectors of a speaker
  are averaged (arithmetic mean, per dimension).  The utterance -> speaker mapping is the
  ``utt_to_speaker`` series (the scored utterances), or else the table's own
  ``speaker_id`` column; utterances not in the mapping are counted and ignored.

Every value must be finite; one speaker has one row (speaker-keyed input).  Mistakes raise
:class:`~fairaudit.errors.UserInputError` naming the file, the row and the fix.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import UserInputError
from .common import detect_format, read_lines, require_file, strip_gz
from .readers import _read_table

IDS_HINT = "pass --embedding-ids FILE: one speaker id per line, in the row order of the .npy matrix"
FORMAT_HINT = "name it .npy (with --embedding-ids FILE) or .parquet/.csv/.tsv/.jsonl with a speaker_id column"
#: preferred names when a table has several list-valued columns
LIST_COLUMN_NAMES = ("embedding", "embeddings", "vector", "xvector", "emb")


def read_embeddings(path: str, ids_path: str | None = None,
                    utt_to_speaker: pd.Series | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read embeddings; return (matrix, speaker ids, info).

    ``matrix``: float32, one row per speaker (n x d).  ``speaker ids``: object array of
    str, same order.  ``info``: counts and provenance: ``rows`` (input rows read),
    ``dim`` (d), ``speakers`` (n), ``source`` (``"npy"``/``"table"``), ``format``,
    ``keyed_by`` (``"speaker"``/``"utterance"``), ``unknown_utterances`` (utterance rows
    whose utterance is not in ``utt_to_speaker``, ignored), ``ignored_columns``.

    ``utt_to_speaker``: index utt_id -> value speaker_id; used when the table is keyed by
    ``utt_id``.
    """
    require_file(path, "embeddings file")
    if strip_gz(path).lower().endswith(".npy"):
        if path.lower().endswith(".gz"):
            raise UserInputError("a .npy matrix cannot be gzipped", path=path, hint="gunzip it first")
        matrix, ids = _read_npy(path, ids_path)
        info = {"rows": int(matrix.shape[0]), "source": "npy", "format": "npy", "keyed_by": "speaker",
                "unknown_utterances": 0, "ignored_columns": []}
    else:
        if ids_path is not None:
            raise UserInputError("--embedding-ids is only for a .npy matrix; a table names its rows itself",
                                 path=path, hint="drop --embedding-ids (the table's speaker_id or utt_id "
                                                 "column names the rows)")
        matrix, ids, info = _read_embedding_table(path, utt_to_speaker)
    info["dim"] = int(matrix.shape[1])
    info["speakers"] = int(matrix.shape[0])
    return matrix, ids, info


# ---------------------------------------------------------------- .npy + ids


def _read_npy(path: str, ids_path: str | None) -> tuple[np.ndarray, np.ndarray]:
    if ids_path is None:
        raise UserInputError("a .npy matrix does not say which speaker each row is", path=path, hint=IDS_HINT)
    if not os.path.isfile(ids_path):
        raise UserInputError("speaker id file not found", path=ids_path, hint=IDS_HINT)
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserInputError(f"not a readable .npy matrix: {str(exc).splitlines()[0][:160]}", path=path,
                             hint="save it with numpy.save(path, matrix) (a numeric 2-D array)") from exc
    if not isinstance(raw, np.ndarray) or raw.ndim != 2:
        shape = getattr(raw, "shape", "?")
        raise UserInputError(f"expected a 2-D matrix (speakers x dimensions), got shape {shape}", path=path,
                             hint="save one row per speaker, e.g. numpy.save(path, matrix)")
    if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool):
        raise UserInputError(f"matrix dtype {raw.dtype} is not numeric", path=path,
                             hint="save a float matrix")
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise UserInputError(f"empty matrix (shape {raw.shape})", path=path, hint="one row per speaker")

    lines = [s.strip() for s in read_lines(ids_path)]
    while lines and not lines[-1]:  # a trailing newline is not an id
        lines.pop()
    if "" in lines:
        raise UserInputError(f"line {lines.index('') + 1} is empty", path=ids_path,
                             hint="one speaker id per line, in the row order of the .npy matrix")
    if len(lines) != raw.shape[0]:
        raise UserInputError(
            f"{os.path.basename(path)} has {raw.shape[0]} rows but {os.path.basename(ids_path)} has "
            f"{len(lines)} ids", path=ids_path,
            hint="the ids file needs exactly one speaker id per matrix row, same order")
    ids = np.array(lines, dtype=object)
    _check_unique(ids, path=ids_path, where=lambda i: f"line {i + 1}",
                  hint="one row per speaker: average a speaker's vectors first")
    matrix = raw.astype(np.float32, copy=False)
    _check_finite(matrix, path, lambda i: f"row {i} (0-based; speaker {ids[i]!r})")
    return matrix, ids


# ---------------------------------------------------------------- tables


def _read_embedding_table(path: str, utt_to_speaker: pd.Series | None) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        fmt = detect_format(path, None, flag="--embeddings")
    except UserInputError:
        raise UserInputError(f"cannot tell the embeddings format from the file name "
                             f"{os.path.basename(path)!r}", path=path, hint=FORMAT_HINT) from None
    if fmt not in ("csv", "tsv", "parquet", "jsonl"):
        raise UserInputError(f"embeddings cannot be read from a {fmt} file", path=path, hint=FORMAT_HINT)
    frame, bad = _read_table(path, fmt, ["speaker_id", "utt_id"], flag=None)
    if bad:
        raise UserInputError(f"{len(bad)} unparsable row(s), first: {bad[0]}", path=path,
                             hint="fix those lines of the embeddings table")
    if len(frame) == 0:
        raise UserInputError("the embeddings table has no rows", path=path, hint="one row per speaker")
    # Name rows as the user sees them: CSV/TSV by line number (header = line 1).
    first = 2 if fmt in ("csv", "tsv") else 1
    unit = "line" if fmt in ("csv", "tsv") else "row"

    def where(i: int) -> str:
        return f"{unit} {i + first}"

    has_utt, has_spk = "utt_id" in frame.columns, "speaker_id" in frame.columns
    if not (has_utt or has_spk):
        cols = ", ".join(map(str, list(frame.columns)[:8]))
        raise UserInputError(f"no speaker_id or utt_id column (columns: {cols})", path=path,
                             hint="name the id column speaker_id (one row per speaker) or utt_id (one row per "
                                  "utterance)")
    by_utt = has_utt and (utt_to_speaker is not None or has_spk)
    if has_utt and not by_utt:
        raise UserInputError("rows are keyed by utt_id but the speaker of each utterance is unknown", path=path,
                             hint="add a speaker_id column, or use per-speaker rows")
    key_col = "utt_id" if by_utt else "speaker_id"
    keys = _ids(frame[key_col], key_col, path, where)
    matrix, ignored = _vectors(frame, path, where, exclude={"utt_id", "speaker_id"})
    _check_finite(matrix, path, lambda i: f"{where(i)} ({key_col} {keys[i]!r})")
    info = {"rows": int(len(frame)), "source": "table", "format": fmt, "unknown_utterances": 0,
            "ignored_columns": ignored}

    if not by_utt:
        _check_unique(keys, path=path, where=where, hint="one row per speaker (or key rows by utt_id to average)")
        info["keyed_by"] = "speaker"
        return matrix, keys, info

    _check_unique(keys, path=path, where=where, hint="one row per utterance")
    if utt_to_speaker is not None:
        mapping = utt_to_speaker[~utt_to_speaker.index.duplicated(keep="first")]
        pos = pd.Index(mapping.index.astype(str)).get_indexer(keys)
        known = pos >= 0
        speakers = mapping.to_numpy(dtype=object)[pos[known]].astype(str)
    else:
        speakers = _ids(frame["speaker_id"], "speaker_id", path, where)
        known = np.ones(len(keys), dtype=bool)
    unknown = int((~known).sum())
    if not known.any():
        raise UserInputError(f"none of the {len(keys)} utt_id values is an utterance of the input "
                             f"(e.g. {keys[0]!r})", path=path,
                             hint="the utt_id column must hold the utterance ids of the scored input")
    means, spk_ids = _average_by(matrix[known], speakers)
    info.update({"keyed_by": "utterance", "unknown_utterances": unknown})
    return means, spk_ids, info


def _ids(col: pd.Series, name: str, path: str, where) -> np.ndarray:
    ids = col.astype("string").fillna("").str.strip()
    empty = (ids == "").to_numpy()
    if empty.any():
        raise UserInputError(f"{where(int(np.flatnonzero(empty)[0]))}: empty {name}", path=path,
                             hint=f"every row needs a {name}")
    return ids.to_numpy(dtype=object)


def _vectors(frame: pd.DataFrame, path: str, where, exclude: set[str]) -> tuple[np.ndarray, list[str]]:
    """The vector part of a table: one list-valued column, or else every other column (numeric)."""
    cols = [c for c in frame.columns if c not in exclude]
    list_cols = [c for c in cols if not pd.api.types.is_numeric_dtype(frame[c]) and _looks_like_list(frame[c])]
    if list_cols:
        if len(list_cols) > 1:
            named = [c for c in LIST_COLUMN_NAMES if c in list_cols]
            if not named:
                raise UserInputError(f"several list-valued columns ({', '.join(map(str, list_cols))})", path=path,
                                     hint="keep one, or name the embedding column 'embedding'")
            list_cols = named[:1]
        col = list_cols[0]
        ignored = [str(c) for c in cols if c != col]
        return _list_column(frame[col], str(col), path, where), ignored
    if not cols:
        raise UserInputError("no vector columns besides the id column", path=path,
                             hint="add numeric columns (one per dimension) or one list column 'embedding'")
    for c in cols:
        if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])):
            values = frame[c]
            num = pd.to_numeric(values, errors="coerce")
            bad = np.flatnonzero((num.isna() & values.notna()).to_numpy())
            detail = f"{where(int(bad[0]))} holds {values.iloc[bad[0]]!r}" if len(bad) else "no numbers in it"
            raise UserInputError(f"column {c!r} is not numeric ({detail})", path=path,
                                 hint="an embeddings table holds the id column plus numeric vector columns only")
    # One float copy of the whole block (pandas -> numpy, no per-row work).
    matrix = frame[cols].to_numpy(dtype=np.float32, na_value=np.nan)
    return matrix, []


def _looks_like_list(col: pd.Series) -> bool:
    nonnull = col.dropna()
    if nonnull.empty:
        return False
    v = nonnull.iloc[0]
    return isinstance(v, (list, tuple, np.ndarray)) or (isinstance(v, str) and v.lstrip().startswith("["))


def _list_column(col: pd.Series, name: str, path: str, where) -> np.ndarray:
    values = col.to_numpy(dtype=object)
    if isinstance(col.dropna().iloc[0], str):
        return _parse_list_strings(col, name, path, where)
    null = pd.isna(col).to_numpy()
    if null.any():
        raise UserInputError(f"{where(int(np.flatnonzero(null)[0]))}: column {name!r} is empty", path=path,
                             hint="every row needs a vector")
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    _check_lengths(lengths, name, path, where)
    try:
        return np.vstack(values).astype(np.float32)  # one C-level copy of all rows
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"column {name!r} holds non-numeric vector values ({exc})", path=path,
                             hint="every vector entry must be a number") from exc


def _parse_list_strings(col: pd.Series, name: str, path: str, where) -> np.ndarray:
    """CSV cells like "[0.1, 0.2]" or "0.1 0.2": parsed in one pass over all cells, not per row."""
    text = col.astype("string").fillna("").str.strip().str.strip("[]").str.replace(r"[,;\s]+", " ", regex=True)
    text = text.str.strip()
    tokens = text.str.split()
    lengths = tokens.str.len().fillna(0).to_numpy(dtype=np.int64)
    empty = lengths == 0
    if empty.any():
        raise UserInputError(f"{where(int(np.flatnonzero(empty)[0]))}: column {name!r} is empty", path=path,
                             hint="every row needs a vector")
    _check_lengths(lengths, name, path, where)
    flat = " ".join(text.tolist()).split()
    try:
        values = np.array(flat, dtype=np.float64)
    except ValueError as exc:
        bad = next(t for t in flat if not _is_float(t))
        row = int(np.flatnonzero(text.str.contains(bad, regex=False).to_numpy())[0])
        raise UserInputError(f"{where(row)}: column {name!r} holds {bad!r}, not a number", path=path,
                             hint="vector entries must be numbers") from exc
    return values.reshape(len(col), int(lengths[0])).astype(np.float32)


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _check_lengths(lengths: np.ndarray, name: str, path: str, where) -> None:
    off = np.flatnonzero(lengths != lengths[0])
    if len(off):
        i = int(off[0])
        raise UserInputError(f"{where(i)}: vector in column {name!r} has {lengths[i]} values, the first row has "
                             f"{lengths[0]}", path=path, hint="all vectors need the same dimension")


# ---------------------------------------------------------------- checks and averaging


def _check_finite(matrix: np.ndarray, path: str, where) -> None:
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if len(bad):
        raise UserInputError(f"{where(int(bad[0]))} has a non-finite value (NaN or inf)"
                             + (f"; {len(bad)} rows do" if len(bad) > 1 else ""), path=path,
                             hint="fix or drop those rows (a missing speaker is simply not audited)")


def _check_unique(ids: np.ndarray, *, path: str, where, hint: str) -> None:
    dup = pd.Index(ids).duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(ids == ids[i])[0])
        raise UserInputError(f"{where(i)}: id {ids[i]!r} appears again (first at {where(first)})", path=path,
                             hint=hint)


def _average_by(matrix: np.ndarray, speakers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-speaker mean of the rows (vectorised: sort by speaker, sum contiguous blocks)."""
    codes, uniques = pd.factorize(pd.Series(speakers, dtype=object), sort=True)
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
    # float64 sums so that averaging many utterances loses no precision
    sums = np.add.reduceat(matrix[order].astype(np.float64), starts, axis=0)
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.float64)
    means = (sums / counts[:, None]).astype(np.float32)
    return means, np.asarray(uniques, dtype=object).astype(str).astype(object)
