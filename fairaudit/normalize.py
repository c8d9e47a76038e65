"""Text normalisation applied identically to reference and hypothesis.

Vectorised over pyarrow string arrays (RE2 regexes in C++) because scoring a million
utterances must not run a Python regex per string.  After normalisation, words are split
exactly as ``jiwer``'s default transform splits them (``RemoveMultipleSpaces``,
``Strip``, ``ReduceToListOfListOfWords``), so counts match ``jiwer.process_words`` on the
normalised strings word for word.
"""
from __future__ import annotations

import re
from typing import Callable

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

DESCRIPTIONS = {
    "default": "lower-case; punctuation and symbols replaced by a space (in-word apostrophes "
    "kept, curly apostrophes straightened); white space collapsed",
    "none": "no normalisation; words split as jiwer's default transform splits them",
    "whisper": "Whisper English text normaliser (whisper-normalizer package, "
    "EnglishTextNormalizer); white space collapsed",
}


def _as_string_array(values) -> pa.Array:
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return pc.fill_null(arr, "")


def _default_spaced(arr: pa.Array) -> pa.Array:
    """Default normalisation with words separated by one or more ASCII spaces."""
    arr = pc.utf8_lower(arr)
    if pc.any(pc.match_substring_regex(arr, _APOSTROPHES)).as_py():
        arr = pc.replace_substring_regex(arr, _APOSTROPHES, "'")
    # Anything that is not a letter, digit, combining mark or apostrophe separates words.
    # (Plain spaces are excluded from the class: matching each one costs 5x the time.)
    arr = pc.replace_substring_regex(arr, r"[^\p{L}\p{N}\p{M}' ]+", " ")
    # Apostrophes survive only between two word characters ("don't", "o'clock"): one
    # regex for runs of them and for one at either edge of a word.
    return pc.replace_substring_regex(arr, "''+|' |'$|^'| '", " ")


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
        return _whisper(arr)
    return arr


def tokenize(values, mode: str = "default") -> pa.ListArray:
    """Normalise and split into words: one list of words per transcript.

    Equal to ``jiwer``'s default transform applied to :func:`normalize`'s output.
    """
    if mode == "default":
        # Only ASCII spaces separate words after default normalisation, so a plain
        # white-space split (which also drops empty pieces) is exact and 5x faster.
        text = pc.utf8_trim(_default_spaced(_as_string_array(values)), " ")
        words = pc.ascii_split_whitespace(text)
        # "" splits to [""]: the only empty piece left once both ends are trimmed.
        return _drop_empty(words) if pc.any(pc.equal(text, "")).as_py() else words
    return split_words(normalize(values, mode))


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
