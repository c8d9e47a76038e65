"""Per-utterance word alignment counts: the hot path.

Counts equal ``jiwer.process_words`` word for word, split included: jiwer aligns with
``rapidfuzz.distance.Levenshtein.opcodes`` on word ids, and we call the same rapidfuzz
edit-operation backtrace on the same equality pattern.  What we do differently is only
how fast we get there:

* normalisation and word splitting run vectorised over whole text buffers (byte tables
  and numpy for ASCII, RE2 in pyarrow otherwise: :mod:`fairaudit.normalize`);
* words become integer ids with one ``dictionary_encode`` per piece, the ids become code
  points, and each utterance becomes a short ``str`` whose characters are its words, so
  rapidfuzz compares machine integers instead of hashing Python objects;
* edit distances come from one batched rapidfuzz call; the per-utterance backtrace runs
  only where the distance leaves the S/D/I split open (see :func:`_align`);
* long inputs are scored in pieces on all cores: forked processes that read the text
  buffers they inherited, so no transcript is copied between processes.
"""
from __future__ import annotations

import bisect
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from .align_sclite import check_alignment, sclite_counts
from .normalize import NORMALIZERS, _buffers, _from_buffers, normalize
from .units import char_codes, check_unit, tokens_flat

COUNT_COLUMNS = ("ref_words", "hits", "substitutions", "deletions", "insertions")

# Below this many utterances a process pool costs more than it saves.
_PARALLEL_MIN = 60_000
# Utterances per task.  Small enough that one piece's bytes stay in cache between the
# vectorised passes (4x faster per utterance than 200k pieces) and that two workers
# finish together; large enough that per-task overhead is noise.
_PIECE = 50_000
# Code points available once the UTF-16 surrogate block is skipped.
_MAX_VOCAB = 0x110000 - 0x800 - 1


@dataclass
class Counts:
    """Alignment counts per utterance (numpy int64 arrays of equal length, counts of
    tokens: words, or characters/mixed tokens under another unit)."""

    ref_words: np.ndarray
    hits: np.ndarray
    substitutions: np.ndarray
    deletions: np.ndarray
    insertions: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        """S + D + I per utterance (count)."""
        return self.substitutions + self.deletions + self.insertions

    def __len__(self) -> int:
        return len(self.ref_words)

    @staticmethod
    def concat(parts: Iterable["Counts"]) -> "Counts":
        parts = list(parts)
        return Counts(*(np.concatenate([getattr(p, f) for p in parts]) if parts else np.zeros(0, np.int64)
                        for f in COUNT_COLUMNS))


def _texts(codes: np.ndarray, offsets: np.ndarray) -> list[str]:
    """One ``str`` per utterance whose characters are its word ids (id + 1 as code point)."""
    cp = codes.astype("<u4")
    cp += 1
    if len(cp) and cp.max() >= 0xD800:
        cp[cp >= 0xD800] += 0x800  # skip the surrogate block: not valid in a str
    # A NUL (no word's code point) after each utterance, so one str.split in C makes all
    # the per-utterance strings instead of a Python loop of slices.
    return np.insert(cp, offsets[1:], 0).tobytes().decode("utf-32-le").split("\x00")[:-1]


