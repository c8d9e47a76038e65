"""What is known of each cluster's members: the attribute mix and the main region, for the
automatic discoverer's labels ("cluster C03 (212 speakers): 61% female, mostly Georgia")."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..io.places import nearest_places, region_label
from .base import non_attribute_columns

#: reverse geocoding of members' lat/lon (cluster descriptions): at most this many speakers
GEOCODE_MAX = 2_000
#: attribute columns with more distinct values than this are not described
MAX_CATEGORIES = 30
TOP_VALUES = 5


def describable(col: Any, values: pd.Series, excluded: frozenset[str]) -> bool:
    """Categorical attribute columns: not ids/counts/discoverer inputs, not continuous numbers."""
    name = str(col)
    if name in excluded or name.endswith("_id") or name.startswith("_"):
        return False
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return False  # continuous: income, age in years as float, ...
    return True


def describe(speakers: pd.DataFrame, members: np.ndarray, codes: np.ndarray, cohort_ids: list[str],
             centroid_norms: list[float], seed: int) -> tuple[dict[str, str], dict[str, dict]]:
    """(label per cohort id, cohort_details per cohort id) of clusters ``codes`` of the
    speakers at table positions ``members``."""
    excluded = non_attribute_columns()
    cols = [col for col in speakers.columns if describable(col, speakers[col], excluded)]
    geo = [col for col in ("lat", "lon") if col in speakers.columns]
    k = len(cohort_ids)
    sizes = np.bincount(codes, minlength=k)
    sub = speakers.iloc[members]
    details = {cid: {"size": int(sizes[i]), "attribute_mix": {}, "centroid_norm": round(centroid_norms[i], 6)}
               for i, cid in enumerate(cohort_ids)}
    for col in cols:  # loop over attribute columns; each is one vectorised group-by
        if speakers[col].nunique(dropna=True) > MAX_CATEGORIES:
            continue  # ids, free text, fine-grained numbers: no useful "mix"
        values = sub[col].astype("string").str.strip().fillna("(missing)").replace("", "(missing)")
        counts = pd.crosstab(codes, values.to_numpy(dtype=object))
        shares = counts.div(counts.sum(axis=1), axis=0)
        for i, row in shares.iterrows():  # loop over clusters
            top = row[row > 0].sort_values(ascending=False, kind="stable").head(TOP_VALUES)
            details[cohort_ids[i]]["attribute_mix"][str(col)] = {str(v): round(float(s), 4) for v, s in top.items()}
    if len(geo) == 2:
        for i, (region, share) in main_regions(sub["lat"], sub["lon"], codes, k, seed).items():
            details[cohort_ids[i]]["main_region"] = region
            details[cohort_ids[i]]["main_region_share"] = round(share, 4)
    labels = {cid: label(cid, details[cid]) for cid in cohort_ids}
    return labels, details


def label(cid: str, d: dict) -> str:
    """'cluster C03 (212 speakers): 61% female, 45-64 most common, mostly Georgia'."""
    parts = []
    for col, mix in list(d["attribute_mix"].items())[:3]:
        value, share = next(iter(mix.items()))
        if value == "(missing)":
            continue
        plain = value.lower() not in ("true", "false", "yes", "no", "y", "n") and not _is_number(value)
        shown = value if plain else f"{col}={value}"
        parts.append(f"{round(100 * share)}% {shown}" if share >= 0.5 else f"{shown} most common")
    if "main_region" in d:
        parts.append(f"mostly {d['main_region']}" if d["main_region_share"] >= 0.5
                     else f"most often {d['main_region']} ({round(100 * d['main_region_share'])}%)")
    head = f"cluster {cid} ({d['size']} speakers)"
    return f"{head}: {', '.join(parts)}" if parts else head


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def main_regions(lat: pd.Series, lon: pd.Series, codes: np.ndarray, k: int,
                 seed: int) -> dict[int, tuple[str, float]]:
    """Most common US state (or 'region (country)') of each cluster's members, from lat/lon.

    One offline lookup (:func:`fairaudit.io.places.nearest_places`) for all clusters, on at
    most GEOCODE_MAX members (an equal quota per cluster, sampled deterministically).
    Returns {} when no member has usable coordinates or no place is known.
    """
    la = pd.to_numeric(lat, errors="coerce").to_numpy(dtype=float)
    lo = pd.to_numeric(lon, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(la) & np.isfinite(lo) & (np.abs(la) <= 90) & (np.abs(lo) <= 180) & ~((la == 0) & (lo == 0))
    valid = np.flatnonzero(ok)
    if len(valid) == 0:
        return {}
    quota = max(1, GEOCODE_MAX // k)
    perm = valid[np.random.default_rng(seed).permutation(len(valid))]
    rank = pd.Series(codes[perm]).groupby(codes[perm]).cumcount().to_numpy()
    chosen = perm[rank < quota]
    found = nearest_places(list(zip(la[chosen].tolist(), lo[chosen].tolist())))
    region = np.array([region_label(hit) for hit in found], dtype=object)
    frame = pd.DataFrame({"code": codes[chosen], "region": region})
    frame = frame[frame["region"].str.strip().str.len() > 0]
    if frame.empty:
        return {}
    counts = frame.groupby(["code", "region"]).size().reset_index(name="n")
    counts = counts.sort_values(["code", "n", "region"], ascending=[True, False, True], kind="stable")
    totals = counts.groupby("code")["n"].sum()
    top = counts.drop_duplicates("code")
    return {int(r.code): (str(r.region), float(r.n / totals[r.code])) for r in top.itertuples()}
