"""Build the geodemographic census table from the American Community Survey (ACS).

Source: the ACS 5-year estimates for ZIP Code Tabulation Areas (ZCTAs), fetched from the
Census Bureau's data API (``https://api.census.gov/data/<year>/acs/acs5``) through the
``census`` PyPI package.  A ZCTA is the Census Bureau's area approximation of a USPS zip
code and carries the same 5-digit code; the geodemographic discoverer joins it to speaker
zip codes.

Variables (ACS detailed tables; ``E`` = estimate):

* ``B03002`` Hispanic or Latino origin by race:
  ``B03002_001E`` total population, ``B03002_003E`` white alone, not Hispanic or Latino,
  ``B03002_004E`` Black or African American alone, not Hispanic or Latino,
  ``B03002_006E`` Asian alone, not Hispanic or Latino, ``B03002_012E`` Hispanic or Latino
  (of any race).
* ``B19013_001E`` median household income in the past 12 months (dollars of the survey's
  last year).  The ACS top-codes it: "250,000+" comes as 250001.

Output (one row per ZCTA; :func:`fairaudit.io.census.read_census` reads it)::

    zip,pct_white,pct_black,pct_hispanic,pct_asian,median_income

``pct_*`` are fractions (0-1) of the ZCTA's total population (``B03002_001E``); the four
groups need not sum to 1 (other races and multiracial people are not listed).  Missing
values:

* ACS annotation sentinels (negative values such as -666666666 "estimate not computable",
  -999999999, -888888888, -222222222) and empty cells -> missing;
* a ZCTA with total population 0 (or missing) has missing shares;
* a share is capped to [0, 1] only when margin rounding pushes it a hair outside
  (above 1 + 1e-9 it is an error in the data and becomes missing).

State filter (``states=["CA", "NY"]``)
    Since the 2020 geography, ZCTAs are not nested in states (a ZCTA may cross a state
    line) and the API no longer answers ``in=state:..`` for ZCTAs; the ``census``
    package's ``state_zipcode`` sends a ``regionin`` parameter that its ``query`` drops.
    So all ZCTAs are fetched (one request, about 34,000 rows) and filtered here by the
    state that the offline ``zipcodes`` package gives for the zip code.  A ZCTA that
    ``zipcodes`` does not list gets the most common state of the listed zips sharing its
    3-digit prefix (USPS sectional centre), e.g. ``021`` -> MA; with no such prefix it is
    left out and counted (``info["state_unknown"]``).

Zip filter (``zips=[...]``)
    The named ZCTAs are requested by value (``for=zip code tabulation area:02139,10001``),
    ``ZIP_CHUNK`` per request.  Zips the ACS does not list (PO-box-only zips have no
    ZCTA) are counted in ``info["zips_not_found"]``.

API key
    Every request needs a key (free: https://api.census.gov/data/key_signup.html), read
    from the environment variable ``CENSUS_API_KEY`` unless passed.

Testing
    ``session`` is any object with ``get(url, params=...)`` returning an object with
    ``status_code``, ``json()`` and ``text`` (a ``requests.Session`` in real use), so
    tests replay recorded responses without a network.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .errors import UserInputError
from .io.census import normalize_zip

TOTAL = "B03002_001E"
WHITE = "B03002_003E"
BLACK = "B03002_004E"
ASIAN = "B03002_006E"
HISPANIC = "B03002_012E"
INCOME = "B19013_001E"
FIELDS = ("NAME", TOTAL, WHITE, BLACK, ASIAN, HISPANIC, INCOME)
SHARES = {"pct_white": WHITE, "pct_black": BLACK, "pct_hispanic": HISPANIC, "pct_asian": ASIAN}
COLUMNS = ("zip", *SHARES, "median_income")
ZCTA = "zip code tabulation area"
#: ACS 5-year release used by default (2020-2024 estimates, released December 2025).
DEFAULT_YEAR = 2024
#: ZCTAs per request when zips are named (keeps the URL well under the API's limit).
ZIP_CHUNK = 200
ENV_KEY = "CENSUS_API_KEY"
KEY_HINT = f"get a free key at https://api.census.gov/data/key_signup.html and set {ENV_KEY}"
INSTALL_HINT = "pip install census"

#: USPS state and territory codes accepted by ``states``.
STATE_CODES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR AS GU MP VI".split())


@dataclass
class AcsTable:
    """The census table (``frame``: columns :data:`COLUMNS`, one row per zip) and what was done."""

    frame: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def census_client(key: str | None = None, year: int = DEFAULT_YEAR, session: Any = None):
    """A ``census.Census`` client; ``key`` defaults to ``$CENSUS_API_KEY``.

    Raises UserInputError (one line) when the key or the ``census`` package is missing.
    """
    key = key if key is not None else os.environ.get(ENV_KEY, "").strip()
    if not key:
        raise UserInputError(f"no Census API key: {ENV_KEY} is not set", hint=KEY_HINT)
    try:
        from census import Census
    except ImportError:
        raise UserInputError("the census package is not installed", hint=INSTALL_HINT) from None
    return Census(key, year=year, session=session)


def zcta_requests(zips: Iterable[str] | None = None) -> list[dict[str, str]]:
    """The ``geo`` argument of each API request: all ZCTAs, or the named ones in chunks."""
    if zips is None:
        return [{"for": f"{ZCTA}:*"}]
    zips = sorted(set(zips))
    return [{"for": f"{ZCTA}:{','.join(zips[i:i + ZIP_CHUNK])}"} for i in range(0, len(zips), ZIP_CHUNK)]


def fetch_acs(*, zips: Iterable | None = None, states: Iterable[str] | None = None, year: int = DEFAULT_YEAR,
              key: str | None = None, session: Any = None, client: Any = None) -> AcsTable:
    """Fetch the ACS 5-year ZCTA variables and assemble the census table.

    Give ``zips`` (zip codes, normalised with :func:`normalize_zip`; invalid ones are an
    error) or ``states`` (USPS codes, e.g. ``["CA", "NY"]``) or neither (every ZCTA).
    ``client`` (a ``census.Census``) or ``session`` (requests-like) may be injected;
    otherwise a client is built from ``key`` / ``$CENSUS_API_KEY``.
    ``info``: ``year``, ``requests`` (count), ``rows`` (ZCTAs received), ``zips``
    (rows written) and the counts documented in :func:`assemble_table`, plus
    ``zips_not_found`` / ``state_unknown`` for the filters.
    """
    if zips is not None and states is not None:
        raise UserInputError("give zip codes or states, not both", hint="pass --zips FILE or --states CA,NY")
    wanted = _check_zips(zips) if zips is not None else None
    state_set = parse_states(states) if states is not None else None
    if client is None:
        client = census_client(key, year, session)
    rows: list[dict] = []
    geos = zcta_requests(wanted)
    for geo in geos:
        rows.extend(_query(client, geo, year))
    table = assemble_table(rows)
    info = {"year": year, "requests": len(geos), **table.info}
    frame = table.frame
    if wanted is not None:
        found = set(frame["zip"])
        missing = [z for z in wanted if z not in found]
        info["zips_not_found"] = len(missing)
        info["zips_not_found_examples"] = missing[:10]
        frame = frame[frame["zip"].isin(set(wanted))]
    if state_set is not None:
        state = zip_states(frame["zip"])
        info["state_unknown"] = int(state.isna().sum())
        frame = frame[state.isin(state_set).to_numpy()]
        info["states"] = sorted(state_set)
    frame = frame.sort_values("zip").reset_index(drop=True)
    info["zips"] = int(len(frame))
    return AcsTable(frame, info)


def _query(client: Any, geo: dict, year: int) -> list[dict]:
    try:
        from census import CensusException
        from census.core import APIKeyError
    except ImportError:  # an injected fake client without the package installed
        CensusException = APIKeyError = ()  # noqa: N806
    try:
        import requests
        net_errors: tuple = (requests.RequestException,)
    except ImportError:
        net_errors = ()
    try:
        return list(client.acs5.get(list(FIELDS), geo, year=year))
    except APIKeyError as exc:  # type: ignore[misc]
        raise UserInputError(f"the Census API rejected the key in {ENV_KEY}", hint=KEY_HINT) from exc
    except CensusException as exc:  # type: ignore[misc]
        text = " ".join(str(exc).split())[:200]
        raise UserInputError(f"the Census API refused the request: {text}",
                             hint=f"check --year (ACS 5-year ZCTA tables exist for 2011-{DEFAULT_YEAR})") from exc
    except net_errors as exc:
        raise UserInputError(f"cannot reach api.census.gov: {type(exc).__name__}",
                             hint="check the network connection (or a proxy) and retry") from exc
    except ValueError as exc:  # a non-JSON body: the API answers HTML/text for a bad key or request
        raise UserInputError(f"the Census API answered something that is not JSON ({str(exc)[:80]})",
                             hint=f"check {ENV_KEY} and --year") from exc


def assemble_table(rows: list[dict]) -> AcsTable:
    """ACS rows (dicts keyed by variable, as ``census`` returns them) -> the census table.

    Values may be numbers or strings (the API's JSON holds strings); negative values
    (ACS annotation sentinels) and empty cells are missing.  ``info``: ``rows``,
    ``zero_population`` (ZCTAs with total 0 or missing: shares missing),
    ``income_missing``, ``sentinel_values`` (cells that were sentinels), ``invalid_zip``
    (rows dropped because the ZCTA code is not a 5-digit zip), ``duplicate_zip`` (later
    repeats dropped).
    """
    info: dict[str, Any] = {"rows": len(rows)}
    if not rows:
        return AcsTable(pd.DataFrame({c: pd.Series(dtype="string" if c == "zip" else float) for c in COLUMNS}),
                        info | {"zero_population": 0, "income_missing": 0, "sentinel_values": 0,
                                "invalid_zip": 0, "duplicate_zip": 0})
    raw = pd.DataFrame.from_records(rows)
    need = [ZCTA, TOTAL, *SHARES.values(), INCOME]
    absent = [c for c in need if c not in raw.columns]
    if absent:
        raise UserInputError(f"the Census API answer lacks {', '.join(absent)}",
                             hint="the ACS variable names may have changed for this --year")
    zips = normalize_zip(raw[ZCTA].astype("string"))
    sentinels = 0
    values: dict[str, np.ndarray] = {}
    for col in (TOTAL, *SHARES.values(), INCOME):
        num = pd.to_numeric(raw[col].astype("string").str.strip().replace("", pd.NA), errors="coerce")
        v = num.to_numpy(dtype=float, na_value=np.nan)
        neg = v < 0
        sentinels += int(neg.sum())
        values[col] = np.where(neg, np.nan, v)
    total = values[TOTAL]
    zero = ~(total > 0)
    out = {"zip": zips}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, col in SHARES.items():
            share = np.where(zero, np.nan, values[col] / total)
            share = np.where(share > 1 + 1e-9, np.nan, np.minimum(share, 1.0))
            out[name] = share
    out["median_income"] = values[INCOME]
    frame = pd.DataFrame(out)
    valid = frame["zip"].notna().to_numpy()
    dup = frame["zip"].duplicated(keep="first").to_numpy() & valid
    frame = frame[valid & ~dup].reset_index(drop=True)
    info.update({"zero_population": int((zero & valid & ~dup).sum()),
                 "income_missing": int(frame["median_income"].isna().sum()),
                 "sentinel_values": sentinels, "invalid_zip": int((~valid).sum()),
                 "duplicate_zip": int(dup.sum())})
    return AcsTable(frame, info)


def parse_states(states: Iterable[str] | str) -> set[str]:
    """USPS codes from "CA,NY" or an iterable; an unknown code is a UserInputError."""
    items = states.split(",") if isinstance(states, str) else list(states)
    codes = {s.strip().upper() for s in items if s and s.strip()}
    if not codes:
        raise UserInputError("no state given", hint="pass --states CA,NY (USPS two-letter codes)")
    bad = sorted(codes - STATE_CODES)
    if bad:
        raise UserInputError(f"unknown state code(s): {', '.join(bad)}",
                             hint="use USPS two-letter codes such as CA, NY, DC, PR")
    return codes


def _check_zips(zips: Iterable) -> list[str]:
    raw = pd.Series(list(zips), dtype=object)
    norm = normalize_zip(raw)
    bad = norm.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserInputError(f"{raw.iloc[i]!r} is not a US zip code ({int(bad.sum())} invalid)",
                             hint="one 5-digit zip code per line")
    if len(norm) == 0:
        raise UserInputError("no zip codes given", hint="one 5-digit zip code per line")
    return sorted(set(norm.tolist()))


def zip_states(zips: pd.Series) -> pd.Series:
    """USPS state of each zip (``zipcodes`` data; else the 3-digit prefix's commonest state)."""
    by_zip, by_prefix = _state_tables()
    zips = pd.Series(zips, dtype="string").reset_index(drop=True)
    state = zips.map(by_zip)
    return state.fillna(zips.str[:3].map(by_prefix)).astype("string")


_STATE_TABLES: tuple[pd.Series, pd.Series] | None = None


def _state_tables() -> tuple[pd.Series, pd.Series]:
    global _STATE_TABLES
    if _STATE_TABLES is None:
        try:
            import zipcodes
        except ImportError:
            raise UserInputError("the zipcodes package is not installed", hint="pip install zipcodes") from None
        recs = zipcodes.list_all()
        by_zip = pd.Series({str(r["zip_code"]): str(r["state"]) for r in recs if r.get("state")}, dtype="string")
        prefix_counts: dict[str, Counter] = {}
        for z, s in by_zip.items():
            prefix_counts.setdefault(z[:3], Counter())[s] += 1
        by_prefix = pd.Series({p: c.most_common(1)[0][0] for p, c in prefix_counts.items()}, dtype="string")
        _STATE_TABLES = (by_zip, by_prefix)
    return _STATE_TABLES


def write_census(frame: pd.DataFrame, path: str) -> None:
    """Write the census table as CSV (zips as text, leading zeros kept; missing = empty).

    Shares are rounded to 6 decimals, incomes to whole dollars.
    """
    out = frame.copy()
    out[list(SHARES)] = out[list(SHARES)].round(6)
    out["median_income"] = out["median_income"].round().astype("Int64")
    try:
        out.to_csv(path, index=False)
    except OSError as exc:
        raise UserInputError(f"cannot write: {exc.strerror}", path=path) from exc