def _word_ids(ref_words: pa.Array, hyp_words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """One integer id per distinct word, shared by both sides: (ref ids, hyp ids)."""
    both = pa.concat_arrays([ref_words, hyp_words.cast(ref_words.type)])
    codes = both.dictionary_encode().indices.to_numpy()
    nr = len(ref_words)
    return codes[:nr], codes[nr:]


def _align(refs: list[str], hyps: list[str], nref: np.ndarray, nhyp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Substitutions and deletions per utterance (insertions follow from lengths).

    The edit distance ``dist`` comes from one batched C++ call.  Every optimal alignment
    has S + D + I = dist and D - I = nref - nhyp, so when dist - |nref - nhyp| is 0 or 1
    the counts are forced (S = that slack, D or I = the length difference) and rapidfuzz's
    backtrace, hence jiwer's, cannot give anything else.  Only with a slack of 2 or more
    can two optimal alignments differ (one substitution pair vs a deletion + insertion),
    and there we run the same ``editops`` backtrace as jiwer, one utterance at a time.
    """
    delta = nref - nhyp
    dist = process.cpdist(refs, hyps, scorer=Levenshtein.distance, dtype=np.int64, workers=1)
    slack = dist - np.abs(delta)
    subs = slack.copy()
    editops = Levenshtein.editops
    for i in np.flatnonzero(slack >= 2).tolist():
        subs[i] = [tag for tag, _, _ in editops(refs[i], hyps[i]).as_list()].count("replace")
    # S + D + I = dist and D - I = delta give D from S (for the forced rows: D = max(delta, 0)).
    dels = (dist - subs + delta) // 2
    return subs, dels


def _align_ids_python(ref_offsets: np.ndarray, ref_ids: np.ndarray, hyp_offsets: np.ndarray, hyp_ids: np.ndarray):
    # Fallback for a chunk with more distinct tokens than code points: align id lists.
    subs = np.zeros(len(ref_offsets) - 1, np.int64)
    dels = np.zeros(len(ref_offsets) - 1, np.int64)
    r_ids, h_ids = ref_ids.tolist(), hyp_ids.tolist()
    r_off, h_off = ref_offsets.tolist(), hyp_offsets.tolist()
    for i in range(len(subs)):
        for tag, _, _ in Levenshtein.editops(r_ids[r_off[i]:r_off[i + 1]], h_ids[h_off[i]:h_off[i + 1]]):
            subs[i] += tag == "replace"
            dels[i] += tag == "delete"
    return subs, dels


def _dense(ref_ids: np.ndarray, hyp_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids renumbered 0..distinct-1 when some exceed the code-point range (code points of
    the last private-use plane, under ``char``); equal stays equal."""
    if (len(ref_ids) and ref_ids.max() > _MAX_VOCAB) or (len(hyp_ids) and hyp_ids.max() > _MAX_VOCAB):
        _, inv = np.unique(np.concatenate([ref_ids, hyp_ids]), return_inverse=True)
        return inv[:len(ref_ids)], inv[len(ref_ids):]
    return ref_ids, hyp_ids


def _count_ids(ref_offsets: np.ndarray, ref_ids: np.ndarray, hyp_offsets: np.ndarray, hyp_ids: np.ndarray,
               alignment: str = "jiwer") -> Counts:
    """Counts from integer token ids (equal id = equal token) and per-utterance offsets."""
    nref = np.diff(ref_offsets)
    nhyp = np.diff(hyp_offsets)
    ref_ids, hyp_ids = _dense(ref_ids, hyp_ids)
    fits = not ((len(ref_ids) and ref_ids.max() > _MAX_VOCAB) or (len(hyp_ids) and hyp_ids.max() > _MAX_VOCAB))
    refs, hyps = (_texts(ref_ids, ref_offsets), _texts(hyp_ids, hyp_offsets)) if fits else (None, None)
    if alignment == "sclite":
        subs, dels = sclite_counts(ref_offsets, ref_ids, hyp_offsets, hyp_ids, refs, hyps)
    elif fits:
        subs, dels = _align(refs, hyps, nref, nhyp)
    else:
        subs, dels = _align_ids_python(ref_offsets, ref_ids, hyp_offsets, hyp_ids)
    hits = nref - subs - dels
    ins = nhyp - hits - subs
    return Counts(nref, hits, subs, dels, ins)


def _count_chunk(ref_offsets: np.ndarray, ref_words: pa.Array, hyp_offsets: np.ndarray,
                 hyp_words: pa.Array, alignment: str = "jiwer") -> Counts:
    ref_ids, hyp_ids = _word_ids(ref_words, hyp_words)
    return _count_ids(ref_offsets, ref_ids, hyp_offsets, hyp_ids, alignment)


def _count_piece(args) -> Counts:
    """Counts for one piece: (ref offsets, ref bytes, hyp offsets, hyp bytes, normalisation,
    unit, alignment)."""
    r_off, r_data, h_off, h_data, mode, unit, alignment = args
    refs, hyps = _from_buffers(r_off, r_data), _from_buffers(h_off, h_data)
    if unit == "char":
        # Code points are their own ids: no dictionary needed.
        return _count_ids(*char_codes(refs, mode), *char_codes(hyps, mode), alignment)
    return _count_chunk(*tokens_flat(refs, mode, unit), *tokens_flat(hyps, mode, unit), alignment)


def _segments(values) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(first row, offsets rebased to 0, data bytes) of each chunk of a string column.

    Chunks are kept apart rather than combined: combining copies every transcript once
    more (a Parquet column read by pandas arrives in several chunks).
    """
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string())
    out, row = [], 0
    for chunk in arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]:
        if not len(chunk):
            continue
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            chunk = chunk.cast(pa.string())
        if chunk.null_count:
            chunk = pc.fill_null(chunk, "")
        out.append((row, *_buffers(chunk)))
        row += len(chunk)
    return out


def _slice(segments, starts: list[int], a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    # Rows a..b-1, which lie in one segment: numpy views, rebased offsets.
    row0, off, data = segments[bisect.bisect_right(starts, a) - 1]
    i, j = a - row0, b - row0
    return off[i:j + 1] - off[i], data[off[i]:off[j]]


class _Plan:
    """Both text columns as per-chunk numpy buffers, and the row ranges of the tasks."""

    def __init__(self, refs, hyps, mode: str, size: int, unit: str = "word", alignment: str = "jiwer"):
        self.rseg, self.hseg, self.mode = _segments(refs), _segments(hyps), mode
        self.unit, self.alignment = unit, alignment
        self.rstart, self.hstart = [s[0] for s in self.rseg], [s[0] for s in self.hseg]
        n = sum(len(s[1]) - 1 for s in self.rseg)
        nh = sum(len(s[1]) - 1 for s in self.hseg)
        if nh != n:
            raise ValueError(f"{n} references but {nh} hypotheses")
        # A task lies inside one chunk of each column; chunks are cut into equal tasks so
        # the last one is not a sliver.
        self.ranges: list[tuple[int, int]] = []
        cuts = sorted({0, n, *self.rstart, *self.hstart})
        for a, b in zip(cuts, cuts[1:]):
            k = -(-(b - a) // size)
            bounds = [a + (b - a) * i // k for i in range(k + 1)]
            self.ranges.extend(zip(bounds, bounds[1:]))

    def piece(self, a: int, b: int):
        """Task arguments for rows a..b-1, as numpy views.  Where they must be pickled (no
        fork), that copies only these bytes; a sliced pyarrow array would pickle its whole
        parent buffer (200 MB per task at 1M utterances)."""
        return (*_slice(self.rseg, self.rstart, a, b), *_slice(self.hseg, self.hstart, a, b), self.mode,
                self.unit, self.alignment)


# Plans of running count_errors calls, by id.  Forked workers inherit this dict, so a task
# is just (plan id, first row, end row) and no transcript is pickled or piped: at 1M
# utterances that saved ~0.8 CPU-s of copying between processes.
_PLANS: dict[int, _Plan] = {}


def _count_inherited(task) -> Counts:
    key, a, b = task
    return _count_piece(_PLANS[key].piece(a, b))


def _fork_context():
    # Fork only where it is the platform's native way (Linux); elsewhere (macOS, Windows)
    # the pieces are pickled to spawned workers instead.
    if sys.platform.startswith("linux"):
        try:
            return multiprocessing.get_context("fork")
        except ValueError:  # pragma: no cover
            return None
    return None


def _workers(requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def count_errors(references, hypotheses, normalization: str = "default", *, workers: int | None = None,
                 progress=None, unit: str = "word", alignment: str = "jiwer") -> Counts:
    """Alignment counts for each (reference, hypothesis) pair.

    ``references``/``hypotheses``: sequences or pyarrow arrays of strings (nulls are empty).
    ``normalization``: ``default``, ``none`` or ``whisper`` (see :mod:`fairaudit.normalize`).
    ``workers``: processes to use (default: all cores, when the input is long enough).
    ``progress``: optional callable receiving the number of utterances finished.
    ``unit``: ``word``, ``char`` or ``mixed`` (see :mod:`fairaudit.units`).
    ``alignment``: ``jiwer`` (Levenshtein, as jiwer) or ``sclite`` (NIST sclite's
    weights and tie-breaking, see :mod:`fairaudit.align_sclite`).

    Returns hits, substitutions, deletions, insertions and reference tokens (counts); with
    ``alignment="jiwer"`` equal to ``jiwer.process_words(ref, hyp)`` (``unit="word"``) or
    ``jiwer.process_characters`` (``unit="char"``) applied to each normalised pair.
    """
    return start_count_errors(references, hypotheses, normalization, workers=workers, progress=progress,
                              unit=unit, alignment=alignment).result()


def start_count_errors(references, hypotheses, normalization: str = "default", *, workers: int | None = None,
                       progress=None, unit: str = "word", alignment: str = "jiwer") -> "PendingCounts":
    """Start :func:`count_errors` and return at once; ``.result()`` gives the counts.

    With worker processes the caller's thread is free meanwhile (the utterance-id checks
    of :func:`fairaudit.speakers.score` run then).  Serially, the work happens in
    ``.result()``.  Call ``.close()`` (or ``.result()``) to release the workers.
    """
    if normalization not in NORMALIZERS:
        normalize([], normalization)  # raises the user error
    check_unit(unit)
    check_alignment(alignment)
    n = len(references)
    if len(hypotheses) != n:
        raise ValueError(f"{n} references but {len(hypotheses)} hypotheses")
    plan = _Plan(references, hypotheses, normalization, _PIECE, unit, alignment)
    nworkers = min(_workers(workers), len(plan.ranges)) if n >= _PARALLEL_MIN else 1
    return PendingCounts(plan, nworkers, progress)


class PendingCounts:
    """Counting in progress (see :func:`start_count_errors`)."""

    def __init__(self, plan: _Plan, nworkers: int, progress=None):
        self._plan, self._progress = plan, progress
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list | None = None
        self._key: int | None = None
        if nworkers <= 1:
            return
        # Hand the memory the caller freed (the Parquet reader's buffers, ~250 MB at 1M
        # rows) back to the OS first, so forked workers do not map it too.
        pa.default_memory_pool().release_unused()
        ctx = _fork_context()
        if ctx is not None:
            self._key = id(plan)
            _PLANS[self._key] = plan
            # The workers fork at the first submit, so they see the plan.
            self._pool = ProcessPoolExecutor(max_workers=nworkers, mp_context=ctx)
            self._futures = [self._pool.submit(_count_inherited, (self._key, a, b)) for a, b in plan.ranges]
        else:
            self._pool = ProcessPoolExecutor(max_workers=nworkers)
            self._futures = [self._pool.submit(_count_piece, plan.piece(a, b)) for a, b in plan.ranges]

    def result(self) -> Counts:
        """Wait for (or, serially, compute) the counts; releases the workers."""
        parts: list[Counts] = []
        try:
            if self._futures is None:
                results = (_count_piece(self._plan.piece(a, b)) for a, b in self._plan.ranges)
            else:
                results = (f.result() for f in self._futures)
            for part in results:
                parts.append(part)
                if self._progress:
                    self._progress(len(part))
        finally:
            self.close()
        return Counts.concat(parts)

    def close(self) -> None:
        """Stop the workers (pending tasks are cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._key is not None:
            _PLANS.pop(self._key, None)
            self._key = None
