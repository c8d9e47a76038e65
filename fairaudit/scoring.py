"""Per-utterance word alignment counts: the hot path.

Counts equal ``jiwer.process_words`` word for word, split included: jiwer aligns with
``rapidfuzz.distance.Levenshtein.opcodes`` on word ids, and we call the same rapidfuzz
edit-operation backtrace on the same equality pattern.  What we do differently is only
how fast we get there:

* normalisation and word splitting run vectorised in pyarrow (C++);
* words become integer ids with one ``dictionary_encode`` per chunk, the ids become code
  points, and each utterance becomes a short ``str`` whose characters are its words, so
  rapidfuzz compares machine integers instead of hashing Python objects;
* utterances whose two sides are equal skip the alignment; long inputs are scored in
  chunks on all cores (one process per core: the per-utterance call holds the GIL).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import Levenshtein

from .normalize import tokenize

COUNT_COLUMNS = ("ref_words", "hits", "substitutions", "deletions", "insertions")

# Below this many utterances a process pool costs more than it saves.
_PARALLEL_MIN = 60_000
_CHUNK = 200_000
# Code points available once the UTF-16 surrogate block is skipped.
_MAX_VOCAB = 0x110000 - 0x800 - 1


@dataclass
class Counts:
    """Alignment counts per utterance (numpy int64 arrays of equal length, counts of words)."""

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


def _codes_to_text(codes: np.ndarray) -> str:
    cp = codes.astype("<u4")
    cp += 1
    if len(cp) and cp.max() >= 0xD800:
        cp[cp >= 0xD800] += 0x800  # skip the surrogate block: not valid in a str
    return cp.tobytes().decode("utf-32-le")


def _encode(ref_words: pa.ListArray, hyp_words: pa.ListArray):
    """Map words to one character each; returns (ref_text, ref_offsets, hyp_text, hyp_offsets)."""
    rflat, hflat = ref_words.flatten(), hyp_words.flatten()
    both = pa.concat_arrays([rflat, hflat.cast(rflat.type)])
    codes = both.dictionary_encode().indices.to_numpy()
    if len(codes) and codes.max() > _MAX_VOCAB:
        return None
    nr = len(rflat)
    ro = ref_words.offsets.to_numpy().astype(np.int64)
    ho = hyp_words.offsets.to_numpy().astype(np.int64)
    return _codes_to_text(codes[:nr]), ro - ro[0], _codes_to_text(codes[nr:]), ho - ho[0]


def _align(rtext: str, ro: np.ndarray, htext: str, ho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Substitutions and deletions per utterance (insertions follow from lengths)."""
    n = len(ro) - 1
    subs = np.zeros(n, np.int64)
    dels = np.zeros(n, np.int64)
    editops = Levenshtein.editops
    rl, hl = ro.tolist(), ho.tolist()
    for i in range(n):
        r = rtext[rl[i]:rl[i + 1]]
        h = htext[hl[i]:hl[i + 1]]
        if r == h:
            continue
        s = d = 0
        for tag, _, _ in editops(r, h):
            if tag == "replace":
                s += 1
            elif tag == "delete":
                d += 1
        subs[i] = s
        dels[i] = d
    return subs, dels


def _align_words_python(ref_words: pa.ListArray, hyp_words: pa.ListArray):
    # Fallback for a chunk with more distinct words than code points: align word lists.
    refs, hyps = ref_words.to_pylist(), hyp_words.to_pylist()
    subs = np.zeros(len(refs), np.int64)
    dels = np.zeros(len(refs), np.int64)
    for i, (r, h) in enumerate(zip(refs, hyps)):
        ids: dict[str, int] = {}
        ri = [ids.setdefault(w, len(ids)) for w in r]
        hi = [ids.setdefault(w, len(ids)) for w in h]
        for tag, _, _ in Levenshtein.editops(ri, hi):
            subs[i] += tag == "replace"
            dels[i] += tag == "delete"
    return subs, dels


def _count_chunk(ref_words: pa.ListArray, hyp_words: pa.ListArray) -> Counts:
    nref = pc.list_value_length(ref_words).to_numpy(zero_copy_only=False).astype(np.int64)
    nhyp = pc.list_value_length(hyp_words).to_numpy(zero_copy_only=False).astype(np.int64)
    enc = _encode(ref_words, hyp_words)
    subs, dels = _align(*enc) if enc is not None else _align_words_python(ref_words, hyp_words)
    hits = nref - subs - dels
    ins = nhyp - hits - subs
    return Counts(nref, hits, subs, dels, ins)


def _count_text_chunk(args) -> Counts:
    refs, hyps, mode = args
    return _count_chunk(tokenize(refs, mode), tokenize(hyps, mode))


def _workers(requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def count_errors(references, hypotheses, normalization: str = "default", *, workers: int | None = None,
                 progress=None) -> Counts:
    """Word alignment counts for each (reference, hypothesis) pair.

    ``references``/``hypotheses``: sequences or pyarrow arrays of strings (nulls are empty).
    ``normalization``: ``default``, ``none`` or ``whisper`` (see :mod:`fairaudit.normalize`).
    ``workers``: processes to use (default: all cores, when the input is long enough).
    ``progress``: optional callable receiving the number of utterances finished.

    Returns counts equal to ``jiwer.process_words(ref, hyp)`` applied to each normalised
    pair: hits, substitutions, deletions, insertions and reference words (counts).
    """
    refs = pa.chunked_array([references]) if not isinstance(references, pa.ChunkedArray) else references
    hyps = pa.chunked_array([hypotheses]) if not isinstance(hypotheses, pa.ChunkedArray) else hypotheses
    n = len(refs)
    if len(hyps) != n:
        raise ValueError(f"{n} references but {len(hyps)} hypotheses")
    jobs = [(refs.slice(a, _CHUNK), hyps.slice(a, _CHUNK), normalization) for a in range(0, n, _CHUNK)]
    jobs = [(_combine(r), _combine(h), m) for r, h, m in jobs]
    nworkers = min(_workers(workers), len(jobs))
    parts: list[Counts] = []
    if n >= _PARALLEL_MIN and nworkers > 1:
        # Smaller pieces keep both processes busy until the end.
        pieces = [(r.slice(a, _CHUNK // 4), h.slice(a, _CHUNK // 4), m)
                  for r, h, m in jobs for a in range(0, len(r), _CHUNK // 4)]
        with ProcessPoolExecutor(max_workers=nworkers) as pool:
            for part in pool.map(_count_text_chunk, pieces):
                parts.append(part)
                if progress:
                    progress(len(part))
    else:
        for job in jobs:
            part = _count_text_chunk(job)
            parts.append(part)
            if progress:
                progress(len(part))
    return Counts.concat(parts)


def _combine(arr):
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
