"""Chunk by chunk to one :class:`~fairaudit.speakers.ScoredSet`: the row checks of
:func:`fairaudit.speakers.score`, applied to consecutive chunks of the input.

Shared by the streaming and the Dask engine.  Chunks must arrive in input order with
their 1-based input row numbers; then every drop (reason, count, examples), every
per-speaker sum and the utterance table equal those of the in-memory engine.  Only
compact per-utterance columns are kept (ids, speaker codes, int32 counts): no
transcripts.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..accounting import Accounting
from ..scoring import count_errors
from ..text_checks import unspaced_rows, unspaced_warning
from ..speakers import _STR, SPEAKER_COLUMNS, ScoredSet, _text_array, attach_attributes, check_rows

COUNT_NAMES = ("ref_words", "hits", "substitutions", "deletions", "insertions")


def hash_ids(ids: pd.Series) -> np.ndarray:
    """64-bit hashes of cleaned utterance ids (uint64; pandas' seeded SipHash of the UTF-8)."""
    return pd.util.hash_array(ids.to_numpy(dtype=object))


class SeenIds:
    """A set of 64-bit id hashes in sorted numpy runs (8 bytes per id: 80 MB per 10M ids).

    Runs are merged like a log-structured merge tree, so adding n ids costs
    O(n log n) in total and a look-up is one binary search per run (at most ~log2 n runs).
    Two different ids collide with probability about n^2 / 2^65 (3e-6 for 10M ids).
    """

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def contains(self, h: np.ndarray) -> np.ndarray:
        out = np.zeros(len(h), bool)
        for run in self.runs:
            pos = np.searchsorted(run, h)
            pos[pos == len(run)] = 0
            out |= run[pos] == h if len(run) else False
        return out

    def add(self, h: np.ndarray) -> None:
        """Add hashes not yet present (the caller checked with :meth:`contains`)."""
        if not len(h):
            return
        self.runs.append(np.unique(h))
        while len(self.runs) > 1 and len(self.runs[-1]) * 2 >= len(self.runs[-2]):
            b, a = self.runs.pop(), self.runs.pop()
            merged = np.concatenate([a, b])
            merged.sort(kind="stable")
            self.runs.append(merged)


class Accumulator:
    """Feed chunks with :meth:`add` (in input order), then call :meth:`finish`."""

    def __init__(self, normalization: str = "default", *, workers: int | None = None, progress=None,
                 unit: str = "word", alignment: str = "jiwer") -> None:
        self.normalization = normalization
        self.unit, self.alignment = unit, alignment
        self.workers = workers
        self.progress = progress
        self.acc = Accounting()
        self.rows = 0
        self.bad = 0
        self.seen = SeenIds()
        self.speaker_codes: dict[str, int] = {}
        self.sums = np.zeros((6, 0), np.int64)  # utterances, ref_words, S, D, I, errors per speaker code
        self.parts: list[tuple] = []  # per chunk: row numbers, utt ids, speaker codes, counts (int32)
        self.extras: list[pd.DataFrame] = []
        self.unspaced = 0  # rows whose reference is in a script written without spaces

    def unparsable(self, count: int, examples: list[str]) -> None:
        """Rows the reader could not parse (counted as read, never scored)."""
        self.bad += count
        self.acc.drop("unparsable_row", count, examples)

    def add(self, frame: pd.DataFrame, counts: dict[str, np.ndarray] | None = None) -> None:
        """One chunk: ``frame`` has utt_id, speaker_id, reference, hypothesis (unless
        ``counts`` are given: one int array per :data:`COUNT_NAMES`, for every row of the
        chunk, then utt_id/speaker_id may be cleaned already) and any attribute columns;
        its index is the 1-based input row number."""
        n = len(frame)
        self.rows += n
        if not n:
            return
        acc = self.acc

        def duplicated(utt: pd.Series, present: np.ndarray) -> np.ndarray:
            # First occurrence wins, across chunks as within one.
            h = hash_ids(utt)
            dup = np.zeros(n, bool)
            dup[present] = pd.Series(h[present]).duplicated(keep="first").to_numpy() | self.seen.contains(h[present])
            self.seen.add(h[present & ~dup])
            return dup

        utt, spk, keep = check_rows(frame, acc, duplicated)
        if "reference" in frame.columns:
            self.unspaced += unspaced_rows(_text_array(frame["reference"], None))

        rows = np.flatnonzero(keep)
        if counts is None:
            c = count_errors(_text_array(frame["reference"], rows), _text_array(frame["hypothesis"], rows),
                             self.normalization, workers=self.workers, unit=self.unit, alignment=self.alignment)
            cols = {name: np.asarray(getattr(c, name)) for name in COUNT_NAMES}
        else:
            cols = {name: np.asarray(counts[name])[rows] for name in COUNT_NAMES}
        if self.progress:
            self.progress(n)
        empty = cols["ref_words"] == 0
        if empty.any():
            acc.empty_reference_insertions += int(cols["insertions"][empty].sum())
            er = frame.index[rows[empty]]
            acc.drop("empty_reference", int(empty.sum()), [f"row {r} (utt_id={utt.loc[r]!r})" for r in er[:5]])
        ok = ~empty
        rows = rows[ok]
        cols = {k: v[ok] for k, v in cols.items()}
        if not len(rows):
            return

        spk_kept = spk.iloc[rows]
        local, uniques = pd.factorize(spk_kept)
        table = self.speaker_codes
        glob = np.fromiter((table.setdefault(u, len(table)) for u in uniques), np.int64, len(uniques))
        codes = glob[local]
        if len(table) > self.sums.shape[1]:
            grown = np.zeros((6, max(len(table), 2 * self.sums.shape[1])), np.int64)
            grown[:, :self.sums.shape[1]] = self.sums
            self.sums = grown
        m = self.sums.shape[1]
        errors = cols["substitutions"] + cols["deletions"] + cols["insertions"]
        self.sums[0] += np.bincount(codes, minlength=m)
        for i, v in enumerate((cols["ref_words"], cols["substitutions"], cols["deletions"], cols["insertions"],
                               errors), start=1):
            self.sums[i] += np.bincount(codes, weights=v, minlength=m).astype(np.int64)
        utt_ids = pa.array(utt.iloc[rows].to_numpy(dtype=object), type=pa.string())
        self.parts.append((np.asarray(frame.index[rows], np.int64), utt_ids, codes.astype(np.int32),
                           *(cols[k].astype(np.int32) for k in COUNT_NAMES)))
        extra = [c for c in frame.columns if c not in _CORE]
        if extra:
            self.extras.append(frame[extra].iloc[rows])

    def finish(self, speaker_table: pd.DataFrame | None = None, required_attributes=(), paths: list[str] = (),
               warnings: list[str] = (), text_source=None) -> ScoredSet:
        """The scored set, as :func:`fairaudit.speakers.score` would return it (minus transcripts)."""
        acc = self.acc
        acc.rows_read = self.rows + self.bad
        note = unspaced_warning(self.unspaced, self.rows)
        acc.warnings[:0] = list(warnings) + ([note] if note else [])
        names = np.array(list(self.speaker_codes), dtype=object)
        order = np.argsort(names, kind="stable") if len(names) else np.zeros(0, np.int64)
        rank = np.empty(len(names), np.int64)
        rank[order] = np.arange(len(names))
        sorted_names = pd.Index(names[order], dtype=object).astype(_STR)

        parts = self.parts
        cat = (lambda i: np.concatenate([p[i] for p in parts])) if parts else (lambda i: np.zeros(0, np.int64))
        index = pd.Index(cat(0), dtype=np.int64)
        codes = rank[cat(2)] if parts else np.zeros(0, np.int64)
        utt_ids = pa.chunked_array([p[1] for p in parts], type=pa.string())
        utts = pd.DataFrame({"utt_id": pd.Series(utt_ids.to_pandas()).astype(_STR).array,
                             "speaker_id": sorted_names[codes].array})
        for i, name in enumerate(COUNT_NAMES, start=3):
            utts[name] = cat(i).astype(np.int64)
        utts["errors"] = utts["substitutions"] + utts["deletions"] + utts["insertions"]
        utts["wer"] = utts["errors"] / utts["ref_words"]
        utts.index = index
        self.parts = []
        acc.rows_scored = len(utts)
        acc.check()

        sums = self.sums[:, :len(names)][:, order]
        speakers = pd.DataFrame({"speaker_id": sorted_names, "utterances": sums[0]})
        for i, col in enumerate(("ref_words", "substitutions", "deletions", "insertions", "errors"), start=1):
            speakers[col] = sums[i]
        speakers["wer"] = speakers["errors"] / speakers["ref_words"]
        speakers = speakers[SPEAKER_COLUMNS]
        extra = pd.concat(self.extras) if self.extras else None
        self.extras = []
        speakers, attribute_columns = attach_attributes(speakers, extra, utts["speaker_id"], list(paths),
                                                        speaker_table, required_attributes, acc)
        return ScoredSet(utts, speakers.reset_index(drop=True), acc, self.normalization, "text", attribute_columns,
                         text_source=text_source, unit=self.unit, alignment=self.alignment)


_CORE = {"utt_id", "speaker_id", "reference", "hypothesis", "errors", "ref_words"}
