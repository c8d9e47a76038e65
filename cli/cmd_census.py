"""`fairaudit census`: the geodemographic census table from the ACS 5-year ZCTA estimates."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from fairaudit.errors import UserInputError

from . import common as c
from .guards import checked
from .app import app


def _read_zip_list(path: str) -> list[str]:
    """Zips from a table with a `zip` column (e.g. the speaker table) or one zip per line."""
    from fairaudit.io.common import TABLE_FORMATS, detect_format, read_lines, require_file

    require_file(path, "zip list")
    try:
        fmt = detect_format(path, None)
    except UserInputError:
        fmt = None
    if fmt in TABLE_FORMATS and not (fmt == "csv" and "," not in (read_lines(path) or [""])[0]):
        from fairaudit.io.readers import _read_table

        frame, _ = _read_table(path, fmt, ["zip"], flag=None)
        if "zip" not in frame.columns:
            raise UserInputError(f"no zip column (columns: {', '.join(map(str, frame.columns))})", path=path,
                                 hint="name the column 'zip', or give one zip code per line")
        values = frame["zip"].dropna().astype(str).str.strip()
        return [v for v in values if v]
    lines = [ln.strip() for ln in read_lines(path)]
    return [ln for ln in lines if ln and ln.lower() != "zip"]


@app.command("census")
@c.user_errors
@checked(out="file")
def census(
    zips: Annotated[Optional[str], typer.Option("--zips", help="File of zip codes: one per line, or a table with a 'zip' column (e.g. the speaker table).")] = None,
    states: Annotated[Optional[str], typer.Option("--states", help="Comma-separated USPS state codes, e.g. CA,NY (ZCTAs are assigned to states by zip code).")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output census table (CSV).")] = "census.csv",
    year: Annotated[int, typer.Option("--year", help="ACS 5-year release (last year of the 5-year span).")] = 2024,
    quiet: c.Quiet = False,
):
    """Build the census table (zip, pct_white, pct_black, pct_hispanic, pct_asian, median_income)
    from the American Community Survey 5-year ZCTA estimates. Needs CENSUS_API_KEY."""
    from fairaudit import acs

    if zips and states:
        raise UserInputError("--zips and --states exclude each other", hint="pass one of them")
    if not os.environ.get(acs.ENV_KEY, "").strip():
        raise UserInputError(f"no Census API key: {acs.ENV_KEY} is not set", hint=acs.KEY_HINT)
    zip_list = _read_zip_list(zips) if zips else None
    if zip_list is not None and not zip_list:
        raise UserInputError("no zip codes in the file", path=zips, hint="one 5-digit zip code per line")
    if not quiet:
        what = f"{len(set(zip_list))} zip codes" if zip_list else (f"states {states}" if states else "all ZCTAs")
        c.err_console.print(f"fetching ACS {year} 5-year estimates for {what} from api.census.gov ...",
                            markup=False)
    table = acs.fetch_acs(zips=zip_list, states=states, year=year)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise UserInputError("output folder does not exist", path=out)
    acs.write_census(table.frame, out)
    if not quiet:
        info = table.info
        notes = [f"{info['zips']} zip codes written to {out}"]
        for key, label in (("zero_population", "with population 0 (shares empty)"),
                           ("income_missing", "without median income"),
                           ("zips_not_found", "requested zips without a ZCTA"),
                           ("state_unknown", "ZCTAs with no known state (left out)")):
            if info.get(key):
                notes.append(f"{info[key]} {label}")
        c.out_console.print("census: " + "; ".join(notes), markup=False)
