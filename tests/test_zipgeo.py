"""Zip-centroid coordinates for speakers without lat/lon (fairaudit.io.zipgeo)."""
import numpy as np
import pandas as pd
import pytest

from fairaudit.io.zipgeo import fill_coordinates_from_zip, zip_centroids


def test_fills_missing_coordinates_from_zip_centroid():
    speakers = pd.DataFrame({"speaker_id": ["a"], "zip": ["02139"]})
    out, info = fill_coordinates_from_zip(speakers)
    assert info == {"filled": 1, "zip_unknown": 0}
    # zipcodes lists Cambridge, MA 02139 at 42.3647, -71.1042
    assert out.loc[0, "lat"] == pytest.approx(42.36, abs=0.02)
    assert out.loc[0, "lon"] == pytest.approx(-71.10, abs=0.02)
    assert bool(out.loc[0, "coords_approx"]) is True
    assert "lat" not in speakers.columns  # input untouched


def test_existing_coordinates_are_never_overwritten():
    speakers = pd.DataFrame({
        "speaker_id": ["has", "half", "none"],
        "lat": [40.0, np.nan, None], "lon": [-100.0, -90.0, None],
        "zip": ["02139", "10001", "10001"],
    }).set_index("speaker_id")
    out, info = fill_coordinates_from_zip(speakers)
    assert out.loc["has", "lat"] == 40.0 and out.loc["has", "lon"] == -100.0
    assert not out.loc["has", "coords_approx"]
    # a half-missing pair is replaced whole (lat and lon from one source)
    assert out.loc["half", "coords_approx"] and out.loc["half", "lon"] != -90.0
    assert out.loc["none", "coords_approx"]
    assert info == {"filled": 2, "zip_unknown": 0}
    assert list(out.index) == ["has", "half", "none"]


def test_unknown_and_invalid_zips_are_counted_missing_zip_is_not():
    speakers = pd.DataFrame({"speaker_id": list("abcde"),
                             "zip": ["99999", "abc", None, "", "00000"]})
    out, info = fill_coordinates_from_zip(speakers)
    assert info == {"filled": 0, "zip_unknown": 3}  # 99999, abc, 00000; None/"" have nothing to look up
    assert out["lat"].isna().all() and not out["coords_approx"].any()


def test_leading_zeros_kept_and_zip_plus4_and_numbers():
    speakers = pd.DataFrame({"speaker_id": ["a", "b", "c"], "zip": ["02139-4307", "00601", "10001"]})
    out, info = fill_coordinates_from_zip(speakers)
    assert info["filled"] == 3
    assert out["zip"].tolist() == ["02139-4307", "00601", "10001"]  # the zip column is left as given
    assert out.loc[1, "lat"] == pytest.approx(zip_centroids()["00601"][0])
    # a spreadsheet that lost the leading zero
    out2, _ = fill_coordinates_from_zip(pd.DataFrame({"speaker_id": ["a"], "zip": [2139]}))
    assert out2.loc[0, "lat"] == pytest.approx(42.36, abs=0.02)


def test_without_zip_column_nothing_happens():
    speakers = pd.DataFrame({"speaker_id": ["a"], "lat": [1.0], "lon": [2.0]})
    out, info = fill_coordinates_from_zip(speakers)
    assert info == {"filled": 0, "zip_unknown": 0}
    assert out["coords_approx"].tolist() == [False]


def test_many_speakers_all_filled():
    zips = list(zip_centroids())[:20000]
    speakers = pd.DataFrame({"speaker_id": range(len(zips)), "zip": zips})
    out, info = fill_coordinates_from_zip(speakers)
    assert info["filled"] == len(zips) and out["coords_approx"].all()
