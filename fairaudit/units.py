"""What a token is: words (WER), characters (CER) or mixed (MER), after normalisation.

* ``word``: words exactly as ``jiwer``'s default transform splits them (see
  :mod:`fairaudit.normalize`); the rate is the word error rate (WER).
* ``char``: characters exactly as ``jiwer.process_characters`` builds them: its default
  transform only strips white space at both ends (``str.strip``) and then takes every
  code point, spaces between words included; the rate is the character error rate (CER).
  (jiwer's CER does *not* collapse runs of spaces; the ``default`` and ``whisper``
  normalisations already have, ``none`` does not, and then neither do we.)
* ``mixed``: every character of a script written without spaces between words
  (:data:`UNSPACED_RANGES`: Han, kana, Bopomofo, Thai, Lao, Khmer, Myanmar, Yi) is one
  token, everything else is split into words: the "mixed error rate" (MER) reported for
  code-switched Mandarin-English.  Defined as: the normalised text with a space put
  either side of each such character, then split as words (:func:`python_tokens` spells
  it out in plain Python).  Not jiwer's "match error rate", which is also called MER.

Tokens are produced vectorised over pyarrow arrays, as words are: flat token arrays (or
code points) plus per-row offsets, which :mod:`fairaudit.scoring` aligns.
"""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UserInputError
from .normalize import PY_WHITESPACE, normalize, python_reference_split, split_words, words_flat

UNITS = ("word", "char", "mixed")
#: the rate each unit gives, as table headers name it
RATE_NAMES = {"word": "WER", "char": "CER", "mixed": "MER"}
RATE_TITLES = {"word": "word error rate", "char": "character error rate", "mixed": "mixed error rate"}
#: what the reference-length column (``ref_words``, kept under that name) counts
TOKEN_NAMES = {"word": "words", "char": "characters", "mixed": "tokens"}

#: Scripts written without spaces between words: each character is one token under
#: ``mixed``.  (Korean Hangul is written with spaces and stays word-split.)
UNSPACED_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0E00, 0x0E7F, "Thai"),
    (0x0E80, 0x0EFF, "Lao"),
    (0x1000, 0x109F, "Myanmar"),
    (0x1780, 0x17FF, "Khmer"),
    (0x19E0, 0x19FF, "Khmer symbols"),
    (0x2E80, 0x2FDF, "CJK radicals, Kangxi radicals"),
    (0x3005, 0x3007, "CJK iteration mark, closing mark, ideographic zero"),
    (0x3021, 0x3029, "Hangzhou numerals"),
    (0x3031, 0x3035, "kana repeat marks"),
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3100, 0x312F, "Bopomofo"),
    (0x31A0, 0x31BF, "Bopomofo extended"),
    (0x31F0, 0x31FF, "Katakana phonetic extensions"),
    (0x3400, 0x4DBF, "CJK unified ideographs extension A"),
    (0x4E00, 0x9FFF, "CJK unified ideographs"),
    (0xA000, 0xA4CF, "Yi"),
    (0xA9E0, 0xA9FF, "Myanmar extended-B"),
    (0xAA60, 0xAA7F, "Myanmar extended-A"),
    (0xF900, 0xFAFF, "CJK compatibility ideographs"),
    (0xFF66, 0xFF9F, "halfwidth Katakana"),
    (0x1B000, 0x1B16F, "Kana supplement, extended-A"),
    (0x20000, 0x2FA1F, "CJK extensions B-F, compatibility supplement"),
    (0x30000, 0x323AF, "CJK extensions G-H"),
)

_CLASS_BODY = "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b, _ in UNSPACED_RANGES)
#: RE2 (pyarrow) and Python spellings of the same character class
UNSPACED_RE2 = f"[{_CLASS_BODY}]"
_UNSPACED_PY = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b, _ in UNSPACED_RANGES) + "]")


