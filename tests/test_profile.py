"""Stage timings: complete per discoverer in report.json, left out of to_json(), --profile prints them."""
import json

from typer.testing import CliRunner

from fairaudit.cli.app import app
from fairaudit.profile import format_rows, stage_rows
from fairaudit.result import AuditResult, validate

from conftest import SAMPLE

runner = CliRunner()


def test_audit_writes_every_stage_and_profile_prints_them(tmp_path):
    out = tmp_path / "o"
    res = runner.invoke(app, ["audit", str(SAMPLE / "utterances.csv"), "--speakers", str(SAMPLE / "speakers.csv"),
                              "--census", str(SAMPLE / "census.csv"), "--by", "gender", "--discoverers",
                              "geodemographic", "--bootstrap", "50", "--permutations", "20", "--heldout-splits", "1",
                              "--out", str(out), "--quiet", "--profile"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    validate(report)
    t = report["timings"]
    for key in ("geodemographic", "attribute:gender"):
        for stage in ("discover", "bootstrap", "permutation", "heldout"):
            assert t[f"{stage}:{key}"] >= 0, (stage, key)
    for stage in ("read", "score", "views:html", "write:tables", "bootstrap:overall", "total"):
        assert stage in t, stage
    # the table: every stage once, in pipeline order, total last
    lines = res.output.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("stage"))
    names = [line.split()[0] for line in lines[header + 1:]]
    assert names[0] == "read" and names[-1] == "total"
    assert names.index("discover:geodemographic") < names.index("permutation:geodemographic") < \
        names.index("discover:attribute:gender")
    assert len(names) == len(set(names))
    # loaded and saved again: timings kept, yet never part of the deterministic document
    loaded = AuditResult.load(str(out))
    assert loaded.timings == t
    assert "timings" not in json.loads(loaded.to_json())
    assert json.loads(loaded.to_json(timings=True))["timings"] == t


def test_stage_rows_order_other_and_total():
    t = {"read": 1.0, "score": 2.0, "discover:a": 1.0, "permutation:a": 3.0, "bootstrap:a": 0.5,
         "discover:b": 0.25, "score:sys2": 1.0, "bootstrap:overall": 0.25, "total": 10.0, "views:html": 2.0}
    rows = stage_rows(t)
    assert [r[0] for r in rows] == ["read", "score", "score:sys2", "discover:a", "bootstrap:a", "permutation:a",
                                    "discover:b", "bootstrap:overall", "other", "views:html", "total"]
    assert dict(rows)["other"] == 1.0       # 10 s total, 9 s in recorded stages
    assert dict(rows)["total"] == 12.0      # the views come after the audit's own total
    assert "100.0" in format_rows(rows).splitlines()[-1]


def test_stage_rows_with_statistics_side_by_side():
    t = {"read": 1.0, "discover:a": 1.0, "discover:b": 1.0, "bootstrap:a": 2.0, "permutation:a": 3.0,
         "heldout:b": 4.0, "statistics": 5.0, "bootstrap:overall": 0.5, "total": 9.0}
    rows = dict(stage_rows(t))
    # the overlapping per-discoverer statistics count once, through their wall time
    assert rows["other"] == 0.5 and rows["total"] == 9.0
    assert "side by side" in format_rows(stage_rows(t))


def test_html_says_how_many_permutations_ran():
    from fairaudit.reports.html.context import _honest_facts

    entry = {"p_value": 10 / 22, "permutation": {"n": 200, "permutations_used": 22, "stopped_early": True,
                                                 "stop_after": 10, "null_gap_median_pct": 1.5}}
    text = dict(_honest_facts(entry))["permutation null"]
    assert "22 of 200 times" in text and "10th" in text
    entry["permutation"].update(permutations_used=200, stopped_early=False)
    assert "(200 times)" in dict(_honest_facts(entry))["permutation null"]
