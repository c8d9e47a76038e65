"""What can this test set tell?  Power analysis and a planted self-test.

An audit that finds no significant gap proves little if the test set is too small to find
one.  Both functions here answer "how large a disparity would this audit have found?" on
the user's own per-speaker table (its speaker count, words per speaker and spread of
per-speaker WER), by planting disparities of known size and running the real discovery
and the real selection-corrected test on them.

Both start from an audit (:class:`fairaudit.result.AuditResult`, in memory or saved): its
speaker table, side inputs and discoverers, never a new audit.

Simulated world (:func:`estimate_power` and :func:`selftest`)
    1. *Null world*: the speakers' count columns (errors, ref_words, utterances) are
       permuted jointly across the audited speakers, exactly as the permutation null of
       :mod:`fairaudit.stats` does: every speaker keeps a real (errors, ref_words) pair, so
       the distribution of words and of per-speaker WER is the real one, but any real
       disparity is destroyed (it cannot be mistaken for the plant).
    2. *Plant*: a cohort the discoverer can express gets a multiplicative error increase
       of g (ratio; 1.0 = +100 %): each planted speaker's errors e become
       floor(e x (1 + g) + u) with u ~ Uniform(0, 1) drawn once per speaker (stochastic
       rounding).  The expected errors are exactly e x (1 + g), so the plant's expected
       WER is (1 + g) times its null-world WER; errors are not capped at ref_words
       (insertions make WER > 1 possible, as in real data).  The cohorts:

       every discoverer brings its own planter (:meth:`fairaudit.discover.Discoverer.planter`,
       defined in its module): geographic plants on the speakers in a lat/lon box around a
       random speaker, geodemographic on the zips of one census rule it would consider,
       automatic on the nearest neighbours of a random speaker in embedding space,
       attribute on every speaker with one value; a discoverer without one gets the
       generic planter, which plants on one of its own cohorts near the target size.
    3. *Discovery and test*: the discoverer is re-fitted on the planted table and its
       bottom cohort and relative gap are taken as the audit takes them (same ranking,
       same ``min_speakers`` eligibility).

Cheaper null (:func:`estimate_power`)
    The null distribution of the discovered gap does not depend on the plant nor on the
    cohort share, so it is computed once per discoverer with
    :func:`fairaudit.stats.permutation_null` (``n_perm`` permutations, the same
    ``seed`` as the audit's own test) and every simulated planted dataset needs only one
    discovery and a comparison against it: p = (1 + #{null >= gap}) / (1 + n_perm), the
    audit's formula (p < alpha is the same as the gap exceeding the null's 1 - alpha
    quantile, up to the discreteness of n_perm).

Detection
    A simulation counts as a detection when p < ``alpha`` **and** the bottom cohort is
    mostly planted speakers: precision = |bottom ∩ plant| / |bottom| >= 0.5.  (A
    significant gap in the wrong place is not the disparity being found.)  The self-test
    also asks for recall = |bottom ∩ plant| / |plant| >= 0.5: the audit pointed at most of
    the planted speakers.

Power curve
    Each of ``n_sim`` simulated worlds (null world + plant + rounding draws) is planted at
    every gap of the grid (common random numbers: the curves are smooth and monotone up to
    noise) plus gap 0 (the null world itself, whose "power" is the false-detection rate).
    Power at a gap = share of worlds detected.  The smallest detectable gap is where the
    curve first reaches ``power``, linearly interpolated between grid points (% relative
    WER gap; None when it is not reached up to the largest gap).

Speed: simulations run in a process pool (``workers``, default all cores) when the serial
run would take longer than about a second; each simulation draws from its own
``SeedSequence`` child, so results are identical for any number of workers.
"""
from .selftest import selftest
from .simulate import (DEFAULT_GAPS_PCT, DEFAULT_SHARES, MIN_PRECISION, MIN_RECALL, POWER_METHOD, SELFTEST_METHOD,
                       check_same_cohorts, estimate_power, prepare)

__all__ = ["DEFAULT_GAPS_PCT", "DEFAULT_SHARES", "MIN_PRECISION", "MIN_RECALL", "POWER_METHOD", "SELFTEST_METHOD",
           "check_same_cohorts", "estimate_power", "prepare", "selftest"]
