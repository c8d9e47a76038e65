"""ACS census table (fairaudit.acs): request building and table assembly on recorded answers.

No test touches the network: the `census` client gets a fake session that replays the JSON
files under tests/data/acs/ and records each request.
"""
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from fairaudit import acs
from fairaudit.errors import UserInputError
from fairaudit.io.census import read_census

DATA = pathlib.Path(__file__).parent / "data" / "acs"
KEY = "test-key-not-real"


class _Response:
    def __init__(self, status: int, body):
        self.status_code = status
        self._body = body
        self.text = body if isinstance(body, str) else json.dumps(body)

    def json(self):
        if isinstance(self._body, str):
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        return json.loads(json.dumps(self._body))  # a fresh copy: the client pops the header


class FakeSession:
    """requests.Session stand-in: answers from recorded files, remembers every request."""

    def __init__(self, answers: dict[str, object] | None = None):
        self.headers: dict[str, str] = {}
        self.requests: list[tuple[str, dict]] = []
        self.answers = answers or {"*": json.loads((DATA / "zcta_all.json").read_text())}

    def get(self, url, params=None):
        self.requests.append((url, dict(params or {})))
        if "/variables/" in url:
            var = url.rsplit("/", 1)[-1].removesuffix(".json")
            if var.startswith("B"):
                return _Response(200, json.loads((DATA / "variable_int.json").read_text()))
            return _Response(404, "unknown variable")
        which = params["for"].split(":", 1)[1]
        body = self.answers.get(which, self.answers.get("default"))
        if body is None:
            return _Response(204, "")
        return _Response(200, body) if not isinstance(body, tuple) else _Response(*body)

    def data_requests(self):
        return [(u, p) for u, p in self.requests if "/variables/" not in u]


def _fetch(session=None, **kw):
    import census  # a core dependency: a broken install fails here
    session = session or FakeSession()
    client = census.Census(KEY, year=2024, session=session)
    return acs.fetch_acs(client=client, year=2024, **kw), session


def test_request_for_all_zctas():
    table, session = _fetch()
    (url, params), = session.data_requests()
    assert url == "https://api.census.gov/data/2024/acs/acs5"
    assert params["for"] == "zip code tabulation area:*"
    assert "in" not in params  # ZCTAs are not nested in states since 2020
    assert params["key"] == KEY
    assert params["get"].split(",") == list(acs.FIELDS)
    for var in ("B03002_001E", "B03002_003E", "B03002_004E", "B03002_006E", "B03002_012E", "B19013_001E"):
        assert var in params["get"]
    assert table.info["requests"] == 1 and table.info["rows"] == 12


def test_table_assembly_shares_sentinels_zero_totals_leading_zeros():
    table, _ = _fetch()
    f = table.frame.set_index("zip")
    assert list(table.frame.columns) == list(acs.COLUMNS)
    assert f.index.tolist()[:3] == ["00601", "01002", "02139"]  # leading zeros kept, sorted
    row = f.loc["02139"]
    assert row["pct_white"] == pytest.approx(19832 / 38226)
    assert row["pct_black"] == pytest.approx(4263 / 38226)
    assert row["pct_asian"] == pytest.approx(8936 / 38226)
    assert row["pct_hispanic"] == pytest.approx(3312 / 38226)
    assert row["median_income"] == 118339
    assert f.loc["00601", "pct_hispanic"] == pytest.approx(16584 / 16721)
    # sentinels -> missing
    assert np.isnan(f.loc["02199", "median_income"]) and np.isnan(f.loc["90210", "median_income"])
    assert f.loc["02199", "pct_white"] == pytest.approx(819 / 1120)
    # zero population: shares missing, the zip is kept
    assert f.loc["10020", ["pct_white", "pct_black", "pct_hispanic", "pct_asian"]].isna().all()
    # null cell -> missing; the top code stays
    assert np.isnan(f.loc["99929", "median_income"])
    assert f.loc["06390", "median_income"] == 250001
    shares = f[["pct_white", "pct_black", "pct_hispanic", "pct_asian"]].to_numpy()
    assert np.nanmin(shares) >= 0 and np.nanmax(shares) <= 1
    assert table.info["zero_population"] == 1
    assert table.info["sentinel_values"] == 4  # three -666666666 / -999999999 incomes + 10020's
    assert table.info["income_missing"] == 5


