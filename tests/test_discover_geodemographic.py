"""Geodemographic discoverer (Dheram et al.) and the census reader, on synthetic data with known truth."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from fairaudit.discover import REGISTRY, SideInputs
from fairaudit.discover.base import wer_of
from fairaudit.discover.geodemographic import GeodemographicDiscoverer
from fairaudit.errors import UserInputError
from fairaudit.io.census import normalize_zip, prepare_census, read_census

GROUPS = ("white", "black", "hispanic", "asian")
SHARE_COLS = [f"pct_{g}" for g in GROUPS]


# ---------------------------------------------------------------- synthetic data

def make_census(seed: int = 0, n_zips: int = 400) -> pd.DataFrame:
    """Census frame (zip column, fractions, median_income); a few zips have leading zeros."""
    rng = np.random.default_rng(seed)
    nums = rng.choice(np.arange(10000, 99999), size=n_zips, replace=False)
    nums[:5] = [2139, 501, 7102, 8540, 1002]  # leading zeros: 02139, 00501, ...
    zips = [f"{z:05d}" for z in nums]
    # Majority group per zip (about 8 % of zips majority-Black), or no majority.
    kind = rng.choice(6, size=n_zips, p=[0.55, 0.08, 0.17, 0.05, 0.05, 0.10])
    shares = np.zeros((n_zips, 4))
    for i, k in enumerate(kind):
        if k < 4:
            major = rng.uniform(0.55, 0.9)
            rest = rng.dirichlet(np.ones(3)) * (1 - major)
            shares[i] = np.insert(rest, k, major)
        else:  # mixed: nobody above 50 %
            s = rng.dirichlet(np.full(4, 8.0))
            shares[i] = s if s.max() <= 0.5 else np.full(4, 0.25)
    income = np.round(rng.lognormal(np.log(60000), 0.35, n_zips), -2)
    frame = pd.DataFrame({"zip": zips, **{c: np.round(shares[:, j], 3) for j, c in enumerate(SHARE_COLS)},
                          "median_income": income})
    return frame


def make_speakers(census: pd.DataFrame, seed: int = 1, n: int = 2000, planted=None, multiplier: float = 2.0):
    """Per-speaker table; ``planted(census_rows_of_speakers) -> bool mask`` gets p x multiplier."""
    rng = np.random.default_rng(seed)
    row = rng.integers(0, len(census), n)
    words = rng.integers(60, 201, n)
    p = 0.10 * rng.lognormal(0.0, 0.3, n)
    mask = np.zeros(n, bool) if planted is None else planted(census.iloc[row].reset_index(drop=True))
    p = np.minimum(np.where(mask, p * multiplier, p), 0.9)
    errors = rng.binomial(words, p)
    sub = errors // 2
    dele = (errors - sub) // 2
    ids = np.array([f"spk{i:05d}" for i in range(n)], dtype=object)
    speakers = pd.DataFrame({
        "speaker_id": ids, "utterances": rng.integers(3, 12, n), "ref_words": words,
        "substitutions": sub, "deletions": dele, "insertions": errors - sub - dele, "errors": errors,
        "wer": errors / words, "zip": census["zip"].to_numpy()[row], "gender": rng.choice(["f", "m"], n),
    })
    return speakers, set(ids[mask])


def side_of(census: pd.DataFrame) -> SideInputs:
    return SideInputs(census=prepare_census(census))


def cohort_wers(speakers: pd.DataFrame, assignment: pd.Series) -> dict[str, float]:
    sp = speakers.set_index("speaker_id").loc[assignment.index]
    return {c: wer_of(sp["errors"].to_numpy()[m], sp["ref_words"].to_numpy()[m])
            for c in assignment.unique() for m in [(assignment == c).to_numpy()]}


def precision_recall(speakers, assignment, planted):
    wers = cohort_wers(speakers, assignment)
    bottom = max(wers, key=wers.get)
    in_bottom = set(assignment.index[assignment == bottom])
    sp = speakers.set_index("speaker_id").loc[assignment.index]
    overall = wer_of(sp["errors"], sp["ref_words"])
    above = {c for c, w in wers.items() if w > overall}
    in_above = set(assignment.index[assignment.isin(above)])
    return len(in_bottom & planted) / len(in_bottom), len(in_above & planted) / len(planted)


def rel_gap(speakers, assignment) -> float:
    wers = cohort_wers(speakers, assignment)
    return 100 * (max(wers.values()) - min(wers.values())) / min(wers.values())


def majority_black(rows):
    return (rows["pct_black"] > 0.5).to_numpy()


@pytest.fixture(scope="module")
def census():
    return make_census()


@pytest.fixture(scope="module")
def planted_black(census):
    speakers, planted = make_speakers(census, planted=majority_black)
    return speakers, planted, GeodemographicDiscoverer().fit(speakers, side_of(census))


# ---------------------------------------------------------------- discoverer: known truth

def test_registered():
    assert REGISTRY["geodemographic"] is GeodemographicDiscoverer


def test_planted_majority_black_found(planted_black):
    speakers, planted, found = planted_black
    assert 0.05 < len(planted) / len(speakers) < 0.12
    assert "pct_black" in found.details["rule"]
    assert found.labels["A"] == found.details["rule"] == "pct_black > 50%"
    assert found.labels["B"] == "NOT (pct_black > 50%)"
    precision, recall = precision_recall(speakers, found.assignment, planted)
    assert precision >= 0.9 and recall >= 0.9
    assert set(found.assignment.unique()) == {"A", "B"}
    assert found.cohort_details == {"A": {"rule": "pct_black > 50%"}, "B": {"rule": "NOT (pct_black > 50%)"}}
    assert rel_gap(speakers, found.assignment) > 60


def test_details_shape(planted_black):
    speakers, _, found = planted_black
    d = found.details
    json.dumps(d), json.dumps(found.cohort_details), json.dumps(found.params)
    assert d["share_columns"] == {c: "fraction" for c in SHARE_COLS}
    assert list(d["thresholds"]) == ["median_income"]
    t = d["thresholds"]["median_income"]
    assert len(t) == 3 and t == sorted(t)
    assert all(float(f"{x:.3g}") == x for x in t)  # 3 significant figures
    assert 1 <= len(d["candidates"]) <= 20
    # 4 shares x 2 + income 3 x 2 = 14 literals; pairs on different columns.
    assert d["candidates_evaluated"] > 14
    gaps = [c["gap_pct"] for c in d["candidates"]]
    assert gaps == sorted(gaps, reverse=True)
    c0 = d["candidates"][0]
    assert set(c0) >= {"rule", "speakers_in_rule", "speakers_rest", "wer_in_rule", "wer_rest", "gap_pct"}
    assert all(c["speakers_in_rule"] >= 20 and c["speakers_rest"] >= 20 for c in d["candidates"])
    assert c0["speakers_in_rule"] + c0["speakers_rest"] == len(found.assignment)
    # The chosen rule's numbers agree with the assignment.
    chosen = next(c for c in d["candidates"] if c["rule"] == d["rule"])
    wers = cohort_wers(speakers, found.assignment)
    assert chosen["wer_in_rule"] == pytest.approx(wers["A"]) and chosen["wer_rest"] == pytest.approx(wers["B"])
    assert chosen["speakers_in_rule"] == int((found.assignment == "A").sum())
    assert found.params == {"min_speakers": 20, "seed": 0, "max_depth": 2, "max_candidates_shown": 20,
                            "min_gain_pct": 10.0}


def test_income_labels_readable(census):
    def rich(rows):
        return (rows["median_income"] >= 75000).to_numpy()
    speakers, planted = make_speakers(census, seed=3, planted=rich, multiplier=2.0)
    found = GeodemographicDiscoverer(max_depth=1).fit(speakers, side_of(census))
    assert found.details["rule"].startswith("median_income >= ")
    assert "," in found.details["rule"]  # thousands separator


def test_planted_conjunction_found_at_depth_2(census):
    speakers0, _ = make_speakers(census, seed=5)
    incomes = census.set_index("zip").loc[speakers0["zip"], "median_income"].to_numpy()
    t50 = float(f"{np.percentile(incomes, 50):.3g}")  # the discoverer's median threshold

    def hispanic_poor(rows):
        return ((rows["pct_hispanic"] > 0.5) & (rows["median_income"] < t50)).to_numpy()

    speakers, planted = make_speakers(census, seed=5, planted=hispanic_poor)
    found = GeodemographicDiscoverer(max_depth=2).fit(speakers, side_of(census))
    rule = found.details["rule"]
    assert "pct_hispanic > 50%" in rule and "median_income <" in rule and " AND " in rule
    assert found.labels["B"] == f"NOT ({rule})"
    precision, recall = precision_recall(speakers, found.assignment, planted)
    assert precision >= 0.9 and recall >= 0.9
    # One literal alone cannot describe the group.
    shallow = GeodemographicDiscoverer(max_depth=1).fit(speakers, side_of(census))
    assert " AND " not in shallow.details["rule"]
    assert precision_recall(speakers, shallow.assignment, planted)[0] < 0.8


def test_no_planted_disparity_small_gap(census, planted_black):
    speakers, _ = make_speakers(census, seed=7)
    found = GeodemographicDiscoverer().fit(speakers, side_of(census))
    gap = rel_gap(speakers, found.assignment)
    planted_gap = rel_gap(planted_black[0], planted_black[2].assignment)
    assert gap < 30
    assert gap < planted_gap / 3


def test_deterministic_and_row_order_free(census, planted_black):
    speakers, _, found = planted_black
    again = GeodemographicDiscoverer().fit(speakers, side_of(census))
    assert again.assignment.equals(found.assignment) and again.details == found.details
    shuffled = speakers.sample(frac=1.0, random_state=3)
    other = GeodemographicDiscoverer(seed=5).fit(shuffled, side_of(census))
    assert other.assignment.sort_index().equals(found.assignment.sort_index())
    assert other.details == found.details


def test_min_gain_zero_is_plain_largest_gap(planted_black, census):
    speakers, _, _ = planted_black
    found = GeodemographicDiscoverer(min_gain_pct=0).fit(speakers, side_of(census))
    assert found.details["rule"] == found.details["candidates"][0]["rule"]


def test_min_speakers_respected(census):
    speakers, _ = make_speakers(census, seed=11, n=300)
    found = GeodemographicDiscoverer(min_speakers=60).fit(speakers, side_of(census))
    counts = found.assignment.value_counts()
    assert counts.min() >= 60
    # Nothing can be split: one cohort, said so.
    none = GeodemographicDiscoverer(min_speakers=200).fit(speakers, side_of(census))
    assert set(none.assignment.unique()) == {"all"} and none.details["rule"] is None
    assert len(none.assignment) == 300


def test_permuted_counts_only_use_errors_and_words(planted_black, census):
    speakers, _, _ = planted_black
    perm = speakers.copy()
    order = np.random.default_rng(0).permutation(len(perm))
    perm[["errors", "ref_words"]] = perm[["errors", "ref_words"]].to_numpy()[order]
    perm["wer"] = 0.0  # must be ignored
    found = GeodemographicDiscoverer().fit(perm, side_of(census))
    assert set(found.assignment.unique()) <= {"A", "B"}
    assert rel_gap(perm, found.assignment) < 30


def test_all_zero_errors_and_nobody_audited(census):
    speakers, _ = make_speakers(census, seed=9, n=500)
    zero = speakers.assign(errors=0)
    found = GeodemographicDiscoverer().fit(zero, side_of(census))
    assert found.details["candidates"][0]["gap_pct"] is None  # 0/0: undefined, not infinite
    assert found.details["candidates"][0]["gap_abs"] == 0.0
    assert set(found.assignment.unique()) == {"A", "B"}
    json.dumps(found.details)
    nobody = GeodemographicDiscoverer().fit(speakers.assign(zip="99999"), side_of(census))
    assert len(nobody.assignment) == 0 and nobody.labels == {}
    assert nobody.not_audited == {"zip not in census table": 500}


def test_zero_wer_side_ranks_after_finite_gaps(census):
    """A side without errors gives an undefined relative gap: ranked after every finite gap."""
    speakers, _ = make_speakers(census, seed=10, n=1000)
    rows = census.set_index("zip").loc[speakers["zip"]]
    perfect = (rows["pct_asian"] > 0.5).to_numpy()
    sp = speakers.assign(errors=np.where(perfect, 0, speakers["errors"]))
    found = GeodemographicDiscoverer(max_depth=1).fit(sp, side_of(census))
    gaps = [c["gap_pct"] for c in found.details["candidates"]]
    first_none = gaps.index(None)
    assert all(g is not None for g in gaps[:first_none]) and all(g is None for g in gaps[first_none:])
    assert "pct_asian" not in found.details["rule"]


# ---------------------------------------------------------------- zips and not-audited

def test_normalize_zip_forms():
    got = normalize_zip(["02139", " 02139 ", "02139-1234", "021391234", "2139", 2139, 2139.0, 21391234,
                         "501", "123456", "abc", "", None, "00000", np.nan]).tolist()
    assert got[:9] == ["02139"] * 8 + ["00501"]
    assert all(v is pd.NA for v in got[9:])
    assert normalize_zip(np.array([2139, 90210])).tolist() == ["02139", "90210"]
    s = pd.Series(["02139-1234", None], index=["a", "b"])
    out = normalize_zip(s)
    assert list(out.index) == ["a", "b"] and out["a"] == "02139" and out.isna()["b"]


def test_zip_plus4_and_integer_zips_join(census):
    speakers, _ = make_speakers(census, seed=4, n=400)
    sp = speakers.copy().astype({"zip": object})
    z = np.array(sp["zip"].to_numpy(), dtype=object)
    z[0], z[1], z[2] = "02139-1234", 2139, "021391234"
    sp["zip"] = z
    found = GeodemographicDiscoverer(min_speakers=5).fit(sp, side_of(census))
    assert found.not_audited == {}
    assert len(found.assignment) == 400


def test_not_audited_counted(census):
    speakers, _ = make_speakers(census, seed=6, n=500)
    sp = speakers.copy()
    z = np.array(sp["zip"].to_numpy(), dtype=object)
    z[:3] = [None, "", "abc"]
    z[3:10] = "99999" if "99999" not in set(census["zip"]) else "99998"
    sp["zip"] = pd.array(z, dtype="string")
    found = GeodemographicDiscoverer().fit(sp, side_of(census))
    assert found.not_audited == {"missing or invalid zip": 3, "zip not in census table": 7}
    assert len(found.assignment) == 490
    assert not set(found.assignment.index) & set(sp["speaker_id"][:10])


def test_missing_inputs(census):
    speakers, _ = make_speakers(census, n=50)
    d = GeodemographicDiscoverer()
    assert "zip" in d.missing_inputs(speakers.drop(columns=["zip"]), side_of(census))
    assert "census" in d.missing_inputs(speakers, SideInputs())
    assert d.missing_inputs(speakers, side_of(census)) is None
    with pytest.raises(UserInputError, match="census"):
        d.fit(speakers, SideInputs())


@pytest.mark.parametrize("kwargs, flag", [
    ({"min_speakers": 0}, "--min-speakers"), ({"max_depth": 0}, "--max-depth"),
    ({"max_depth": 4}, "--max-depth"), ({"max_candidates_shown": -1}, "max_candidates_shown"),
    ({"min_gain_pct": -5}, "min_gain_pct"), ({"max_depth": 1.5}, "--max-depth"),
])
def test_bad_params(census, kwargs, flag):
    speakers, _ = make_speakers(census, n=50)
    with pytest.raises(UserInputError, match=flag):
        GeodemographicDiscoverer(**kwargs).fit(speakers, side_of(census))


def test_census_dataframe_without_reader(census):
    """A raw DataFrame in SideInputs (zip column, percents) is prepared on the fly."""
    speakers, _ = make_speakers(census, seed=8, planted=majority_black)
    raw = census.copy()
    raw[SHARE_COLS] = raw[SHARE_COLS] * 100
    a = GeodemographicDiscoverer().fit(speakers, SideInputs(census=raw))
    b = GeodemographicDiscoverer().fit(speakers, side_of(census))
    assert a.assignment.equals(b.assignment)
    assert a.details["share_columns"] == {c: "percent" for c in SHARE_COLS}


# ---------------------------------------------------------------- census reader

def test_read_census_keeps_leading_zeros(tmp_path, census):
    path = tmp_path / "census.csv"
    census.to_csv(path, index=False)
    got = read_census(str(path))
    assert got.index.name == "zip" and "02139" in got.index and "00501" in got.index
    assert list(got.columns) == SHARE_COLS + ["median_income"]
    assert all(got.dtypes == float)
    assert got.attrs["share_columns"] == {c: "fraction" for c in SHARE_COLS}
    assert got.loc["02139", "pct_white"] == census.set_index("zip").loc["02139", "pct_white"]


def test_read_census_formats(tmp_path, census):
    ref = read_census(_write_csv(tmp_path / "c.csv", census))
    gz = tmp_path / "c.tsv.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        census.to_csv(fh, sep="\t", index=False)
    pq = tmp_path / "c.parquet"
    census.to_parquet(pq, index=False)
    jl = tmp_path / "c.jsonl"
    census.to_json(jl, orient="records", lines=True)
    for p in (gz, pq, jl):
        got = read_census(str(p))
        pd.testing.assert_frame_equal(got, ref, check_exact=False)
        assert got.attrs["share_columns"] == ref.attrs["share_columns"]


def test_read_census_integer_and_zip4(write):
    path = write("c.csv", "zip,pct_black,median_income\n2139,0.2,50000\n02140-1234,0.7,40000\n501,0.1,30000\n")
    got = read_census(path)
    assert list(got.index) == ["02139", "02140", "00501"]
    # A zip column that a spreadsheet stored as numbers (Parquet/JSONL ints).
    got2 = prepare_census(pd.DataFrame({"zip": [2139, 501], "median_income": [1.0, 2.0]}))
    assert list(got2.index) == ["02139", "00501"]


def test_percents_detected_and_equal_fractions(tmp_path, census):
    pct = census.copy()
    pct[SHARE_COLS] = (pct[SHARE_COLS] * 100).round(1)
    a = read_census(_write_csv(tmp_path / "frac.csv", census))
    b = read_census(_write_csv(tmp_path / "pct.csv", pct))
    assert b.attrs["share_columns"] == {c: "percent" for c in SHARE_COLS}
    assert a.attrs["share_columns"] == {c: "fraction" for c in SHARE_COLS}
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12)
    speakers, _ = make_speakers(census, planted=majority_black)
    fa = GeodemographicDiscoverer().fit(speakers, SideInputs(census=a))
    fb = GeodemographicDiscoverer().fit(speakers, SideInputs(census=b))
    assert fa.assignment.equals(fb.assignment) and fa.details["rule"] == fb.details["rule"]
    assert fb.details["share_columns"] == {c: "percent" for c in SHARE_COLS}


def test_share_detection_rules(write):
    path = write("c.csv", "zip,black_share,frac_x,urban,median_age,median_income,poverty\n"
                          "00001,40,0.2,1,35,50000,12.5%\n00002,60,0.3,0,41,\"62,000\",8%\n"
                          "00003,,0.9,1,38,N/A,30%\n")
    # "00001" is a valid 5-digit string; only "00000" is a placeholder.
    got = read_census(path)
    assert got.attrs["share_columns"] == {"black_share": "percent", "frac_x": "fraction", "urban": "fraction",
                                          "poverty": "percent"}
    assert got["black_share"].tolist()[:2] == [0.4, 0.6] and np.isnan(got["black_share"].iloc[2])
    assert got["median_income"].tolist()[:2] == [50000.0, 62000.0] and np.isnan(got["median_income"].iloc[2])
    assert got["poverty"].tolist() == pytest.approx([0.125, 0.08, 0.30])
    assert got["median_age"].tolist() == [35.0, 41.0, 38.0]  # in [0, 100] but not a share


def test_text_columns_dropped_with_note(write):
    path = write("c.csv", "zip,state,county_fips,pct_black\n02139,MA,25017,0.1\n02140,MA,25017,0.6\n")
    got = read_census(path)
    assert list(got.columns) == ["pct_black"]
    notes = " ".join(got.attrs["notes"])
    assert "'state'" in notes and "'county_fips'" in notes


def _one_line_error(path, match):
    with pytest.raises(UserInputError) as info:
        read_census(path)
    msg = str(info.value)
    assert "\n" not in msg and path in msg
    for m in match:
        assert m in msg, msg
    return msg


def test_error_no_zip_column(write):
    path = write("c.csv", "zipcode,pct_black\n02139,0.1\n")
    _one_line_error(path, ["no zip column", "zipcode, pct_black", "rename", "'zip'"])


def test_error_duplicate_zip(write):
    path = write("c.csv", "zip,pct_black\n02139,0.1\n02140,0.2\n2139,0.3\n")
    _one_line_error(path, ["line 4", "'02139'", "appears twice", "line 2"])


def test_error_share_above_100(write):
    path = write("c.csv", "zip,pct_black\n02139,10\n02140,130\n")
    _one_line_error(path, ["line 3", "'pct_black'", "130", "0-100"])


def test_error_negative_share(write):
    path = write("c.csv", "zip,pct_black\n02139,0.1\n02140,-0.2\n")
    _one_line_error(path, ["line 3", "'pct_black'"])


def test_error_junk_in_numeric_column(write):
    path = write("c.csv", "zip,median_income\n02139,50000\n02140,60000\n02141,lots\n")
    _one_line_error(path, ["line 4", "'median_income'", "'lots'", "not a number"])


def test_error_invalid_zip(write):
    path = write("c.csv", "zip,pct_black\n02139,0.1\nabc,0.2\n")
    _one_line_error(path, ["line 3", "'abc'", "zip"])


def test_error_no_numeric_columns(write):
    path = write("c.csv", "zip,state\n02139,MA\n")
    _one_line_error(path, ["no numeric"])


def _write_csv(path, frame) -> str:
    frame.to_csv(path, index=False)
    return str(path)
