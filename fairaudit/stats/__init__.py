"""Honest statistics: speaker bootstrap, permutation null, held-out gap, paired comparison.

A discoverer that searches for the worst split finds a gap even when WER is unrelated to
every feature (selection bias).  This package puts error bars and a null reference next to
each discoverer's headline numbers:

* :func:`bootstrap_cohorts` / :func:`bootstrap_overall` (:mod:`.bootstrap`): confidence
  intervals of micro WER (ratio; studentised) and of the bottom-vs-top gap (percentile),
  resampling **speakers**, stratified by cohort (cohorts held fixed: conditional on the
  discovery);
* :func:`permutation_null` (:mod:`.permutation`): how large a gap the same search finds
  when the speakers' (errors, ref_words) are shuffled across speakers, and the
  selection-corrected p-value;
* :func:`fairaudit.heldout.heldout_gap` (used by :func:`add_statistics`): discover on some
  speakers, measure the chosen bottom/top cohorts on the held-out speakers (cross-fitted);
* :func:`honest_gap` (:mod:`.heldout`): the earlier utterance split (discover on one random
  half of every speaker's utterances, measure on the other half), kept for comparison: the
  speaker's own error level sits in both halves, so it keeps most of the selection bias;
* :func:`paired_delta` (:mod:`.paired`): two systems on the same speakers;
* :func:`add_statistics` / :func:`overall_ci` (:mod:`.report`): all of the above in
  report entries.

Every function is deterministic for a given ``seed``, whatever the number of worker
processes; each statistic draws from its own named stream (:mod:`.rng`).
"""
from ..cohorts import rank_cohorts
from .bootstrap import BOOTSTRAP_METHOD, bootstrap_cohorts, bootstrap_overall
from .heldout import HONEST_METHOD, honest_gap, split_utterances
from .paired import PAIRED_METHOD, paired_delta
from .permutation import PERMUTATION_METHOD, permutation_null
from .report import add_statistics, overall_ci

__all__ = ["BOOTSTRAP_METHOD", "HONEST_METHOD", "PAIRED_METHOD", "PERMUTATION_METHOD", "add_statistics",
           "bootstrap_cohorts", "bootstrap_overall", "honest_gap", "overall_ci", "paired_delta",
           "permutation_null", "rank_cohorts", "split_utterances"]