def test_output_is_readable_by_read_census(tmp_path):
    table, _ = _fetch()
    out = tmp_path / "census.csv"
    acs.write_census(table.frame, str(out))
    text = out.read_text().splitlines()
    assert text[0] == "zip,pct_white,pct_black,pct_hispanic,pct_asian,median_income"
    assert text[1].startswith("00601,")
    census = read_census(str(out))
    assert census.index.name == "zip" and "00601" in census.index and "02139" in census.index
    assert set(census.attrs["share_columns"]) == {"pct_white", "pct_black", "pct_hispanic", "pct_asian"}
    assert all(v == "fraction" for v in census.attrs["share_columns"].values())
    assert census.loc["02139", "median_income"] == 118339
    assert census.loc["02139", "pct_black"] == pytest.approx(4263 / 38226, abs=1e-6)
    assert np.isnan(census.loc["10020", "pct_white"])


def test_state_filter_uses_zip_states_not_the_api():
    table, session = _fetch(states="MA,pr")
    (url, params), = session.data_requests()
    assert params["for"] == "zip code tabulation area:*" and "in" not in params and "regionin" not in params
    assert table.frame["zip"].tolist() == ["00601", "01002", "02139", "02199"]
    assert table.info["states"] == ["MA", "PR"]
    ny, _ = _fetch(states=["NY"])
    assert ny.frame["zip"].tolist() == ["06390", "10001", "10020", "11230"]  # 06390 (Fishers Island) is NY


def test_zip_states_prefix_fallback():
    s = acs.zip_states(pd.Series(["02139", "02198", "00000"]))
    assert s.iloc[0] == "MA"
    assert s.iloc[1] == "MA"  # not a listed zip: the 021 prefix's state
    assert pd.isna(s.iloc[2])


def test_named_zips_are_requested_by_value_and_counted_when_absent():
    session = FakeSession({"default": json.loads((DATA / "zcta_named.json").read_text())})
    table, session = _fetch(session, zips=["2139", "10020", "99999", "02139-4307"])
    (url, params), = session.data_requests()
    assert params["for"] == "zip code tabulation area:02139,10020,99999"
    assert table.frame["zip"].tolist() == ["02139", "10020"]
    assert table.info["zips_not_found"] == 1 and table.info["zips_not_found_examples"] == ["99999"]


def test_many_zips_are_chunked():
    zips = [f"{i:05d}" for i in range(1001, 1001 + acs.ZIP_CHUNK + 5)]
    geos = acs.zcta_requests(zips)
    assert len(geos) == 2
    assert geos[0]["for"].count(",") == acs.ZIP_CHUNK - 1
    assert geos[1]["for"].endswith(":" + ",".join(zips[acs.ZIP_CHUNK:]))


def test_user_errors(monkeypatch):
    monkeypatch.delenv(acs.ENV_KEY, raising=False)
    with pytest.raises(UserInputError, match="CENSUS_API_KEY is not set"):
        acs.fetch_acs(states="CA")
    with pytest.raises(UserInputError, match="unknown state code"):
        acs.fetch_acs(states="CA,XX", client=object())
    with pytest.raises(UserInputError, match="not a US zip code"):
        acs.fetch_acs(zips=["02139", "abc"], client=object())
    with pytest.raises(UserInputError, match="not both"):
        acs.fetch_acs(zips=["02139"], states="CA", client=object())


def test_api_refusal_is_one_line_user_error():
    session = FakeSession({"*": (400, "error: unknown variable 'B03002_999E'")})
    with pytest.raises(UserInputError, match="refused the request"):
        _fetch(session)


def test_bad_key_answer_is_a_user_error():
    session = FakeSession({"*": (200, "<html><title>Invalid Key</title></html>")})
    with pytest.raises(UserInputError, match="rejected the key"):
        _fetch(session)


def test_no_network_in_client_construction_or_fetch(monkeypatch):
    """With every socket connection refused, building the client asks nothing and a fetch
    goes only through the session it was given."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv(acs.ENV_KEY, KEY)
    session = FakeSession()
    client = acs.census_client(session=session)
    assert session.requests == []
    assert client.acs5.session is session
    table = acs.fetch_acs(client=client, year=2024)
    (url, params), = session.data_requests()
    assert url.startswith("https://api.census.gov/") and params["key"] == KEY
    assert table.info["rows"] == 12


def test_cli_census_without_key_is_one_line(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from fairaudit.cli.app import app

    monkeypatch.delenv("CENSUS_API_KEY", raising=False)
    r = CliRunner().invoke(app, ["census", "--states", "MA", "--out", str(tmp_path / "c.csv")])
    assert r.exit_code == 2, r.output
    assert "CENSUS_API_KEY" in r.output and len(r.output.strip().splitlines()) == 1
