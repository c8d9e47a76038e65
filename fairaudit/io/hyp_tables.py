"""One reference table, one hypothesis table per system, joined by key.

Real evaluations arrive like the Artie corpus: a reference table (``client_id``,
``path``, ``sentence``, attributes) and, per recogniser, a table of ``path`` and
``prediction``.  ``--hyp-table NAME=FILE`` (repeatable) joins each hypothesis table to the
reference table INPUT; each becomes one system of the audit, side by side.

* **Columns.**  A hypothesis table's key column is ``--hyp-key-col`` (default: ``path``
  if the table has it, else ``utt_id``), its text column ``--hyp-text-col`` (default:
  ``prediction`` if present, else ``hypothesis``).  The reference table's key column is
  the column of the same name when it has one, else ``--utt-col``.  A reference table
  without ``--utt-col`` takes its key column as the utterance id.
* **Keys** match exactly (stripped text) or by file stem (the last path component without
  its last extension: ``clips/common_voice_en_1.mp3`` and ``common_voice_en_1.wav`` are
  both ``common_voice_en_1``).  ``--match-keys auto`` (default) uses exact matching when
  it matches at least as many reference rows as stem matching, else stem matching,
  decided per system; the output says which was used and how many matched.
* **Every row accounted for, per system** (rows read = reference rows + hypothesis rows
  that give no score = scored + dropped): a reference row without a hypothesis in the
  system's file is dropped as ``no_hypothesis`` (``--missing-hyp empty``: scored as an
  empty hypothesis, all deletions); a hypothesis whose key meets no reference is
  ``no_reference`` (and warned about, with examples); a repeated key (exact, or the same
  stem under stem matching) is ``duplicate_hypothesis_id`` (first kept); an empty key is
  ``missing_hypothesis_key``; a row that does not parse is ``unparsable_hypothesis``.
  An empty prediction is an empty hypothesis (all deletions), not a drop.
* **Stem collisions.**  Two reference rows whose different keys share a stem
  (``a/x.wav``, ``b/x.wav``) cannot be told apart by stem: when stem matching is used
  that is an error naming both rows (use ``--match-keys exact`` or distinct file names),
  never a silent guess.  Two reference rows with the *same* key are an error too unless
  the key is the utterance id (then the second is a ``duplicate_utt_id``, as always).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import UserInputError
from . import columns
from .common import detect_format, require_file
from .readers import MISSING_HYP_MODES, SYSTEM_PREFIX, InputSpec, RawUtterances, _need, _read_table, csv_header

MATCH_MODES = ("exact", "stem", "auto")
#: default key and text columns of a hypothesis table, in order of preference
KEY_COLUMNS = ("path", "utt_id")
TEXT_COLUMNS = ("prediction", "hypothesis")


def parse_hyp_tables(values: Iterable[str] | None) -> dict[str, str]:
    """``--hyp-table NAME=FILE`` values as {name: file}, in the order given; a value
    without ``=``, an empty name or file, or a name given twice is a one-line error."""
    out: dict[str, str] = {}
    for value in values or ():
        name, sep, path = str(value).partition("=")
        name, path = name.strip(), path.strip()
        if not sep:
            raise UserInputError(f"--hyp-table {value!r} has no NAME=",
                                 hint=f"write --hyp-table NAME=FILE, e.g. --hyp-table mysystem={value}")
        if not name or not path:
            raise UserInputError(f"--hyp-table {value!r} needs both a NAME and a FILE",
                                 hint="write --hyp-table NAME=FILE, e.g. --hyp-table amazon=predictions/amazon.tsv")
        if name in out:
            raise UserInputError(f"--hyp-table name {name!r} is given twice ({out[name]} and {path})",
                                 hint="give each system its own NAME")
        out[name] = path
    return out


def check_options(spec: InputSpec) -> None:
    """Refuse option values and combinations that a joined audit cannot take (before any
    file is read)."""
    if spec.match_keys not in MATCH_MODES:
        raise UserInputError(f"unknown --match-keys {spec.match_keys!r}",
                             hint=f"--match-keys takes one of: {', '.join(MATCH_MODES)}")
    if spec.missing_hyp not in MISSING_HYP_MODES:
        raise UserInputError(f"unknown --missing-hyp {spec.missing_hyp!r}",
                             hint=f"--missing-hyp takes one of: {', '.join(MISSING_HYP_MODES)}")
    if not spec.hyp_tables:
        return
    if spec.hyp_path or spec.more_hyp_paths:
        raise UserInputError("--hyp-table joins hypothesis tables to a reference table; --hyp takes Kaldi/trn files",
                             hint="give either --hyp-table NAME=FILE (with INPUT the reference table) or --ref/--hyp")
    if spec.counts_mode:
        raise UserInputError("--hyp-table gives transcripts; --errors-col/--wer-col give precomputed counts",
                             hint="drop one of them")
    if spec.more_hyp_cols:
        raise UserInputError("--hyp-table and --hyp-col exclude each other",
                             hint="give every system as --hyp-table NAME=FILE")
    for name, path in spec.hyp_tables.items():
        require_file(path, f"hypothesis table of {name!r}")


def file_stem(keys: pd.Series) -> pd.Series:
    """The file stem of each key: last path component ('/' or '\\\\') without its last
    extension (a leading dot is not an extension: '.wav' stays '.wav')."""
    base = keys.str.replace(r"^.*[\\/]", "", regex=True)
    return base.str.replace(r"(?<=.)\.[^.]*$", "", regex=True)


@dataclass
class HypTable:
    """A hypothesis table as read: its usable rows (key and text, in file order) and the
    rows that give none, by drop reason (one description per row)."""

    name: str
    path: str
    key_col: str
    text_col: str
    keys: pd.Series      # stripped text, index = 1-based data row
    texts: pd.Series     # hypothesis text (missing = empty hypothesis)
    rows: int            # data rows read, unparsable ones included (count)
    drops: dict[str, list[str]] = field(default_factory=dict)


def _choose(have: list[str], given: str | None, defaults: tuple[str, ...], flag: str, what: str,
            path: str) -> str:
    if given:
        if given not in have:
            raise UserInputError(f"{what} column {given!r} not found (columns: {', '.join(have[:12]) or 'none'})",
                                 path=path, hint=f"name the right column with {flag}")
        return given
    for col in defaults:
        if col in have:
            return col
    raise UserInputError(f"no {what} column: neither {' nor '.join(map(repr, defaults))} "
                         f"(columns: {', '.join(have[:12]) or 'none'})", path=path,
                         hint=f"name it with {flag} COLUMN")


def read_hyp_table(name: str, path: str, key_col: str | None = None, text_col: str | None = None) -> HypTable:
    """Read one hypothesis table (CSV/TSV/JSONL/Parquet, by extension, optionally .gz)."""
    require_file(path, f"hypothesis table of {name!r}")
    fmt = detect_format(path, None, flag=None)
    if fmt not in ("csv", "tsv", "jsonl", "parquet"):
        raise UserInputError(f"a hypothesis table must be CSV, TSV, JSONL or Parquet, not {fmt}", path=path,
                             hint="Kaldi and trn hypothesis files take --ref FILE --hyp FILE")
    if fmt in ("csv", "tsv"):
        have = csv_header(path, "," if fmt == "csv" else "\t", None)
        key = _choose(have, key_col, KEY_COLUMNS, "--hyp-key-col", "key", path)
        text = _choose(have, text_col, TEXT_COLUMNS, "--hyp-text-col", "hypothesis text", path)
        frame, bad = _read_table(path, fmt, [key, text], flag=None)
    else:
        frame, bad = _read_table(path, fmt, [], flag=None)
        have = [str(c) for c in frame.columns]
        key = _choose(have, key_col, KEY_COLUMNS, "--hyp-key-col", "key", path)
        text = _choose(have, text_col, TEXT_COLUMNS, "--hyp-text-col", "hypothesis text", path)
    if key == text:
        raise UserInputError(f"column {key!r} is both the key and the hypothesis text", path=path,
                             hint="name another column with --hyp-key-col or --hyp-text-col")
    frame.index = np.arange(1, len(frame) + 1)
    frame = columns.numbers_as_text(columns.ids_as_text(frame, [key], path, []), [text])
    base = os.path.basename(path)
    keys = frame[key].astype("string").fillna("").str.strip()
    drops: dict[str, list[str]] = {}
    if bad:
        drops["unparsable_hypothesis"] = [f"{base} {b}" for b in bad]
    empty = (keys == "").to_numpy()
    if empty.any():
        drops["missing_hypothesis_key"] = [f"{base} row {r}: empty {key!r}" for r in keys.index[empty]]
    texts = frame[text].astype(object).where(frame[text].notna(), "")   # a missing text is an empty hypothesis
    return HypTable(name, path, key, text, keys[~empty], texts[~empty], len(frame) + len(bad), drops)


@dataclass
class Joined:
    """One system's hypotheses in reference-row order, and what did not pair."""

    texts: np.ndarray            # object, one per reference row ("" where missing)
    missing: np.ndarray          # bool, one per reference row: no hypothesis in the file
    drops: dict[str, list[str]]  # hypothesis rows that give no score, by reason
    info: dict                   # report.json inputs.matching entry


