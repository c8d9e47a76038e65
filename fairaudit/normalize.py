"""Text normalisation applied identically to reference and hypothesis.

Vectorised over pyarrow string arrays (RE2 regexes in C++; for pure-ASCII rows of the
default normalisation, byte tables over the whole buffer) because scoring a million
utterances must not run a Python regex per string.  After normalisation, words are split
exactly as ``jiwer``'s default transform splits them (``RemoveMultipleSpaces``,
``Strip``, ``ReduceToListOfListOfWords``), so counts match ``jiwer.process_words`` on the
normalised strings word for word.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UserInputError

# Every character for which Python's str.isspace() is true: what jiwer's `\s` regex and
# str.strip() treat as white space.  RE2's `\s` is ASCII-only, so we spell the class out.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WS_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]"

NORMALIZERS = ("default", "none", "whisper")
_APOSTROPHES = "[\u2018\u2019\u02bc\u0060\u00b4]"
# Apostrophes survive only between two word characters ("don't", "o'clock"): one regex
# for runs of them and for one at either edge of a word.
_APOSTROPHE_RULES = "''+|' |'$|^'| '"

# Every mode starts with Unicode NFC: "café" typed with a precomposed é and with e +
# combining acute are the same word, and must not count as a substitution.  Pure-ASCII
# text is already NFC, so the ASCII fast paths skip it.
DESCRIPTIONS = {
    "default": "Unicode NFC; lower-case; punctuation and symbols replaced by a space (in-word apostrophes "
    "kept, curly apostrophes straightened); white space collapsed",
    "none": "Unicode NFC only; words split as jiwer's default transform splits them",
    "whisper": "Unicode NFC, then the Whisper English text normaliser (whisper-normalizer package, "
    "EnglishTextNormalizer); white space collapsed",
}


def _as_string_array(values) -> pa.Array:
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return pc.fill_null(arr, "")


def is_ascii(arr: pa.Array) -> bool:
    """Whether every byte of a string array's values is ASCII: one numpy pass over its
    data buffer (a per-string check costs 10x more on short transcripts)."""
    bufs = arr.buffers()
    if len(arr) == 0 or bufs[2] is None:
        return True
    offsets = np.frombuffer(bufs[1], np.int64 if pa.types.is_large_string(arr.type) else np.int32)
    start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    data = np.frombuffer(bufs[2], np.uint8)[start:end]
    return not len(data) or int(data.max()) < 0x80


def _nfc(arr: pa.Array) -> pa.Array:
    """Unicode NFC of every string (vectorised; skipped when every row is ASCII)."""
    if is_ascii(arr):
        return arr
    return pc.utf8_normalize(arr, "NFC")


def _default_spaced_regex(arr: pa.Array) -> pa.Array:
    """Default normalisation with words separated by one or more ASCII spaces (any input)."""
    arr = pc.utf8_lower(_nfc(arr))
    if pc.any(pc.match_substring_regex(arr, _APOSTROPHES)).as_py():
        arr = pc.replace_substring_regex(arr, _APOSTROPHES, "'")
    # Anything that is not a letter, digit, combining mark or apostrophe separates words.
    # (Plain spaces are excluded from the class: matching each one costs 5x the time.)
    arr = pc.replace_substring_regex(arr, r"[^\p{L}\p{N}\p{M}' ]+", " ")
    return pc.replace_substring_regex(arr, _APOSTROPHE_RULES, " ")


# ASCII fast path of the default normalisation, one byte at a time (bytes.translate runs
# at memcpy speed, the RE2 regexes above ~30x slower).  On a pure-ASCII row the regexes
# reduce to byte rules, because the only ASCII letters and digits are [A-Za-z0-9] and
# there are no ASCII combining marks:
#   1. A-Z -> a-z; the backtick (the one ASCII "curly" apostrophe) -> ';
#   2. every other byte except a-z, 0-9, ' and space -> space, one space per *run*;
#   3. the apostrophe regex.
# Step 2 maps each byte to a space.  Where that differs from one space per run, only the
# number of spaces between two words changes, which no caller sees (they split on runs
# of spaces or collapse them) -- except step 3, which depends on exactly how many spaces
# surround an apostrophe.  So rows holding an apostrophe get step 2 made exact (delete
# the bytes that continue a run: rare, "?!", "...") and step 3 from the RE2 regex, on
# those rows only; rows with a non-ASCII byte take the whole regex path.
_FAST_TABLE = bytes(
    c + 32 if 65 <= c <= 90
    else c if (97 <= c <= 122 or 48 <= c <= 57 or c in (32, 39))
    else 39 if c == 96
    else 32
    for c in range(128)
) + bytes(range(128, 256))
# Beyond this share of non-ASCII rows, running the regexes on the whole array is cheaper
# than splitting it in two and merging.
_SLOW_SHARE_MAX = 0.5


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets rebased to 0 as int64, data bytes as uint8) of a null-free string array."""
    bufs = arr.buffers()
    large = pa.types.is_large_string(arr.type)
    offsets = np.frombuffer(bufs[1], np.int64 if large else np.int32)[arr.offset: arr.offset + len(arr) + 1]
    offsets = offsets.astype(np.int64)
    start, end = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
    data = np.frombuffer(bufs[2], np.uint8)[start:end] if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets - start, data


