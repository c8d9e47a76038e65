"""Two systems decoded on the same speakers: matched pairs over speakers (NIST sc_stats idea)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserInputError
from . import rng as _rng
from ._common import BLOCK_CELLS, as_counts, check_count, check_level, check_seed, interval
from .bootstrap import resample_ratio

PAIRED_METHOD = ("matched pairs over speakers: percentile bootstrap of speakers for the CI, two-sided "
                 "sign-flip permutation of per-speaker error differences for the p-value")


def paired_delta(errors_a: Any, errors_b: Any, words: Any, n_resamples: int = 10000, seed: int = 0,
                 level: float = 0.95, key: str = "") -> dict:
    """Compare two systems decoded on the same speakers (matched pairs over speakers).

    ``errors_a``/``errors_b``: per-speaker error counts of systems A and B; ``words``: the
    speakers' reference words (counts).  ΔWER = (sum e_B - sum e_A) / sum w (ratio; > 0
    means B is worse).  CI: percentile bootstrap resampling speakers (``n_resamples``
    times).  p-value: two-sided sign-flip permutation test of the per-speaker differences
    d = e_B - e_A (under "no difference" each d is as likely to have either sign):
    p = (1 + #{|sum s·d| >= |sum d|}) / (1 + n_resamples).  ``key`` names the random
    stream (``stream(seed, "paired", key)``), e.g. the discoverer and cohort.

    Returns ``{"delta_wer", "ci_low", "ci_high", "p_value", "n_speakers", "n_resamples",
    "level", "seed", "method"}``.
    """
    ea, eb, w = as_counts(errors_a, "errors_a"), as_counts(errors_b, "errors_b"), as_counts(words, "words")
    if not (len(ea) == len(eb) == len(w)):
        raise ValueError(f"errors_a, errors_b and words differ in length ({len(ea)}, {len(eb)}, {len(w)})")
    n_resamples = check_count(n_resamples, "number of resamples", 1)
    level, seed = check_level(level), check_seed(seed)
    total_w = float(w.sum())
    if total_w <= 0:
        raise UserInputError("no reference words: the WER difference is undefined")
    d = eb - ea
    n = len(d)
    boot_gen, flip_gen = (np.random.default_rng(s) for s in _rng.stream(seed, "paired", key).spawn(2))
    deltas = resample_ratio(d, w, n_resamples, boot_gen)
    lo, hi = interval(deltas, level)

    observed = abs(float(d.sum()))
    total_d = float(d.sum())
    hits = 0
    step = max(1, BLOCK_CELLS // max(n, 1))
    nbytes = (n + 7) // 8
    for b0 in range(0, n_resamples, step):
        b = min(step, n_resamples - b0)
        # 8 random signs per random byte
        bits = np.unpackbits(flip_gen.integers(0, 256, size=(b, nbytes), dtype=np.uint8), axis=1, count=n)
        stat = 2.0 * (bits.astype(np.float64) @ d) - total_d   # sum of s_i d_i with s_i = +-1
        # integer-valued sums in float64 are exact; the tolerance only guards rounding
        hits += int(np.sum(np.abs(stat) >= observed - 1e-9 * max(1.0, observed)))
    return {"delta_wer": float(total_d / total_w), "ci_low": lo, "ci_high": hi,
            "p_value": (1 + hits) / (1 + n_resamples), "n_speakers": int(n), "n_resamples": n_resamples,
            "level": level, "seed": seed, "method": PAIRED_METHOD}