def _first_repeat(values: pd.Series) -> tuple[str, list] | None:
    """The first value that occurs more than once, with the index labels of its first two
    rows; None when every value is distinct."""
    dup = values.duplicated(keep=False)
    if not dup.any():
        return None
    value = values[dup.to_numpy()].iloc[0]
    return value, list(values.index[(values == value).to_numpy()][:2])


def _ref_collisions(ref_keys: pd.Series, ref_key_col: str, utt_is_key: bool, ref_path: str, how: str) -> None:
    """Refuse reference rows that one hypothesis would pair with twice (see the module
    docstring): the same key (unless it is the utterance id: a ``duplicate_utt_id`` then),
    or, under stem matching, different keys with the same stem."""
    keys = ref_keys[(ref_keys != "").to_numpy()]
    if not utt_is_key:
        found = _first_repeat(keys)
        if found is not None:
            key, rows = found
            raise UserInputError(
                f"rows {rows[0]} and {rows[1]} of the reference table have the same key {key!r} in column "
                f"{ref_key_col!r}: one hypothesis would be scored twice", path=ref_path,
                hint="give every reference row its own key, or name a unique column with --hyp-key-col")
    if how != "stem":
        return
    distinct = keys[~keys.duplicated().to_numpy()]
    found = _first_repeat(file_stem(distinct))
    if found is not None:
        stem, rows = found
        raise UserInputError(
            f"rows {rows[0]} and {rows[1]} of the reference table have the same file stem {stem!r} "
            f"({distinct.loc[rows[0]]!r}, {distinct.loc[rows[1]]!r}) in column {ref_key_col!r}: stem matching "
            f"cannot tell them apart", path=ref_path,
            hint="pass --match-keys exact if the hypothesis keys are these exact values, or give the files "
                 "distinct names")