def _from_buffers(offsets: np.ndarray, data: bytes) -> pa.Array:
    n = len(offsets) - 1
    if len(data) < 2 ** 31:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data))


def _rows_of(offsets: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Distinct rows holding the given byte positions (sorted)."""
    return np.unique(np.searchsorted(offsets, positions, side="right") - 1)


def _default_spaced_buffers(arr: pa.Array) -> tuple[np.ndarray, bytes]:
    """:func:`_default_spaced` of a null-free string array, as (offsets, data bytes)."""
    offsets, data = _buffers(arr)
    raw = data.tobytes()
    spaced = raw.translate(_FAST_TABLE)  # steps 1 and 2, one space per replaced byte
    is_ascii = raw.isascii()
    if is_ascii and b"'" not in spaced:
        # The common case: one translate.
        return offsets, spaced
    n = len(arr)
    slow_rows = np.zeros(0, np.int64)
    if not is_ascii:
        slow_rows = _rows_of(offsets, np.flatnonzero(data >= 0x80))
        if len(slow_rows) > _SLOW_SHARE_MAX * n:
            return _buffers_bytes(_default_spaced_regex(arr))
    apostrophe_rows = np.setdiff1d(_rows_of(offsets, np.flatnonzero(np.frombuffer(spaced, np.uint8) == 39)),
                                   slow_rows, assume_unique=True)
    fast = _from_buffers(offsets, spaced)
    parts, pick = [fast], np.arange(n, dtype=np.int64)
    for rows, redo in ((apostrophe_rows, lambda t: _apostrophe_rules(arr.take(t), fast.take(t))),
                       (slow_rows, lambda t: _default_spaced_regex(arr.take(t)).cast(fast.type))):
        if len(rows):
            pick[rows] = sum(len(p) for p in parts) + np.arange(len(rows))
            parts.append(redo(pa.array(rows)))
    if len(parts) == 1:
        return offsets, spaced
    # Each row from its source: the one-translate result, the apostrophe rows or the
    # non-ASCII rows.
    return _buffers_bytes(pa.concat_arrays(parts).take(pa.array(pick)))


def _apostrophe_rules(raw: pa.Array, spaced: pa.Array) -> pa.Array:
    """Step 2 exactly, then step 3, on ASCII rows holding an apostrophe.

    ``spaced`` is ``raw`` after the one-byte-per-byte translate (same offsets).  A
    replaced byte is a space in ``spaced`` that was not one in ``raw``; each replaced
    byte following another of the same row is deleted, leaving one space per run, as
    the RE2 regex does.  Then the apostrophe regex runs on these rows only.
    """
    offsets, before = _buffers(raw)
    _, after = _buffers(spaced)
    replaced = (after == 32) & (before != 32)
    drop = np.flatnonzero(replaced[1:] & replaced[:-1]) + 1
    if len(drop):
        n = len(offsets) - 1
        drop = drop[offsets[np.minimum(np.searchsorted(offsets, drop), n)] != drop]  # never a row's first byte
        after = np.delete(after, drop)
        offsets = offsets - np.searchsorted(drop, offsets)
    return pc.replace_substring_regex(_from_buffers(offsets, after.tobytes()), _APOSTROPHE_RULES, " ")


def _buffers_bytes(arr: pa.Array) -> tuple[np.ndarray, bytes]:
    offsets, data = _buffers(arr)
    return offsets, data.tobytes()


def _default_spaced(arr: pa.Array) -> pa.Array:
    """Default normalisation with words separated by one or more ASCII spaces."""
    return _from_buffers(*_default_spaced_buffers(arr))


def _default(arr: pa.Array) -> pa.Array:
    arr = pc.replace_substring_regex(_default_spaced(arr), "  +", " ")
    return pc.utf8_trim(arr, " ")


_whisper_impl: Callable[[str], str] | None = None


def _whisper(arr: pa.Array) -> pa.Array:
    global _whisper_impl
    if _whisper_impl is None:
        try:
            from whisper_normalizer.english import EnglishTextNormalizer
        except ImportError as exc:  # pragma: no cover - dependency is declared
            raise UserInputError(
                "--normalize whisper needs the whisper-normalizer package",
                hint="pip install whisper-normalizer",
            ) from exc
        _whisper_impl = EnglishTextNormalizer()
    fn = _whisper_impl
    return pa.array([fn(s) for s in arr.to_pylist()], type=pa.string())


def normalize(values, mode: str = "default") -> pa.Array:
    """Normalise an array of transcripts; returns a pyarrow large_string array.

    ``mode`` is one of :data:`NORMALIZERS`; nulls become empty strings.
    """
    if mode not in NORMALIZERS:
        raise UserInputError(
            f"unknown normalisation {mode!r}", hint=f"use one of: {', '.join(NORMALIZERS)}"
        )
    arr = _as_string_array(values)
    if mode == "default":
        return _default(arr)
    if mode == "whisper":
        return _whisper(_nfc(arr))
    return _nfc(arr)


def tokenize(values, mode: str = "default") -> pa.ListArray:
    """Normalise and split into words: one list of words per transcript.

    Equal to ``jiwer``'s default transform applied to :func:`normalize`'s output.
    """
    offsets, words = words_flat(values, mode)
    if offsets[-1] >= 2 ** 31:
        return pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), words)
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), words)


def words_flat(values, mode: str = "default") -> tuple[np.ndarray, pa.Array]:
    """:func:`tokenize` without building the list array: (row offsets, flat words).

    ``offsets`` (int64, one more than the rows) index ``words``: row ``i`` has words
    ``words[offsets[i]:offsets[i + 1]]``.
    """
    if mode == "default":
        # Only ASCII spaces separate words after default normalisation, so splitting on
        # runs of spaces (which also drops empty pieces) is exact.
        return _split_spaces(*_default_spaced_buffers(_as_string_array(values)))
    lists = split_words(normalize(values, mode))
    offsets = lists.offsets.to_numpy().astype(np.int64)
    return offsets - offsets[0], lists.flatten()


def _split_spaces(offsets: np.ndarray, data: bytes) -> tuple[np.ndarray, pa.Array]:
    """Split each row of (offsets, data) on runs of ASCII spaces, vectorised over all rows.

    A word is a maximal run of non-space bytes inside one row (a UTF-8 multi-byte
    character never contains the byte 0x20).  Cheaper than ``ascii_split_whitespace``,
    which builds a list array we would only flatten again.
    """
    d = np.frombuffer(data, np.uint8)
    if len(d) == 0:
        return np.zeros(len(offsets), np.int64), pa.array([], type=pa.string())
    m = d != 32
    # A word starts at a non-space after a space, and ends at one before a space.
    start = np.empty_like(m)
    start[0] = m[0]
    np.greater(m[1:], m[:-1], out=start[1:])
    end = np.empty_like(m)
    end[-1] = m[-1]
    np.greater(m[:-1], m[1:], out=end[:-1])
    # A word never runs across two rows: a non-empty row opens a word at its first byte
    # and closes one at its last when that byte is not a space.
    nonempty = offsets[:-1] < offsets[1:]
    first, last = offsets[:-1][nonempty], offsets[1:][nonempty] - 1
    start[first] = m[first]
    end[last] = m[last]
    starts = np.flatnonzero(start)
    ends = np.flatnonzero(end)
    word_offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(ends - starts + 1, out=word_offsets[1:])
    words = _from_buffers(word_offsets, data.translate(None, b" "))
    return np.searchsorted(starts, offsets).astype(np.int64), words


def split_words(arr: pa.Array) -> pa.ListArray:
    """Split normalised strings into words exactly as jiwer's ``wer_default`` does.

    jiwer replaces runs of two or more white-space characters by one space, strips, then
    splits on a single space and drops empty pieces; a lone tab therefore stays inside a
    word.  We reproduce that, character class and all.
    """
    arr = _as_string_array(arr)
    arr = pc.replace_substring_regex(arr, _WS_CLASS + "{2,}", " ")
    arr = pc.utf8_trim(arr, PY_WHITESPACE)
    words = pc.split_pattern(arr, " ")
    # Drop the empty pieces that leading/trailing single spaces cannot produce after the
    # trim, but "a  b" could not either; only "" itself splits to [""].
    lengths = pc.utf8_length(words.flatten())
    if pc.any(pc.equal(lengths, 0)).as_py():
        words = _drop_empty(words)
    return words


def _drop_empty(words: pa.ListArray) -> pa.ListArray:
    import numpy as np

    flat = words.flatten()
    keep = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
    offsets = words.offsets.to_numpy()
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    new_offsets = kept_before[offsets - offsets[0]]
    return pa.ListArray.from_arrays(
        pa.array(new_offsets, type=pa.int32()), flat.filter(pa.array(keep))
    )


def python_reference_split(s: str) -> list[str]:
    """The jiwer default transform on one string, in plain Python (for tests/docs)."""
    return [w for w in re.sub(r"\s\s+", " ", s).strip().split(" ") if w]
