"""From read rows to scored utterances and the per-speaker table, accounting for every row."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .accounting import Accounting
from .errors import UserInputError
from .io.missing import MissingValues
from .lookup import _arrow, isin
from .io.readers import RawUtterances
from .geo_sanity import coordinate_warnings, warm_places
from .text_checks import unspaced_rows, unspaced_warning
from .scoring import COUNT_COLUMNS, Counts, count_errors, start_count_errors

COUNT_FIELDS = ["ref_words", "substitutions", "deletions", "insertions", "errors"]
UTTERANCE_COLUMNS = ["utt_id", "speaker_id", "ref_words", "hits", "substitutions", "deletions",
                     "insertions", "errors", "wer"]
SPEAKER_COLUMNS = ["speaker_id", "utterances", "ref_words", "substitutions", "deletions", "insertions",
                   "errors", "wer"]
# Columns of a speaker table with a meaning to the discoverers.
GEO_COLUMNS = ("lat", "lon", "zip")


@dataclass
class ScoredSet:
    """A scored test set: utterance and speaker tables plus the row accounting.

    ``utterances`` has one row per scored utterance (:data:`UTTERANCE_COLUMNS`, counts of
    words; ``wer`` is a ratio) and keeps ``reference``/``hypothesis`` when the input had
    text.  ``speakers`` has one row per speaker (:data:`SPEAKER_COLUMNS` plus attribute
    columns); its ``wer`` is micro-averaged: sum(errors) / sum(ref_words).
    """

    utterances: pd.DataFrame
    speakers: pd.DataFrame
    accounting: Accounting
    normalization: str
    mode: str
    attribute_columns: list[str] = field(default_factory=list)
    #: chunked engines keep no transcripts in ``utterances``: this callable takes row
    #: numbers (the ``utterances`` index) and returns their ``reference``/``hypothesis``
    #: (a frame indexed by row number), read again from the input
    text_source: Callable[[np.ndarray], pd.DataFrame] | None = field(default=None, repr=False)
    #: what a token is (``word``, ``char``, ``mixed``: :mod:`fairaudit.units`) and how
    #: utterances were aligned (``jiwer`` or ``sclite``); counts columns keep their names
    unit: str = "word"
    alignment: str = "jiwer"
    #: what report.json ``inputs`` says about how the input was read: ``matching`` (per
    #: system, how hypotheses met references), ``na_values``, ``missing_attribute``
    input_report: dict = field(default_factory=dict)

    @property
    def overall(self) -> dict:
        """Overall WER (ratio), errors, reference words, speakers and utterances (counts)."""
        words = int(self.speakers["ref_words"].sum())
        errors = int(self.speakers["errors"].sum())
        return {"wer": errors / words if words else None, "errors": errors, "ref_words": words,
                "speakers": int(len(self.speakers)), "utterances": int(len(self.utterances))}


def _clean_ids(col: pd.Series) -> pd.Series:
    return col.astype("string").fillna("").str.strip()


# The dtype pandas gives a column of Python strings: "str" (pyarrow-backed) in pandas 3,
# object before.  Output columns keep it, as when they were built from object arrays.
_STR = pd.Series(["x"]).dtype


def _rows(obj, rows: np.ndarray | None):
    return obj if rows is None else obj.iloc[rows]


def _id_column(ids: pd.Series, rows: np.ndarray | None):
    """Cleaned ids of the scored rows, as :data:`_STR` (arrow to arrow: no Python objects)."""
    if isinstance(_STR, pd.StringDtype):
        return _rows(ids, rows).astype(_STR).array
    return _rows(ids, rows).to_numpy(dtype=object)


def _text_column(col: pd.Series, rows: np.ndarray | None):
    """A transcript column for the utterance table (shared with the input when possible)."""
    if col.dtype == _STR and isinstance(_STR, pd.StringDtype):
        return _rows(col, rows).array
    values = col.to_numpy(dtype=object)
    return values if rows is None else values[rows]


def _is_arrow_text(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.StringDtype) and col.dtype.storage == "pyarrow"


def _text_array(col: pd.Series, rows: np.ndarray | None) -> pa.Array | pa.ChunkedArray:
    """The transcripts to score as pyarrow strings (nulls score as empty).

    A pyarrow-backed string column (pandas 3 reading Parquet/CSV) is handed over as is:
    converting a million transcripts to Python objects and back cost more than scoring.
    """
    if _is_arrow_text(col):
        arr = pa.array(col.array)
        return arr if rows is None else arr.take(pa.array(rows))
    values = col.to_numpy(dtype=object)
    return pa.array(values if rows is None else values[rows], type=pa.string(), from_pandas=True)


def check_rows(frame: pd.DataFrame, acc: Accounting, duplicated=None) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """The row checks every engine applies, in order: missing utt id, duplicate utt id
    (first kept), missing speaker id.  Each dropped row is counted in ``acc`` with its reason.

    ``frame``: utt_id/speaker_id columns, index = 1-based input row numbers.
    ``duplicated(utt, present)``: the duplicate mask (default: within ``frame``); the
    chunked engines pass one that also remembers ids of earlier chunks.
    Returns (cleaned utt ids, cleaned speaker ids, keep mask).
    """
    utt = _clean_ids(frame["utt_id"])
    spk = _clean_ids(frame["speaker_id"])
    keep = np.ones(len(frame), bool)

    def drop(mask: np.ndarray, reason: str) -> None:
        mask = mask & keep
        if mask.any():
            rows = frame.index[mask][:5]
            acc.drop(reason, int(mask.sum()), [f"row {r} (utt_id={utt.loc[r]!r})" for r in rows])
            keep[mask] = False

    present = (utt != "").to_numpy()
    drop(~present, "missing_utt_id")
    dup = duplicated(utt, present) if duplicated else _duplicated(utt) & present
    drop(dup, "duplicate_utt_id")
    drop((spk == "").to_numpy(), "missing_speaker_id")
    return utt, spk, keep


def _duplicated(ids: pd.Series) -> np.ndarray:
    """``ids.duplicated(keep="first")`` as a numpy mask; all-distinct ids (the usual case)
    are recognised by one Arrow hash pass (``pc.unique``: a third of pandas' time)."""
    arr = _arrow(ids)
    if arr is not None and len(pc.unique(arr)) == len(ids):
        return np.zeros(len(ids), bool)
    return ids.duplicated(keep="first").to_numpy()


def score(raw: RawUtterances, normalization: str = "default", speaker_table: pd.DataFrame | None = None,
          required_attributes: list[str] | tuple[str, ...] = (), *, workers: int | None = None,
          progress=None, unit: str = "word", alignment: str = "jiwer",
          utterance_columns: list[str] | tuple[str, ...] = ()) -> ScoredSet:
    """Score every utterance, drop (and count) what cannot be scored, aggregate per speaker.

    ``speaker_table``: indexed by speaker id (see :func:`fairaudit.io.read_speakers`).
    ``required_attributes``: columns that must exist per speaker (from the speaker table
    or constant per speaker in the utterance table), e.g. those named by ``--by``.
    ``unit``/``alignment``: see :func:`fairaudit.scoring.count_errors`.
    ``utterance_columns``: input columns kept on the scored utterance table (values may
    differ between a speaker's utterances), e.g. the covariates of ``--adjust``; names
    the input does not have are ignored here (the speaker table may have them).
    """
    acc = Accounting(rows_read=raw.rows_read)
    acc.warnings.extend(raw.warnings)
    acc.drop("unparsable_row", len(raw.unparsable), raw.unparsable[:5])
    acc.drop("no_reference", len(raw.orphan_hypotheses), raw.orphan_hypotheses[:5])
    for reason, lines in raw.hypothesis_drops.items():
        acc.drop(reason, len(lines), lines[:5])
    if raw.orphan_hypotheses:
        acc.warnings.append(f"{len(raw.orphan_hypotheses):,} hypothesis row(s) have no reference and are not scored, "
                            f"e.g. {'; '.join(map(str, raw.orphan_hypotheses[:3]))}")
    frame = raw.frame
    if raw.mode == "text":
        note = unspaced_warning(unspaced_rows(_text_array(frame["reference"], None)), len(frame))
        acc.warnings.extend([note] if note else [])
    # Scoring starts first when the transcripts are pyarrow strings: the worker processes
    # then count while this thread checks the ids (dropped rows are scored too, and their
    # counts discarded).  Other columns are converted after the drops, as they always were.
    pending = None
    if raw.mode == "text" and _is_arrow_text(frame["reference"]) and _is_arrow_text(frame["hypothesis"]):
        pending = start_count_errors(pa.array(frame["reference"].array), pa.array(frame["hypothesis"].array),
                                     normalization, workers=workers, progress=progress, unit=unit,
                                     alignment=alignment)
    try:
        utt, spk, keep = check_rows(frame, acc)
        _missing_hypotheses(raw, frame, utt, keep, acc)
        # Speaker codes for the per-speaker sums, also while the workers count.
        spk_codes, spk_names = pd.factorize(spk, sort=True)
        spk_names = spk_names.astype(_STR)
        if pending is not None and speaker_table is not None and {"lat", "lon"} <= set(speaker_table.columns):
            warm_places()   # the coordinate check's place index, built while the workers count

        if raw.mode == "text":
            if pending is not None:
                c = pending.result()
                if not keep.all():
                    c = Counts(*(getattr(c, f)[keep] for f in COUNT_COLUMNS))
            else:
                rows = None if keep.all() else np.flatnonzero(keep)
                c = count_errors(_text_array(frame["reference"], rows), _text_array(frame["hypothesis"], rows),
                                 normalization, workers=workers, progress=progress, unit=unit,
                                 alignment=alignment)
            counts = pd.DataFrame({"ref_words": c.ref_words, "hits": c.hits, "substitutions": c.substitutions,
                                   "deletions": c.deletions, "insertions": c.insertions})
        else:
            sub = frame.loc[keep]
            na = pd.array([pd.NA] * int(keep.sum()), dtype="Int64")
            counts = pd.DataFrame({"ref_words": sub["ref_words"].to_numpy(), "hits": na, "substitutions": na,
                                   "deletions": na, "insertions": na})
            counts["_errors"] = sub["errors"].to_numpy()
            if progress:
                progress(len(sub))
    finally:
        if pending is not None:
            pending.close()
    kept_index = frame.index[keep]
    counts.index = kept_index
    errors = counts.pop("_errors") if "_errors" in counts else (
        counts["substitutions"] + counts["deletions"] + counts["insertions"])

    empty = (counts["ref_words"] == 0).to_numpy()
    if empty.any():
        if raw.mode == "text":
            acc.empty_reference_insertions = int(counts["insertions"].to_numpy()[empty].sum())
        else:
            acc.empty_reference_insertions = int(errors.to_numpy()[empty].sum())
        rows = kept_index[empty]
        acc.drop("empty_reference", int(empty.sum()), [f"row {r} (utt_id={utt.loc[r]!r})" for r in rows[:5]])
    ok = ~empty
    idx = kept_index[ok]
    # Row positions (in ``frame``) of the scored rows; None when every row is scored, so
    # the columns are reused as they are instead of gathered row by row.
    scored_rows = np.flatnonzero(keep)[ok] if not (ok.all() and keep.all()) else None
    utts = pd.DataFrame({"utt_id": _id_column(utt, scored_rows), "speaker_id": _id_column(spk, scored_rows)})
    for col in ("ref_words", "hits", "substitutions", "deletions", "insertions"):
        utts[col] = counts[col].to_numpy()[ok]
    utts["errors"] = errors.to_numpy()[ok]
    utts["wer"] = utts["errors"] / utts["ref_words"]
    if raw.mode == "text":
        utts["reference"] = _text_column(frame["reference"], scored_rows)
        utts["hypothesis"] = _text_column(frame["hypothesis"], scored_rows)
    for col in utterance_columns:
        if col in frame.columns and col not in utts.columns:
            utts[col] = _rows(frame[col], scored_rows).to_numpy()
    utts.index = idx
    acc.rows_scored = len(utts)
    acc.check()

    speakers = _aggregate(utts, spk_codes if scored_rows is None else spk_codes[scored_rows], spk_names)
    extra = [c for c in frame.columns if c not in _CORE]
    extra_frame = _rows(frame[extra], scored_rows) if extra else None
    speakers, attribute_columns = attach_attributes(speakers, extra_frame, _rows(spk, scored_rows), raw.paths,
                                                    speaker_table, required_attributes, acc, raw.missing_values)
    return ScoredSet(utts, speakers.reset_index(drop=True), acc, normalization, raw.mode, attribute_columns,
                     unit=unit, alignment=alignment, input_report=input_report(raw))


def input_report(raw: RawUtterances) -> dict:
    """The report.json ``inputs`` fields of how ``raw`` was read (see :class:`ScoredSet`)."""
    return {**({"matching": raw.matching} if raw.matching else {}), **raw.missing_values.to_report()}


def _missing_hypotheses(raw: RawUtterances, frame: pd.DataFrame, utt: pd.Series, keep: np.ndarray,
                        acc: Accounting) -> None:
    """Rows the system's hypothesis file has no hypothesis for (``raw.missing_hypothesis``):
    dropped as ``no_hypothesis`` (``keep`` updated in place), or with ``missing_hyp="empty"``
    scored as empty output (all deletions), with a warning."""
    if raw.missing_hypothesis is None:
        return
    mask = raw.missing_hypothesis & keep
    if not mask.any():
        return
    rows = frame.index[mask]
    examples = [f"row {r} (utt_id={utt.loc[r]!r})" for r in rows[:5]]
    if raw.missing_hyp == "empty":
        acc.warnings.append(f"{int(mask.sum()):,} utterance(s) have no hypothesis and are scored as empty output "
                            f"(all deletions, --missing-hyp empty), e.g. {', '.join(examples[:3])}")
        return
    acc.drop("no_hypothesis", int(mask.sum()), examples)
    keep[mask] = False


def attach_attributes(speakers: pd.DataFrame, extra: pd.DataFrame | None, spk: pd.Series, paths: list[str],
                      speaker_table: pd.DataFrame | None, required_attributes, acc: Accounting,
                      missing_values: MissingValues | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Speaker attributes from the utterance table (``extra``: its other columns for the
    scored rows, ``spk`` their cleaned speaker ids) and from ``speaker_table``.

    ``missing_values``: which attribute cells mean "unknown" (:mod:`fairaudit.io.missing`; default
    empty cells and NA, N/A, null, None, nan): they become ``pd.NA`` here, once for every
    discoverer, and the speakers per column are counted in ``acc.attribute_missing``.
    Shared by every engine, so in-memory and chunked scoring give the same speaker table.
    """
    attrs = None
    if extra is not None and len(extra.columns):
        attrs = _utterance_attributes(extra, spk, paths, required_attributes)
    if attrs is not None:
        speakers = _join(speakers, attrs)
    if speaker_table is not None:
        acc.warnings.extend(speaker_table.attrs.get("warnings", []))
        unknown = int((~isin(speakers["speaker_id"], speaker_table.index)).sum())
        if unknown:
            acc.warnings.append(f"{unknown} speaker(s) have no row in the speaker table (their attributes are empty)")
        acc.count_speaker_table(speaker_table.index, speakers["speaker_id"])
        clash = [c for c in speaker_table.columns if c in speakers.columns]
        if clash:
            acc.warnings.append(f"column(s) {', '.join(clash)} taken from the speaker table, not the utterance table")
            speakers = speakers.drop(columns=clash)
        speakers = _join(speakers, speaker_table)
    acc.warnings.extend(coordinate_warnings(speakers))
    missing = [c for c in required_attributes if c not in speakers.columns]
    if missing:
        raise UserInputError(f"speaker attribute {missing[0]!r} not found in the speaker table or the utterance table",
                             hint="add the column, or pass --speakers FILE with it")
    attribute_columns = [c for c in speakers.columns if c not in SPEAKER_COLUMNS]
    # Coordinates are numbers already (an unreadable one is an error); the geographic
    # discoverer counts speakers without them itself.
    speakers, acc.attribute_missing = (missing_values or MissingValues()).mark(
        speakers, [c for c in attribute_columns if c not in ("lat", "lon")])
    return speakers, attribute_columns


def _join(speakers: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """``speakers`` with the columns of ``table`` (indexed by speaker id) joined on
    ``speaker_id``; with no speaker at all (every row dropped) the columns are added empty
    (pandas cannot join empty pyarrow-backed keys)."""
    if len(speakers) == 0 or len(table) == 0:
        out = speakers.copy()
        for col in table.columns:
            out[col] = pd.Series(index=out.index, dtype=object if len(speakers) else table[col].dtype)
        return out
    return speakers.join(table, on="speaker_id")


def _aggregate(utts: pd.DataFrame, codes: np.ndarray, names: pd.Index) -> pd.DataFrame:
    """:func:`aggregate_speakers` from speaker codes (``pd.factorize(..., sort=True)``).

    With plain int64 counts, sums are one ``np.bincount`` per column instead of a
    groupby over a million string keys; anything else takes the groupby.
    """
    cols = [c for c in COUNT_FIELDS if c in utts.columns]
    if len(codes) != len(utts) or (len(codes) and codes.min() < 0) or \
            any(utts[c].dtype != np.int64 for c in cols) or cols != COUNT_FIELDS:
        return aggregate_speakers(utts)
    size = np.bincount(codes, minlength=len(names))
    present = size > 0  # speakers whose every row was dropped have no row here
    out = pd.DataFrame({"speaker_id": names[present], "utterances": size[present]})
    for c in cols:
        # float64 sums of integers are exact below 2**53 words.
        out[c] = np.bincount(codes, weights=utts[c].to_numpy(), minlength=len(names))[present].astype(np.int64)
    out["wer"] = out["errors"] / out["ref_words"]
    return out[SPEAKER_COLUMNS]


def aggregate_speakers(utts: pd.DataFrame) -> pd.DataFrame:
    """Per-speaker sums and micro WER (sum errors / sum reference words)."""
    g = utts.groupby("speaker_id", sort=True)
    cols = [c for c in COUNT_FIELDS if c in utts.columns]
    sums = g[cols].sum(min_count=1)
    sums.insert(0, "utterances", g.size())
    sums["wer"] = sums["errors"] / sums["ref_words"]
    return sums.reset_index()[SPEAKER_COLUMNS]


_CORE = {"utt_id", "speaker_id", "reference", "hypothesis", "errors", "ref_words"}
# Utterance-table columns that are counts or derived from them, never speaker attributes
# (a WER column of a counts-mode input is constant per speaker when each has one utterance).
_NOT_ATTRIBUTES = {"utterances", "hits", "substitutions", "deletions", "insertions", "wer"}
# Below this many speakers a column with a different value for every speaker may still be
# an attribute; above it, such a text column is an id, a path or a transcript.
_ID_LIKE_MIN_SPEAKERS = 20


def _utterance_attributes(frame: pd.DataFrame, spk: pd.Series, paths: list[str],
                          required: list[str] | tuple[str, ...]) -> pd.DataFrame | None:
    """Columns of the utterance table that are constant within each speaker: the speaker
    attributes an utterance table carries (age, gender, accent, ...), one row per speaker.

    Every such column is attached, whether or not ``required`` names it, so that the
    discoverers that search attributes see them; left out are counts (:data:`_NOT_ATTRIBUTES`)
    and, unless ``required``, text columns with a different value for every speaker (ids,
    paths, transcripts when each speaker has one utterance).  A ``required`` or geographic
    column that varies within a speaker is an error.  Vectorised: one ``factorize`` per
    column and a comparison with the speaker's first row, no groupby over strings.
    """
    extra = [c for c in frame.columns if c not in _CORE and (c not in _NOT_ATTRIBUTES or c in required)]
    if not extra:
        return None
    codes, names = pd.factorize(_id_column(spk, None), sort=True)
    # One row of each speaker, in code order (which row does not matter: a column is kept
    # only if every row of the speaker agrees with it); cheaper than sorting for the first.
    first = np.empty(len(names), dtype=np.int64)
    first[codes] = np.arange(len(codes))
    constant = []
    for c in extra:
        col_codes = pd.factorize(frame[c], use_na_sentinel=True)[0]   # NaN is one value (code -1)
        differs = col_codes != col_codes[first][codes]
        if differs.any():
            if c in required or c in GEO_COLUMNS:
                bad = names[int(codes[differs].min())]   # the first such speaker, sorted
                raise UserInputError(f"column {c!r} differs between utterances of speaker {bad!r}",
                                     path=paths[0] if paths else None,
                                     hint="a speaker attribute must be constant per speaker; put it in --speakers FILE")
            continue
        per_speaker = col_codes[first]
        id_like = (len(first) >= _ID_LIKE_MIN_SPEAKERS and not pd.api.types.is_numeric_dtype(frame[c])
                   and len(np.unique(per_speaker)) == len(first))
        if id_like and c not in required and c not in GEO_COLUMNS:
            continue
        constant.append(c)
    if not constant:
        return None
    out = frame[constant].iloc[first]
    out.index = pd.Index(names, name="speaker_id")
    for col in ("lat", "lon"):
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    if "zip" in out:
        out["zip"] = out["zip"].astype("string")
    return out