def _match_once(ref_keys: pd.Series, table: HypTable, how: str) -> tuple[np.ndarray, pd.Series, pd.Series]:
    """(position into the table's first rows per mapped key, or -1, per reference row;
    mapped hypothesis keys; the repeated-key mask) for ``how`` = exact or stem."""
    hk = table.keys if how == "exact" else file_stem(table.keys)
    rk = ref_keys if how == "exact" else file_stem(ref_keys)
    dup = hk.duplicated(keep="first")
    firsts = hk[~dup.to_numpy()]
    pos = pd.Index(firsts.to_numpy()).get_indexer(rk.to_numpy())
    pos[(ref_keys == "").to_numpy()] = -1
    return pos, hk, dup


def join(ref_keys: pd.Series, table: HypTable, *, match_keys: str, missing_hyp: str, ref_key_col: str,
         utt_is_key: bool, ref_path: str) -> Joined:
    """Pair one hypothesis table with the reference rows (``ref_keys``: stripped key
    text per reference row, index = reference row number)."""
    exact = _match_once(ref_keys, table, "exact")
    how = match_keys
    if match_keys == "auto":
        n_exact = int((exact[0] >= 0).sum())
        how = "exact"
        if n_exact < int((ref_keys != "").sum()):
            stem = _match_once(ref_keys, table, "stem")
            if int((stem[0] >= 0).sum()) > n_exact:
                how = "stem"
    pos, hk, dup = exact if how == "exact" else _match_once(ref_keys, table, "stem")
    _ref_collisions(ref_keys, ref_key_col, utt_is_key, ref_path, how)
    base = os.path.basename(table.path)
    firsts = table.texts[~dup.to_numpy()].to_numpy(dtype=object)
    missing = pos < 0
    texts = np.where(missing, "", firsts[np.where(missing, 0, pos)] if len(firsts) else "").astype(object)
    rk = set((ref_keys if how == "exact" else file_stem(ref_keys)).to_numpy())
    kept = hk[~dup.to_numpy()]
    orphan = ~kept.isin(rk).to_numpy()
    drops = dict(table.drops)
    if dup.any():
        drops["duplicate_hypothesis_id"] = [f"{base} row {r}: {table.key_col}={table.keys.loc[r]!r}"
                                            for r in hk.index[dup.to_numpy()]]
    if orphan.any():
        drops["no_reference"] = [f"{base} row {r}: {table.key_col}={table.keys.loc[r]!r}"
                                 for r in kept.index[orphan]]
    info = {"file": table.path, "key_column": table.key_col, "text_column": table.text_col,
            "reference_key_column": ref_key_col, "match": how, "match_option": match_keys,
            "missing_hyp": missing_hyp, "references": int(len(ref_keys)), "matched": int((~missing).sum()),
            "no_hypothesis": int(missing.sum()), "hypothesis_rows": int(table.rows),
            "no_reference": int(orphan.sum()), "duplicate_keys": int(dup.sum())}
    return Joined(texts, missing, drops, info)


