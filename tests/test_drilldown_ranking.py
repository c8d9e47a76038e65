"""The shared utterance ranking (fairaudit.drilldown.UtteranceRanking): each cohort's
candidate rows give the worst utterances a full sort of the cohort gives, and the
chunk-wise take gives what ``iloc`` gives."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fairaudit import drilldown
from fairaudit.alignment import worst_utterances
from fairaudit.lookup import positions


def _str(values, chunks=1):
    """A pandas str column backed by a pyarrow array of ``chunks`` chunks (as Parquet reads it)."""
    values = list(values)
    step = max(1, -(-len(values) // chunks))
    arr = pa.chunked_array([pa.array(values[i:i + step], pa.string()) for i in range(0, len(values), step)]
                           or [pa.array([], pa.string())])
    return pd.Series(pd.arrays.ArrowStringArray(arr)).astype(pd.StringDtype("pyarrow", na_value=np.nan))


def _tables(seed, n=4000, n_speakers=120, errors_dtype="int64", chunks=4):
    rng = np.random.default_rng(seed)
    spk = rng.integers(0, n_speakers, n)
    words = rng.integers(1, 12, n)
    errors = rng.integers(0, 4, n).astype(errors_dtype)          # many ties in errors and WER
    utts = pd.DataFrame({"utt_id": _str([f"u{i:05d}" for i in rng.permutation(n)], chunks),
                         "speaker_id": _str([f"s{s:03d}" for s in spk], chunks),
                         "ref_words": words, "errors": errors})
    utts["wer"] = utts["errors"] / utts["ref_words"]
    utts.index = np.arange(1, n + 1)
    # the speaker table in another order than sorted, and one speaker with no utterance
    ids = [f"s{s:03d}" for s in rng.permutation(n_speakers + 1)]
    speakers = pd.DataFrame({"speaker_id": _str(ids)})
    return utts, speakers


def _full_sort(utts, members, n):
    return worst_utterances(utts, list(members), n, redact_text=True)


@pytest.mark.parametrize("errors_dtype", ["int64", "float64"])
def test_candidates_give_the_full_sort_s_worst(errors_dtype):
    utts, speakers = _tables(3, errors_dtype=errors_dtype)
    rank = drilldown.UtteranceRanking(utts, speakers)
    rng = np.random.default_rng(4)
    # an assignment over part of the speakers, in its own order; cohort 5 has one speaker
    ids = speakers["speaker_id"].to_numpy(dtype=object)[rng.permutation(len(speakers))[:100]]
    codes = rng.integers(0, 5, len(ids))
    codes[0] = 5
    rows = rank.per_row(pd.Index(ids), codes)
    for n in (1, 3, 5, 40):
        cand = rank.candidates(rows, 6, n)
        assert len(cand) == 6
        for c in range(6):
            got = worst_utterances(utts.iloc[cand[c]], None, n, redact_text=True, mask=np.ones(len(cand[c]), bool))
            assert got == _full_sort(utts, ids[codes == c], n)
            assert (np.diff(cand[c]) > 0).all()
        # candidates are pruned: not every utterance of a cohort (cohorts hold ~800 here)
        if n <= 5:
            assert sum(len(c) for c in cand) < len(utts) / 2


def test_candidates_with_a_missing_error_count_keep_every_row():
    utts, speakers = _tables(5, n=600, errors_dtype="float64")
    utts.loc[utts.index[7], "errors"] = np.nan
    rank = drilldown.UtteranceRanking(utts, speakers)
    assert rank.level is None
    ids = speakers["speaker_id"].to_numpy(dtype=object)
    cand = rank.candidates(rank.per_row(pd.Index(ids), np.zeros(len(ids), int)), 1, 3)[0]
    assert len(cand) == len(utts)


def test_per_row_same_order_and_lookup_agree():
    utts, speakers = _tables(6, n=500)
    rank = drilldown.UtteranceRanking(utts, speakers)
    codes = np.arange(len(speakers)) % 3
    same = rank.per_row(speakers["speaker_id"], codes)                            # fast path: same ids, same order
    looked = rank.per_row(pd.Index(speakers["speaker_id"].to_numpy(dtype=object)), codes)  # object ids: look-up
    assert (same == looked).all() and same[-1] == 0 and (same[:-1] == codes + 1).all()


def test_positions_equal_get_indexer():
    values = _str(["b", "z", "a", "b", None, "c"], chunks=2)
    table = _str(["a", "b", "c"])
    want = pd.Index(table.to_numpy(dtype=object)).get_indexer(values.to_numpy(dtype=object))
    assert positions(values, table).tolist() == want.tolist() == [1, -1, 0, 1, -1, 2]
    assert positions(np.array(["c", "q"], dtype=object), ["a", "b", "c"]).tolist() == [2, -1]


def test_take_chunk_wise_equals_iloc():
    utts, _ = _tables(7, n=1000, chunks=7)
    utts["reference"] = _str([f"r{i}" for i in range(len(utts))], chunks=3)   # other chunk edges
    assert utts["utt_id"].array._pa_array.num_chunks == 7
    rows = np.sort(np.random.default_rng(8).choice(len(utts), 60, replace=False))
    pd.testing.assert_frame_equal(drilldown._take(utts, rows), utts.iloc[rows])
    groups = [rows[::2], rows[5:9], np.array([], np.int64)]
    for got, g in zip(drilldown.take_rows(utts, groups), groups):
        pd.testing.assert_frame_equal(got, utts.iloc[g])


def test_speaker_table_intervals_equal_the_chi2_definition():
    """Quantiles evaluated once per distinct error count give the per-speaker chi-square interval."""
    from scipy.stats import chi2

    rng = np.random.default_rng(9)
    n = 3000
    speakers = pd.DataFrame({"speaker_id": _str([f"s{i:04d}" for i in rng.permutation(n)]),
                             "utterances": rng.integers(1, 9, n), "errors": rng.integers(0, 40, n),
                             "ref_words": rng.integers(0, 200, n)})      # some speakers without words
    table = drilldown.speaker_table(speakers, 0.9)
    sp = speakers.sort_values("speaker_id")
    e, w = sp["errors"].to_numpy(float), sp["ref_words"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(e > 0, chi2.ppf(0.05, 2 * e) / 2, 0.0) / w
        high = chi2.ppf(0.95, 2 * (e + 1)) / 2 / w
    assert table["speaker_id"] == sorted(sp["speaker_id"])
    for got, want in ((table["wer_ci_low"], low), (table["wer_ci_high"], high)):
        assert [g is None for g in got] == list(w == 0)
        assert np.allclose([g for g in got if g is not None], np.round(want[w > 0], 4), atol=1e-4)


def test_ties_at_the_threshold_are_cut_by_wer():
    """A near-perfect system (most utterances without errors): candidates stay few and exact."""
    utts, speakers = _tables(11, n=6000)
    rng = np.random.default_rng(12)
    utts["errors"] = np.where(rng.random(len(utts)) < 0.999, 0, 1)
    utts["wer"] = utts["errors"] / utts["ref_words"]
    rank = drilldown.UtteranceRanking(utts, speakers)
    rank.REFINE_ABOVE = 50
    ids = speakers["speaker_id"].to_numpy(dtype=object)
    codes = np.arange(len(ids)) % 2
    for n in (1, 3, 5, 12):
        cand = rank.candidates(rank.per_row(pd.Index(ids), codes), 2, n)
        for c in range(2):
            got = worst_utterances(utts.iloc[cand[c]], None, n, redact_text=True, mask=np.ones(len(cand[c]), bool))
            assert got == _full_sort(utts, ids[codes == c], n)
            assert len(cand[c]) < 1000
