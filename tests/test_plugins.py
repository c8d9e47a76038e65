"""A third-party discoverer installed as a package (examples/fairaudit-plugin-example):
found through its entry point, with its own side input, parameters as CLI flags, its
own test statistic, planter and report section, in audit, compare, power and selftest.

The package is pip-installed into a folder of its own by the ``plugin_site`` fixture
(conftest.py); CLI runs are subprocesses that see it on PYTHONPATH (a fresh interpreter
builds its flags from the registry, as a user's shell would)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import fairaudit
from fairaudit.errors import UserInputError
from fairaudit.result import AuditResult, validate

from conftest import cli_flags, plugin_env
from worlds import counts_args, make_world, write_world


def cli(plugin_site, *args, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "fairaudit", *map(str, args)], capture_output=True, text=True,
                          env=plugin_env(plugin_site), timeout=600)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_entry_point_registers_the_plugin(plugin):
    from fairaudit.discover import PLUGINS, ENTRY_POINT_GROUP

    assert plugin.__module__ == "fairaudit_plugin_example" and plugin.name == "snr"
    assert PLUGINS["snr"]["package"] == "fairaudit-plugin-example"
    assert PLUGINS["snr"]["entry_point"] == "fairaudit_plugin_example:SnrThresholdDiscoverer"
    import importlib.metadata

    assert any(ep.name == "snr" for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    # scikit-learn conventions of the base class
    disc = plugin(thresholds=5, min_speakers=10)
    assert disc.get_params() == {"thresholds": 5, "min_side_share": 0.05, "min_speakers": 10, "seed": 0}
    twin = disc.clone(thresholds=7)
    assert twin.thresholds == 7 and disc.thresholds == 5 and twin.min_speakers == 10


def _planted_audit(plugin, seed: int, plant: str | None, tmp_path, n_perm: int = 99):
    speakers, utts, _, _, _, snr, planted = make_world(600, seed, plant=plant)
    snr_path = tmp_path / f"snr{seed}.csv"
    snr.to_csv(snr_path, index=False)
    res = fairaudit.audit(utts[["utt_id", "speaker_id", "ref_words", "errors"]], speakers=speakers,
                          side_inputs={"snr": str(snr_path)}, discoverers=["snr"], seed=seed, n_perm=n_perm,
                          n_boot=50, honest=False)
    return res, planted


def test_planted_low_snr_is_found_and_significant(plugin, tmp_path):
    res, planted = _planted_audit(plugin, 3, "snr", tmp_path)
    entry = res.discoverers["snr"]
    assert entry["skipped"] is None
    perm = entry["permutation"]
    assert perm["statistic"] == "snr_z" and perm["observed"] == pytest.approx(entry["statistic"]["value"])
    assert entry["p_value"] < 0.05
    low = set(res.assignment("snr").pipe(lambda a: a.index[a == "low"]))
    assert entry["bottom"] == "low" and len(low & planted) / len(planted) >= 0.6
    validate(json.loads(res.to_json()))


def test_no_disparity_is_rarely_significant(plugin, tmp_path):
    significant = 0
    for seed in range(10):
        res, _ = _planted_audit(plugin, 100 + seed, None, tmp_path, n_perm=49)
        significant += res.discoverers["snr"]["p_value"] < 0.05
    # 10 null data sets at alpha 0.05: P(Binomial(10, 0.05) >= 3) = 1.2 %
    assert significant <= 2, significant


def test_plugin_parameters_are_validated(plugin):
    speakers, utts, *_ = make_world(60, 0)
    with pytest.raises(UserInputError, match="--snr-thresholds"):
        fairaudit.audit(utts[["utt_id", "speaker_id", "ref_words", "errors"]], speakers=speakers,
                        discoverers=["snr"], params={"snr": {"thresholds": 0}})


def test_plugin_through_audit_compare_power_selftest(plugin_site, tmp_path):
    paths = write_world(tmp_path, n=500, seed=5, plant="snr", candidate_effect=1.0)
    out = tmp_path / "audit"
    flags = cli_flags(plugin_site)
    for command in ("audit", "compare", "power", "selftest"):
        assert {"--snr", "--snr-thresholds", "--snr-min-side-share"} <= flags[command], command

    bad = cli(plugin_site, "audit", *counts_args(paths), "--snr", paths["snr"], "--discoverers", "snr",
              "--snr-thresholds", "0", "--out", tmp_path / "bad", check=False)
    assert bad.returncode == 2 and "--snr-thresholds" in bad.stderr and "Traceback" not in bad.stderr

    cli(plugin_site, "audit", *counts_args(paths), "--speakers", paths["speakers"], "--snr", paths["snr"],
        "--discoverers", "snr", "--by", "gender", "--snr-thresholds", "7", "--permutations", "40", "--bootstrap", "50",
        "--out", out, "-q")
    report = json.loads((out / "report.json").read_text())
    validate(report)
    entry = report["discoverers"]["snr"]
    assert entry["skipped"] is None and entry["init_params"]["thresholds"] == 7
    assert entry["permutation"]["statistic"] == "snr_z" and entry["p_value"] is not None
    assert len(entry["details"]["candidates"]) <= 7
    assert report["tool"]["plugins"]["snr"]["package"] == "fairaudit-plugin-example"
    assert any(f["role"] == "snr" for f in report["inputs"]["files"])
    html = (out / "report.html").read_text()
    assert "Signal-to-noise threshold (example plugin)" in html and "z score of each candidate SNR threshold" in html

    # compare: the candidate scored on the audit's own cohorts
    comp = tmp_path / "compare"
    cli(plugin_site, "compare", *counts_args(paths, "errors", "errors_b"), "--speakers", paths["speakers"],
        "--cohorts", out, "--resamples", "200", "--no-html", "--out", comp, "-q")
    doc = json.loads((comp / "compare.json").read_text())
    audited = {c["id"]: c["speakers"] for c in entry["cohorts"]}
    assert {c["id"]: c["speakers"] for c in doc["discoverers"]["snr"]["cohorts"]} == audited

    # power and selftest start from the saved audit (its SNR file reloaded and checked)
    cli(plugin_site, "power", out, "--simulations", "2", "--permutations", "10", "--shares", "10", "--gaps", "100",
        "-q")
    power = json.loads((out / "report.json").read_text())["power"]["discoverers"]["snr"]
    assert power["skipped"] is None and power["plant"] == "the speakers with the lowest SNR"
    self_out = cli(plugin_site, "selftest", out, "--discoverers", "snr", "--permutations", "39",
                   "--out", tmp_path / "st").stdout
    rec = json.loads((tmp_path / "st" / "selftest.json").read_text())["discoverers"]
    assert list(rec) == ["snr"] and rec["snr"]["planted_speakers"] == 50
    assert rec["snr"]["recovered"] and "selftest: passed: 1 of 1" in self_out


def test_plugin_assign_applies_the_saved_threshold(plugin, tmp_path):
    res, _ = _planted_audit(plugin, 3, "snr", tmp_path, n_perm=9)
    entry = res.discoverers["snr"]
    disc = plugin(**entry["init_params"])
    again = disc.assign(entry["definition"], res.speakers, res.side)
    saved = res.assignment("snr")
    assert (again.reindex(saved.index) == saved).all()
    # other speakers: placed by their own SNR
    speakers, *_, snr, _ = make_world(50, 77)
    snr_path = tmp_path / "other.csv"
    snr.to_csv(snr_path, index=False)
    from fairaudit.discover import load_side_inputs

    side = load_side_inputs({"snr": str(snr_path)})
    other = disc.assign(entry["definition"], speakers, side)
    t = entry["definition"]["threshold_db"]
    expect = np.where(snr.set_index("speaker_id")["snr_db"].reindex(other.index) < t, "low", "high")
    assert len(other) == 50 and (other.to_numpy() == expect).all()


def test_saved_audit_with_plugin_loads_and_rebuilds(plugin, tmp_path):
    res, _ = _planted_audit(plugin, 4, "snr", tmp_path, n_perm=9)
    res.save(str(tmp_path / "a"))
    loaded = AuditResult.load(str(tmp_path / "a"))
    (disc,) = loaded.discoverer_objects()
    assert isinstance(disc, plugin) and disc.get_params() == res.discoverers["snr"]["init_params"]