def reference_key_col(frame_cols, spec: InputSpec, table: HypTable) -> str:
    """The reference table's key column for ``table``: the column of the same name as the
    table's key column when the reference table has one, else ``--utt-col``."""
    if table.key_col in frame_cols:
        return table.key_col
    if spec.utt_col in frame_cols:
        return spec.utt_col
    raise UserInputError(
        f"the reference table has neither the key column {table.key_col!r} of the hypothesis table of "
        f"{table.name!r} nor {spec.utt_col!r} (columns: {', '.join(map(str, list(frame_cols)[:12]))})",
        path=spec.path, hint="name the reference table's key column with --utt-col, or the hypothesis "
                             "table's with --hyp-key-col")


def string_columns(spec: InputSpec) -> list[str]:
    """Reference-table columns read as text for a joined audit (the candidate key columns)."""
    return [spec.hyp_key_col] if spec.hyp_key_col else list(KEY_COLUMNS)


def read_joined(spec: InputSpec, frame: pd.DataFrame, bad: list[str], warnings: list[str]) -> RawUtterances:
    """The reference table ``frame`` (as read, columns not yet renamed; ``bad``: its
    unparsable rows) joined with every hypothesis table of ``spec``."""
    tables = [read_hyp_table(name, path, spec.hyp_key_col, spec.hyp_text_col)
              for name, path in spec.hyp_tables.items()]
    cols = list(frame.columns)
    key_cols = [reference_key_col(cols, spec, t) for t in tables]
    # A reference table without --utt-col takes the (first system's) key as utterance id.
    utt_col = spec.utt_col if spec.utt_col in cols else key_cols[0]
    _need(frame, {spec.speaker_col: "--speaker-col", spec.ref_col: "--ref-col"}, spec.path)
    frame = columns.ids_as_text(frame, sorted(set(key_cols)), spec.path, warnings)
    frame = columns.numbers_as_text(frame, [spec.ref_col])
    keys = {c: frame[c].astype("string").fillna("").str.strip() for c in set(key_cols)}
    joined = {t.name: join(keys[kc], t, match_keys=spec.match_keys, missing_hyp=spec.missing_hyp,
                           ref_key_col=kc, utt_is_key=kc == utt_col, ref_path=spec.path)
              for t, kc in zip(tables, key_cols)}
    names = list(joined)
    out = frame.drop(columns=[c for c in ("reference", "hypothesis", "utt_id", "speaker_id")
                              if c in frame.columns and c not in (utt_col, spec.speaker_col, spec.ref_col)])
    out = out.rename(columns={spec.ref_col: "reference", utt_col: "utt_id", spec.speaker_col: "speaker_id"})
    out["hypothesis"] = joined[names[0]].texts
    for name in names[1:]:
        out[SYSTEM_PREFIX + name] = joined[name].texts
    system_drops = {n: j.drops for n, j in joined.items()}
    first = system_drops[names[0]]
    hyp_drops = {k: v for k, v in first.items() if k != "no_reference"}
    orphans = first.get("no_reference", [])
    rows_read = len(frame) + len(bad) + len(orphans) + sum(map(len, hyp_drops.values()))
    return RawUtterances(out, "text", rows_read=rows_read, unparsable=bad, orphan_hypotheses=orphans,
                         warnings=warnings, paths=[spec.path, *spec.hyp_tables.values()],
                         systems={names[0]: "hypothesis", **{n: SYSTEM_PREFIX + n for n in names[1:]}},
                         hypothesis_drops=hyp_drops, system_drops=system_drops,
                         missing_hypothesis=joined[names[0]].missing,
                         system_missing={n: j.missing for n, j in joined.items()}, missing_hyp=spec.missing_hyp,
                         matching={n: j.info for n, j in joined.items()}, missing_values=spec.missing_values)