def check_unit(unit: str) -> str:
    """``unit`` if it is one of :data:`UNITS`, else a one-line user error."""
    if unit not in UNITS:
        raise UserInputError(f"unknown unit {unit!r}", hint=f"--unit takes one of: {', '.join(UNITS)}")
    return unit


def rate_name(unit: str | None) -> str:
    """WER, CER or MER: the name of the error rate of ``unit`` (word when absent)."""
    return RATE_NAMES.get(unit or "word", "WER")


def report_unit(report: dict) -> str:
    """The unit a report.json was scored in (``word`` for reports written before units)."""
    return (report.get("inputs") or {}).get("unit") or "word"


def is_unspaced(ch: str) -> bool:
    """Whether one character belongs to :data:`UNSPACED_RANGES`."""
    return bool(_UNSPACED_PY.fullmatch(ch))


def python_tokens(normalised: str, unit: str) -> list[str]:
    """The tokens of one *normalised* string, in plain Python: the definition the
    vectorised functions below are tested against (and what display code uses)."""
    if unit == "char":
        return list(normalised.strip())
    if unit == "mixed":
        normalised = _UNSPACED_PY.sub(lambda m: f" {m.group(0)} ", normalised)
    return python_reference_split(normalised)


def tokenize(values, mode: str = "default", unit: str = "word") -> list[list[str]]:
    """Normalise and split into tokens of ``unit``: one Python list per transcript (for
    display and tests; scoring uses the flat forms)."""
    if unit == "word":
        from .normalize import tokenize as word_tokenize

        return [t or [] for t in word_tokenize(values, mode).to_pylist()]
    return [python_tokens(s, unit) for s in normalize(values, mode).to_pylist()]


def tokens_flat(values, mode: str = "default", unit: str = "word") -> tuple[np.ndarray, pa.Array]:
    """Word or mixed tokens as (row offsets, flat token strings), like
    :func:`fairaudit.normalize.words_flat`."""
    if unit == "word":
        return words_flat(values, mode)
    if unit != "mixed":
        raise ValueError(f"tokens_flat takes word or mixed, not {unit!r}")
    raw = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string())
    if _all_ascii(raw):
        # No unspaced script anywhere (and no normalisation makes one out of ASCII):
        # mixed tokens are words, and the word path is faster.
        return words_flat(raw, mode)
    arr = pc.replace_substring_regex(normalize(raw, mode), UNSPACED_RE2, " \\0 ")
    lists = split_words(arr)
    offsets = lists.offsets.to_numpy().astype(np.int64)
    return offsets - offsets[0], lists.flatten()


def _all_ascii(arr: pa.Array | pa.ChunkedArray) -> bool:
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return False
        data = chunk.buffers()[2]
        if data is not None and not bytes(memoryview(data)).isascii():
            return False
    return True


def char_codes(values, mode: str = "default") -> tuple[np.ndarray, np.ndarray]:
    """Characters as jiwer's CER counts them: (row offsets in code points, code points as uint32).

    Each normalised transcript is stripped of white space at both ends (``str.strip``)
    and every code point, inner spaces included, is a token.
    """
    arr = normalize(values, mode)
    if mode != "default":
        # The default normalisation leaves single ASCII spaces between words and none at
        # the ends; the others may leave any white space.
        arr = pc.utf8_trim(arr, PY_WHITESPACE)
    arr = arr.cast(pa.large_string()) if not pa.types.is_large_string(arr.type) else arr
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int64)[arr.offset: arr.offset + len(arr) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(bufs[2], np.uint8)[start:end] if bufs[2] is not None else np.zeros(0, np.uint8)
    # A code point starts at every byte that is not a UTF-8 continuation byte (10xxxxxx).
    starts = np.zeros(len(data) + 1, np.int64)
    np.cumsum((data & 0xC0) != 0x80, out=starts[1:])
    cp_offsets = starts[offsets - start]
    codes = np.frombuffer(data.tobytes().decode("utf-8").encode("utf-32-le"), "<u4")
    return cp_offsets, codes
