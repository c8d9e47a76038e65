"""Checks on the transcripts themselves that change what a "word" means.

Chinese, Japanese, Thai, Lao, Khmer, Myanmar and Tibetan are written without spaces
between words: split on white space, a whole sentence is one "word", and a single wrong
character makes the sentence one substitution.  Word error rate is then not what it says.
The audit warns once, with the share of such rows, and points to character-level scoring.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .normalize import is_ascii

# Scripts written without spaces between words (RE2 script classes; Korean uses spaces).
UNSPACED_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar", "Tibetan")
_UNSPACED = "[" + "".join(f"\\p{{{s}}}" for s in UNSPACED_SCRIPTS) + "]"
#: the flag that scores characters instead of words
CHAR_UNIT_FLAG = "--unit char"


def unspaced_mask(values) -> np.ndarray:
    """Per transcript (bool): does it hold a character of a script written without spaces?

    ``values``: a pyarrow string array (or anything ``pa.array`` takes).  One vectorised
    pass finds the non-ASCII rows; the regex runs on those only.
    """
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string(),
                                                                                 from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    arr = pc.fill_null(arr, "")
    out = np.zeros(len(arr), bool)
    if len(arr) == 0 or is_ascii(arr):
        return out
    wide = pc.invert(pc.string_is_ascii(arr))
    rows = np.flatnonzero(wide.to_numpy(zero_copy_only=False))
    out[rows] = pc.match_substring_regex(arr.take(pa.array(rows)), _UNSPACED).to_numpy(zero_copy_only=False)
    return out


def unspaced_rows(values) -> int:
    """How many transcripts (count) hold a character of a script written without spaces."""
    return int(unspaced_mask(values).sum())


def unspaced_warning(count: int, rows: int) -> str | None:
    """The one warning for ``count`` such rows out of ``rows`` read (None when there are none)."""
    if not count or not rows:
        return None
    return (f"{count:,} of {rows:,} reference(s) ({100 * count / rows:.1f} %) are written in a script without "
            f"spaces between words (Chinese, Japanese, Thai, ...): each run of such text counts as one word, so "
            f"their WER is not a word error rate; score them by character with {CHAR_UNIT_FLAG}")
