"""Approximate speaker coordinates from zip codes (offline, from the ``zipcodes`` package).

A speaker with a zip code but no latitude/longitude gets the centroid of its zip code, as
listed in the data file that ships inside the ``zipcodes`` PyPI package (about 42,000 US
zip codes, with ``lat``/``long`` in decimal degrees).  No network is used.

A zip centroid places a speaker to within a few kilometres in a city and a few tens of
kilometres in rural areas: good enough for the geographic discoverer's regions (tens to
hundreds of kilometres wide), but the filled rows are marked (``coords_approx``) and
counted so that the report can say how many speakers carry approximate coordinates.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from .census import normalize_zip


@lru_cache(maxsize=1)
def zip_centroids() -> dict[str, tuple[float, float]]:
    """5-digit zip -> (lat, lon) in degrees, for every zip the ``zipcodes`` package lists.

    Built once per process (about 0.2 s); zips without coordinates are left out.
    """
    import zipcodes  # core dependency; imported here so that importing fairaudit stays fast

    out: dict[str, tuple[float, float]] = {}
    for rec in zipcodes.list_all():
        try:
            lat, lon = float(rec["lat"]), float(rec["long"])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(lat) and np.isfinite(lon) and not (lat == 0 and lon == 0):
            out[str(rec["zip_code"])] = (lat, lon)
    return out


@lru_cache(maxsize=1)
def _centroid_series() -> tuple[pd.Series, pd.Series]:
    table = zip_centroids()
    index = pd.Index(list(table), dtype="string")
    coords = np.array(list(table.values()), dtype=float).reshape(-1, 2)
    return pd.Series(coords[:, 0], index=index), pd.Series(coords[:, 1], index=index)


def fill_coordinates_from_zip(speakers: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Give speakers with a zip but no lat/lon the zip's centroid.

    ``speakers``: one row per speaker (``speaker_id`` as a column or as the index, it is
    not touched), optional ``lat``/``lon`` (degrees) and ``zip`` columns.  Returns a new
    frame (the input is untouched) and ``info``:

    * ``filled`` (count): speakers that got their zip's centroid; their new boolean
      column ``coords_approx`` is True (False everywhere else);
    * ``zip_unknown`` (count): speakers without coordinates whose zip is invalid or not
      in the zip table: they stay without coordinates.

    Existing coordinates are never overwritten: a speaker is filled only when its
    ``lat`` or ``lon`` is missing (NaN/empty), and then both are replaced together.
    Zips are read with :func:`fairaudit.io.census.normalize_zip` (leading zeros kept,
    ZIP+4 cut to 5 digits).  Without a ``zip`` column nothing is filled.
    """
    out = speakers.copy()
    for col in ("lat", "lon"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float) if col in out.columns else np.nan
    need = (out["lat"].isna() | out["lon"].isna()).to_numpy()
    if "zip" not in out.columns or not need.any():
        out["coords_approx"] = False
        return out, {"filled": 0, "zip_unknown": 0}

    zips = normalize_zip(out["zip"].reset_index(drop=True))
    lat_of, lon_of = _centroid_series()
    # One hash lookup per row (pandas .map with a Series), no Python loop.
    zip_lat = zips.map(lat_of).to_numpy(dtype=float, na_value=np.nan)
    zip_lon = zips.map(lon_of).to_numpy(dtype=float, na_value=np.nan)
    has = ~np.isnan(zip_lat)
    fill = need & has
    lat, lon = out["lat"].to_numpy(dtype=float, copy=True), out["lon"].to_numpy(dtype=float, copy=True)
    lat[fill], lon[fill] = zip_lat[fill], zip_lon[fill]
    out["lat"], out["lon"] = lat, lon
    out["coords_approx"] = fill
    # A speaker with no usable zip at all (missing/empty) is not "unknown": it has nothing to look up.
    given = out["zip"].astype("string").str.strip().fillna("").ne("").to_numpy()
    return out, {"filled": int(fill.sum()), "zip_unknown": int((need & given & ~has).sum())}
