"""Small-cohort WER intervals (fairaudit.intervals): coverage by simulation and edge cases."""
import numpy as np
import pytest

from fairaudit import intervals


def test_multinomial_counts_are_resamples():
    c = intervals.multinomial_counts(np.random.default_rng(0), 7, 50)
    assert c.shape == (50, 7) and (c.sum(axis=1) == 7).all() and (c >= 0).all()
    assert len(np.unique(c, axis=0)) > 40          # resamples differ


def test_studentized_holds_coverage_at_the_speaker_floor_where_percentile_does_not():
    # 25-speaker cohorts of issue-15 speakers (Beta(0.1, 20) rates, Poisson(8)+1 utterances).
    stud = intervals.coverage(25, replicates=400, method="studentized", n_boot=400, seed=11)
    perc = intervals.coverage(25, replicates=400, method="percentile", n_boot=400, seed=11)
    assert stud["coverage"] >= 0.925, stud
    assert stud["coverage"] > perc["coverage"]
    # the misses of the percentile interval are on the low side: the skew it ignores
    assert perc["below"] > perc["above"]


def test_intervals_contain_the_estimate_and_respect_zero():
    rng = np.random.default_rng(3)
    words = rng.integers(50, 150, 60).astype(float)
    errors = rng.binomial(words.astype(int), 0.1).astype(float)
    errors[:20] = 0                                   # cohort 0 has no errors at all
    codes = np.repeat([0, 1, 2], 20)
    for method in intervals.METHODS:
        res = intervals.cohort_wer_intervals(errors, words, codes, n_boot=300, seed=1, method=method,
                                             pairs=[(1, 0)])
        assert res["lo"][0] == 0.0 and res["hi"][0] == 0.0
        assert (res["lo"][1:] <= res["wer"][1:]).all() and (res["wer"][1:] <= res["hi"][1:]).all()
        assert (res["lo"] >= 0).all()
        assert res["gap_pct"][0] == (None, None)      # top WER 0: the relative gap is unbounded
        assert res["gap_abs"][0][0] > 0


def test_deterministic_per_seed_and_one_speaker_cohort():
    e, w = np.array([5.0, 9.0, 2.0, 7.0]), np.array([50.0, 60.0, 40.0, 70.0])
    codes = np.array([0, 0, 0, 1])
    a = intervals.cohort_wer_intervals(e, w, codes, n_boot=200, seed=4)
    b = intervals.cohort_wer_intervals(e, w, codes, n_boot=200, seed=4)
    assert np.array_equal(a["lo"], b["lo"]) and np.array_equal(a["resamples"], b["resamples"])
    assert a["lo"][1] == a["hi"][1] == pytest.approx(0.1)   # one speaker: nothing to resample
    assert 0 <= a["lo"][0] <= a["wer"][0] <= a["hi"][0]
    with pytest.raises(ValueError):
        intervals.cohort_wer_intervals(e, w, codes, method="magic")
