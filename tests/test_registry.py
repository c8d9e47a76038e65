"""Registry-wide: every registered discoverer (the built-ins, the installed example plugin
and one declared here with no optional hook) has its parameters reachable from the CLI,
a planter, a report section, and gives the same cohorts through audit, compare and power.
A discoverer added later is checked by these tests without editing them."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import fairaudit
from fairaudit.cli import common as c
from fairaudit.compare import compare
from fairaudit.discover import REGISTRY, Discoverer, Discovery, register, registry
from fairaudit.discover.params import Options
from fairaudit.discover.planting import CohortPlanter, Planter
from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec
from fairaudit.power import prepare
from fairaudit.power.simulate import _table
from fairaudit.reports.html import render_html
from fairaudit.result import AuditResult

from conftest import cli_flags
from worlds import write_world


class HalvesDiscoverer(Discoverer):
    """North/south (or east/west) of the median coordinate: a discoverer with a parameter
    and no optional hook (generic planter, generic report section, no assign).

    Parameters
    ----------
    axis : str, default "lat"
        Coordinate to split at its median.
    """

    name = "halves"
    fixed_cohorts = True
    non_attribute_columns = ("lat", "lon")
    _parameter_constraints = {"axis": [Options(str, {"lat", "lon"})]}

    def __init__(self, axis: str = "lat", **common):
        super().__init__(**common)
        self.axis = axis

    def missing_inputs(self, speakers, side):
        return None if self.axis in speakers.columns else f"no {self.axis} column"

    def fit(self, speakers, side):
        v = pd.to_numeric(speakers[self.axis], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(v)
        ids = pd.Index(speakers["speaker_id"].to_numpy(dtype=object)[ok], name="speaker_id")
        cohort = np.where(v[ok] >= np.median(v[ok]), "upper", "lower").astype(object)
        return Discovery(pd.Series(cohort, index=ids, dtype=object), {"upper": "upper half", "lower": "lower half"},
                         details={"median": float(np.median(v[ok]))})


PARAMS = {"automatic": {"k": 4}, "geographic": {"max_regions": 6}}


@pytest.fixture(scope="module")
def world(plugin, tmp_path_factory):
    register(HalvesDiscoverer)
    folder = tmp_path_factory.mktemp("registry")
    paths = write_world(folder, n=400, seed=11, plant="snr", candidate_effect=1.2)
    names = [n for n, cls in registry().items() if cls.instance_param is None]
    spec = InputSpec(path=paths["utterances"], errors_col="errors", ref_words_col="ref_words")
    kwargs = dict(speakers=paths["speakers"], census=paths["census"], embeddings=paths["embeddings"],
                  embedding_ids=paths["embedding_ids"], side_inputs={"snr": paths["snr"]}, discoverers=names,
                  by=["gender"], params=PARAMS, min_speakers=15, seed=2)
    result = fairaudit.audit(spec, **kwargs, n_boot=0, n_perm=5, honest=False)
    saved = folder / "audit"
    result.save(str(saved))
    yield {"paths": paths, "names": names, "kwargs": kwargs, "result": result, "saved": saved}
    REGISTRY.pop("halves", None)


def test_the_world_runs_every_registered_discoverer(world):
    report = world["result"].discoverers
    for name, cls in registry().items():
        keys = [k for k, e in report.items() if e["name"] == name]
        assert keys, f"{name} did not run"
        for k in keys:
            assert report[k]["skipped"] is None, (k, report[k]["skipped"])
            assert report[k]["init_params"] == {p: (list(v) if isinstance(v, tuple) else v)
                                                for p, v in cls(**report[k]["init_params"]).get_params().items()}


def _flag_text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def test_every_parameter_is_reachable_from_the_cli(world, plugin_site):
    generated, lookup = c._discovery_params()
    idents = {(name, param): ident for ident, (kind, name, param) in lookup.items() if kind == "param"}
    # typer keeps the first spelling of an Annotated option in .default
    decls = {ident: tuple(d for d in (ann.__metadata__[0].default, *ann.__metadata__[0].param_decls)
                          if isinstance(d, str) and d.startswith("-")) for ident, ann, _ in generated if ident in lookup}
    report = world["result"].discoverers
    for name, cls in registry().items():
        entry = next(e for e in report.values() if e["name"] == name)
        for param in cls.own_params():
            ident = idents[(name, param)]
            assert cls.flag(param) in " ".join(decls[ident]), (name, param, decls[ident])
            for alias in cls.flag_aliases.get(param, ()):
                assert alias in " ".join(decls[ident])
            # the value the audit used, given as flag text, reaches the discoverer unchanged
            used = entry["init_params"][param]
            values = {n: None for n, _, _ in generated} | {"min_speakers": 20, "seed": 0}
            if isinstance(used, bool):
                values[ident] = used
            elif param == cls.instance_param:
                values[ident] = [_flag_text(used)]
            else:
                values[ident] = _flag_text(used)
            opts = c.discovery_options(values, lookup)
            got = opts.instances[name][0] if param == cls.instance_param else opts.params[name][param]
            assert got == used, (name, param, got, used)
    # the real commands (a fresh interpreter: built-ins and the installed plugin)
    flags = cli_flags(plugin_site)
    for name, cls in registry().items():
        if name == "halves":
            continue   # declared in this test module only
        for param in cls.own_params():
            for command in ("audit", "compare", "power", "selftest"):
                assert cls.flag(param) in flags[command], (command, name, param)
                assert set(cls.flag_aliases.get(param, ())) <= flags[command], (command, name, param)


def test_every_discoverer_has_a_planter(world):
    result = world["result"]
    table = _table(result.speakers)
    for disc in result.discoverer_objects():
        found = disc.fit(table, result.side)
        planter = disc.planter(table, result.side, found)
        assert isinstance(planter, Planter) and planter.n == len(found.assignment), disc.key
        rows = planter.rows([0.1])
        assert rows and all(r.size >= 1 for r in rows)
        idx, text = planter.draw(np.random.default_rng(0), rows[0])
        assert len(idx) and np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < planter.n, disc.key
        assert isinstance(text, str) and text, disc.key
        if disc.name == "halves":
            assert isinstance(planter, CohortPlanter)   # no planter of its own: the generic one
            assert set(found.assignment.iloc[idx]) == {found.assignment.iloc[idx[0]]}  # one of its cohorts


def test_every_discoverer_has_a_report_section(world):
    result = world["result"]
    html = render_html(result)
    assert html.count('<section class="disc"') == len(result.discoverers)
    images = 0
    for key, entry in result.discoverers.items():
        disc = registry()[entry["name"]](**entry["init_params"])
        section = disc.report_section(entry, result.report)
        assert section.title and section.title in html.replace("&#39;", "'"), key
        for fig in section.figures:
            assert fig.src.startswith("data:image/png;base64,") and fig.alt in html, key
        images += len(section.figures) + 1   # its figures and the cohort bar chart every section has
    assert html.count("<img ") == images
    halves = registry()["halves"]().report_section(result.discoverers["halves"], result.report)
    assert halves.title == "halves" and ("median", str(round(result.discoverers["halves"]["details"]["median"], 4))) \
        in halves.facts


def test_same_cohorts_through_audit_compare_and_power(world):
    result, kwargs, paths = world["result"], world["kwargs"], world["paths"]
    # compare: the baseline audited by the same pipeline, the candidate on its cohorts
    spec = InputSpec(path=paths["utterances"], errors_col="errors", more_value_cols=("errors_b",),
                     ref_words_col="ref_words")
    doc = compare(spec, resamples=200, **kwargs).report
    for key, entry in result.discoverers.items():
        audited = {(c["id"], c["label"], c["speakers"], c["ref_words"]) for c in entry["cohorts"]}
        compared = {(c["id"], c["label"], c["speakers"], c["ref_words"]) for c in doc["discoverers"][key]["cohorts"]}
        assert compared == audited, key
    # power: from the saved audit (report.json + speaker_scores.csv + recorded side files)
    loaded = AuditResult.load(str(world["saved"]))
    side = loaded.side_inputs()
    table = _table(loaded.speakers)
    for disc in loaded.discoverer_objects():
        expected = loaded.assignment(disc.key)
        plan = prepare(disc, table, side, expected)
        assert not isinstance(plan, str), (disc.key, plan)
        got = plan.assignment.astype(str)
        got.index = got.index.astype(str)
        pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False, check_dtype=False,
                                       check_index_type=False)
    # assign: the saved definitions place the same speakers in the same cohorts
    for key, entry in result.discoverers.items():
        disc = registry()[entry["name"]](**entry["init_params"])
        again = disc.assign(entry.get("definition") or {}, result.speakers, result.side)
        if again is None:
            assert entry["name"] == "halves"   # the default: cannot be applied
            continue
        saved = result.assignment(key)
        agree = (again.reindex(saved.index) == saved).mean()
        assert agree >= (0.98 if entry["name"] == "automatic" else 1.0), (key, agree)


def test_power_refuses_a_speaker_table_that_changed(world, tmp_path):
    folder = tmp_path / "audit"
    shutil.copytree(world["saved"], folder)
    scores = pd.read_csv(folder / "speaker_scores.csv", dtype={"zip": str})
    scores["lat"] = scores["lat"].sample(frac=1.0, random_state=0).to_numpy()
    scores.to_csv(folder / "speaker_scores.csv", index=False)
    loaded = AuditResult.load(str(folder))
    geo = [d for d in loaded.discoverer_objects() if d.name == "geographic"]
    with pytest.raises(UserInputError, match="geographic: .* does not give the audit's cohorts"):
        fairaudit.power.estimate_power(loaded, discoverers=geo, n_sim=1, n_perm=1, gaps=[100])
