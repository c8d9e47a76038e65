"""The explorable report (issue 19): data blocks, CSP, sortable/filterable/downloadable tables,
cohort drill-downs and figure layers, checked in Python and as a user would in headless Chromium."""
import base64
import csv
import hashlib
import io
import json
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fairaudit
from fairaudit import drilldown
from fairaudit.alignment import worst_utterances
from fairaudit.io.readers import InputSpec
from fairaudit.reports import explore
from fairaudit.reports import html as html_report
from fairaudit.result import SCHEMA_VERSION, AuditResult, validate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_report  # noqa: E402  (the 100k-speaker benchmark: the same steps, timed)

from reportpages import (ENDJSON, HOSTILE, JSURL, LSEP, SCRIPT, assert_clean, open_report, run, sample_args,
                         split_scripts)


def blocks(text):
    """Every JSON data block of a page, decoded (compressed ones inflated): id -> value."""
    out = {}
    for attrs, body in split_scripts(text)[1]:
        m = re.search(r'id="([^"]+)"', attrs)
        if "application/json" not in attrs or not m:
            continue
        raw = zlib.decompress(base64.b64decode(body)).decode() if "deflate-base64" in attrs else body
        out[m.group(1)] = json.loads(raw)
    return out


def first_field(line):
    return next(csv.reader([line]))[0]


def fmt_wer(x):
    return "n/a" if x is None else f"{100 * x:.2f}"


# --------------------------------------------------------------------------- building blocks

def test_escaped_json_cannot_leave_its_script_element():
    data = {"label": HOSTILE, SCRIPT: ENDJSON, "x": "a&b<!--c-->d", "ls": LSEP}
    text = explore.escape_json(explore.dumps(data))
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == data
    block = explore.data_block("fa-x", data)
    assert block.count("</script>") == 1 and block.endswith("</script>\n")


def test_large_blocks_are_deflated_and_deterministic():
    data = {"id": [f"spk{i:06d}" for i in range(40_000)], "n": list(range(40_000))}
    block = str(explore.data_block("fa-big", data))
    assert 'data-encoding="deflate-base64"' in block and block == str(explore.data_block("fa-big", data))
    body = re.search(r">([^<]*)</script>", block).group(1)
    assert json.loads(zlib.decompress(base64.b64decode(body))) == data
    assert len(body) < len(explore.dumps(data)) / 2
    with pytest.raises(ValueError):
        explore.data_block('x" onload="alert(1)', {})


def test_script_is_constant_and_its_hash_is_in_the_policy(sample_out):
    text = (sample_out / "report.html").read_text(encoding="utf-8")
    code = [b for a, b in split_scripts(text)[1] if "application/json" not in a]
    assert code == [explore.script_source()]
    digest = base64.b64encode(hashlib.sha256(code[0].encode("utf-8")).digest()).decode()
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', text).group(1)
    assert policy == explore.csp_policy()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    # the policy comes before the script it governs
    assert text.index("Content-Security-Policy") < text.index("<script")


def test_poisson_interval_of_a_speaker_wer():
    low, high = drilldown.poisson_wer_interval([0, 10, 57, 3], [10, 100, 50, 0], 0.95)
    # exact Garwood limits: 10 events -> [4.795, 18.390]; 0 events -> [0, 3.689]
    assert low[1] == pytest.approx(0.047954, abs=1e-5) and high[1] == pytest.approx(0.183904, abs=1e-5)
    assert low[0] == 0 and high[0] == pytest.approx(0.368879, abs=1e-5)
    assert low[2] < 57 / 50 < high[2] and high[2] > 1  # a WER above 1 (insertions) is fine
    assert np.isnan(low[3]) and np.isnan(high[3])


def test_report_json_holds_drilldown_data(sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    validate(report)
    assert report["schema_version"] == SCHEMA_VERSION
    table = report["speaker_table"]
    ids = table["speaker_id"]
    assert ids == sorted(ids) and len(ids) == report["overall"]["speakers"]
    assign = pd.read_csv(sample_out / "assignments.csv", dtype=str, keep_default_na=False)
    for key, entry in report["discoverers"].items():
        if entry["skipped"]:
            continue
        dd = entry["drilldown"]
        cohorts = entry["cohorts"]
        got = {ids[i]: cohorts[m]["id"] for i, m in enumerate(dd["members"]) if m >= 0}
        want = dict(assign.loc[assign["discoverer"] == key, ["speaker_id", "cohort_id"]].to_numpy())
        assert got == want
        assert set(dd["worst"]) == {c["id"] for c in cohorts}  # every cohort (fewer than 200 here)
        for cid, utts in dd["worst"].items():
            assert 1 <= len(utts) <= dd["worst_per_cohort"]
            assert all(want[u["speaker_id"]] == cid for u in utts)
            assert [u["errors"] for u in utts] == sorted((u["errors"] for u in utts), reverse=True)
            assert all(u["alignment"] for u in utts)  # text input, not redacted
        assert dd["worst"][entry["bottom"]] == entry["worst_utterances"][:len(dd["worst"][entry["bottom"]])]
    # the speakers' interval holds their WER
    for e, w, lo, hi in zip(table["errors"], table["ref_words"], table["wer_ci_low"], table["wer_ci_high"]):
        assert lo - 1e-4 <= e / w <= hi + 1e-4


def test_worst_utterances_per_cohort_equal_a_full_sort():
    rng = np.random.default_rng(5)
    rows, speakers = [], []
    for s in range(60):
        speakers.append({"speaker_id": f"s{s:02d}", "grp": f"g{s % 7}"})
        for u in range(int(rng.integers(1, 6))):
            words = ["a", "b", "c", "d"]
            hyp = [w if rng.random() > 0.3 else "x" for w in words]  # many ties in errors and WER
            rows.append({"utt_id": f"u{int(rng.integers(0, 10**6)):06d}-{s}-{u}", "speaker_id": f"s{s:02d}",
                         "reference": " ".join(words), "hypothesis": " ".join(hyp)})
    result = fairaudit.audit(pd.DataFrame(rows), speakers=pd.DataFrame(speakers), by=["grp"], discoverers=[],
                             min_speakers=2, n_boot=0, n_perm=0, honest=False)
    entry = result.report["discoverers"]["attribute:grp"]
    a = result.assignments
    for c in entry["cohorts"]:
        members = a.loc[a["cohort_id"] == c["id"], "speaker_id"]
        assert entry["drilldown"]["worst"][c["id"]] == worst_utterances(result.utterances, members, 3)


def test_report_json_keeps_long_lists_on_one_line(sample_out):
    text = (sample_out / "report.json").read_text(encoding="utf-8")
    ids = json.loads(text)["speaker_table"]["speaker_id"]
    assert len(text.splitlines()) < 5000  # one line per speaker and column would add > 5,000
    assert '\n      "spk0000",\n' not in text
    assert json.dumps(ids, ensure_ascii=False) in text


def test_cohort_csv_block_equals_cohorts_csv(sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    lines = (sample_out / "cohorts.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    rows = explore.cohort_csv(report)
    assert set(rows) == {k for k, e in report["discoverers"].items() if not e["skipped"]}
    for key, block in rows.items():
        assert block["header"] == lines[0]
        assert block["rows"] == [line for line in lines[1:] if first_field(line) == key]


def test_candidate_rules_with_the_same_split_are_one_row(sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    d = report["discoverers"]["geodemographic"]["details"]
    rows = explore.collapse_candidates(d["candidates"], d["rule"])
    splits = [frozenset({(r["speakers_in_rule"], round(r["wer_in_rule"], 12)),
                         (r["speakers_rest"], round(r["wer_rest"], 12))}) for r in rows]
    assert len(splits) == len(set(splits)) < len(d["candidates"])
    named = [r["rule"] for r in rows] + [e for r in rows for e in r["equivalent"]]
    assert sorted(named) == sorted(c["rule"] for c in d["candidates"])  # each rule once
    assert any(r["rule"] == d["rule"] and r["equivalent"] for r in rows)  # the chosen rule stands for its group
    text = (sample_out / "report.html").read_text(encoding="utf-8")
    assert text.count("<td class=\"mono text\">pct_black &lt;= 50%<") == 0  # the complement is not its own row


def test_facts_are_rows_not_json(sample_out):
    page, _ = split_scripts((sample_out / "report.html").read_text(encoding="utf-8"))
    for raw in ("{&#39;", "{&#34;", "[&#39;", "[&#34;", "{'", '{"'):
        assert raw not in page, raw
    assert "<dt>thresholds › median income</dt><dd>50,400, 65,100, 86,300</dd>" in page
    assert "<dt>max regions</dt><dd>16</dd>" in page


def test_map_labels_never_overlap():
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from fairaudit.reports import figure_layers

    fig = Figure(figsize=(4, 3), dpi=96)
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    rend = figure_layers.renderer(fig)
    rng = np.random.default_rng(1)
    items = [{"x": float(x), "y": float(y), "text": f"R{i:02d}"} for i, (x, y) in
             enumerate(rng.uniform(4, 6, size=(60, 2)))]
    left_out = figure_layers.place_labels(ax, rend, items)
    rend = figure_layers.renderer(fig)  # annotations know where they are once drawn
    boxes = [Text.get_window_extent(t, rend) for t in ax.texts]  # the text alone
    leaders = [(i, t.arrow_patch.get_window_extent(rend)) for i, t in enumerate(ax.texts) if t.arrow_patch]
    assert 0 < len(left_out) < 60 and len(boxes) + len(left_out) == 60 and leaders
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
        for j, line in leaders:  # a leader line crosses no other label
            assert j == i or not a.overlaps(line)


# --------------------------------------------------------------------------- browser: tables

def _rows(page, table):
    """Cell texts of the rows a user sees in ``table`` (a CSS selector)."""
    return page.evaluate("""sel => Array.from(document.querySelector(sel).tBodies[0].rows)
        .filter(tr => getComputedStyle(tr).display !== 'none')
        .map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))""", table)


def _click_header(page, table, label):
    page.locator(f"{table} thead th", has_text=label).first.locator("button.fa-sort").click()


def test_sort_filter_and_download_cohort_table(browser, sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    cohorts = report["discoverers"]["geographic"]["cohorts"]
    page, log = open_report(browser, sample_out / "report.html")
    table = "#d1 table.cohorts"
    try:
        wer_col = [th.strip() for th in page.locator(f"{table} thead th").all_inner_texts()].index("WER %")
        _click_header(page, table, "WER %")
        th = page.locator(f"{table} thead th").nth(wer_col)
        assert th.get_attribute("aria-sort") == "ascending"
        shown = [float(r[wer_col]) for r in _rows(page, table)]
        assert shown == sorted(shown)
        # by the exact WER; ties keep the order they had (rank)
        assert [r[1] for r in _rows(page, table)] == [c["id"] for c in sorted(cohorts, key=lambda c: (c["wer"], c["rank"]))]
        _click_header(page, table, "WER %")
        assert th.get_attribute("aria-sort") == "descending"
        assert [int(r[0]) for r in _rows(page, table)] == list(range(1, len(cohorts) + 1))
        # stable: sort by rank, then by speakers; ties keep rank order
        _click_header(page, table, "Rank")
        _click_header(page, table, "Speakers")
        rows = [(int(r[3].replace(",", "")), int(r[0])) for r in _rows(page, table)]
        assert rows == sorted(rows)
        # filter: only rows holding the text, case-insensitively
        page.locator("#d1 .fa-tools:has(+ .scroll table.cohorts) input.fa-filter").fill("georgia")
        want = {c["id"] for c in cohorts if "georgia" in c["label"].lower()}
        assert want and {r[1] for r in _rows(page, table)} == want
        assert page.locator("#d1 .fa-tools:has(+ .scroll table.cohorts) .fa-status").inner_text() == \
            f"{len(want)} of {len(cohorts)} rows match"
        with page.expect_download() as dl:
            page.locator("#d1 .fa-tools:has(+ .scroll table.cohorts) button.fa-csv").click()
        filtered = pd.read_csv(dl.value.path(), dtype=str, keep_default_na=False)
        assert set(filtered["id"]) == want
        page.locator("#d1 .fa-tools:has(+ .scroll table.cohorts) input.fa-filter").fill("")
        assert len(_rows(page, table)) == len(cohorts)
        assert_clean(page, log)
    finally:
        page.close()


#: records the scheme of every URL the page's download links use (before they are clicked)
RECORD_DOWNLOAD_URLS = """() => { window.__hrefs = []; const click = HTMLAnchorElement.prototype.click;
    HTMLAnchorElement.prototype.click = function () { window.__hrefs.push(this.href.match(/^[a-z]+:/)[0]);
    return click.call(this); }; }"""


def test_csv_download_equals_cohorts_csv(browser, sample_out):
    lines = (sample_out / "cohorts.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    page, log = open_report(browser, sample_out / "report.html")
    try:
        page.evaluate(RECORD_DOWNLOAD_URLS)
        for i, (key, entry) in enumerate(report["discoverers"].items()):
            if entry["skipped"]:
                continue
            with page.expect_download() as dl:
                page.locator(f"#d{i + 1} .fa-tools:has(+ .scroll table.cohorts) button.fa-csv").click()
            assert dl.value.suggested_filename == f"cohorts-{re.sub(r'[^A-Za-z0-9._-]+', '-', key)}.csv"
            got = open(dl.value.path(), encoding="utf-8").read()
            # byte for byte: cohorts.csv's header and its rows of this discoverer
            assert got == lines[0] + "".join(line for line in lines[1:] if first_field(line) == key)
            full = pd.read_csv(sample_out / "cohorts.csv", dtype=str, keep_default_na=False)
            pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(got), dtype=str, keep_default_na=False),
                                          full.loc[full["discoverer"] == key].reset_index(drop=True))
        # any other table: its cells as shown
        with page.expect_download() as dl:
            page.locator("#headline .fa-csv").first.click()   # the headline table (the worse-than-rest list follows)
        head = pd.read_csv(dl.value.path(), dtype=str, keep_default_na=False)
        assert list(head.iloc[:, 0]) == list(report["discoverers"])
        assert head.columns[1] == "Bottom cohort"
        # data: URIs made by the page (no server, nothing fetched)
        assert set(page.evaluate("window.__hrefs")) == {"data:"}
        assert_clean(page, log)
    finally:
        page.close()


def test_python_and_page_format_numbers_alike(browser, sample_out):
    rng = np.random.default_rng(3)
    values = [0.125, 0.375, 1.125, 2.675, 12.125, 0.005, 1.005, 100 * 97 / 800, 1212.5, 0.0, -1.125, 99.995,
              *(k / 8 for k in range(-40, 400)), *rng.uniform(0, 150, 400).tolist(),
              *(100 * e / w for e, w in rng.integers(1, 900, size=(400, 2)))]
    page, _ = open_report(browser, sample_out / "report.html")
    try:
        for d in (1, 2):
            got = page.evaluate("([v, d]) => v.map(x => window.fairaudit.pyFixed(x, d))", [values, d])
            assert got == [f"{v:.{d}f}" for v in values]
    finally:
        page.close()


# --------------------------------------------------------------------------- browser: drill-down

def _open_drill(page, button):
    page.locator(button).first.click()
    page.wait_for_selector(".fa-dialog[open] .fa-speakers[data-ready]")


def _drill_speakers(page):
    """Every row of the drill-down's speaker table, page after page."""
    pager = page.locator(".fa-dialog .fa-speakers .fa-pager")
    if pager.is_visible():
        pager.locator("select").select_option("250")
    rows = []
    while True:
        rows += page.evaluate("""() => Array.from(document.querySelectorAll('.fa-dialog .fa-speakers tbody tr'))
            .map(tr => Array.from(tr.cells).map(td => td.textContent))""")
        nxt = pager.locator("button", has_text="Next")
        if not pager.is_visible() or nxt.is_disabled():
            return rows
        nxt.click()


def test_drilldown_numbers_equal_report_json(browser, sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    table = report["speaker_table"]
    at = {s: i for i, s in enumerate(table["speaker_id"])}
    page, log = open_report(browser, sample_out / "report.html")
    try:
        for i, (key, entry) in enumerate(report["discoverers"].items()):
            if entry["skipped"]:
                continue
            for role in ("bottom", "top"):
                c = next(x for x in entry["cohorts"] if x["id"] == entry[role])
                _open_drill(page, f"#d{i + 1} table.cohorts tr.{role} button.fa-link")
                dlg = page.locator(".fa-dialog")
                assert dlg.locator("#fa-dialog-title").inner_text() == c["label"]
                field = lambda f: dlg.locator(f'[data-field="drill-{f}"]').inner_text()  # noqa: E731
                assert field("wer") == fmt_wer(c["wer"])
                assert field("ci") .startswith(f"[{fmt_wer(c['wer_ci_low'])}, {fmt_wer(c['wer_ci_high'])}]")
                assert field("speakers").startswith(f"{c['speakers']:,} ({c['share_pct']:.1f} %")
                assert field("ref_words") == f"{c['ref_words']:,}"
                assert field("errors") == (f"{c['errors']:,} (S {c['substitutions']:,}, D {c['deletions']:,}, "
                                           f"I {c['insertions']:,})")
                rows = _drill_speakers(page)
                members = [table["speaker_id"][j] for j, m in enumerate(entry["drilldown"]["members"])
                           if m >= 0 and entry["cohorts"][m]["id"] == c["id"]]
                assert sorted(r[0] for r in rows) == sorted(members) and len(rows) == c["speakers"]
                for r in rows:
                    j = at[r[0]]
                    e, w = table["errors"][j], table["ref_words"][j]
                    assert r[1:5] == [f"{table['utterances'][j]:,}", f"{w:,}", f"{e:,}", fmt_wer(e / w)]
                    assert r[5] == f"[{fmt_wer(table['wer_ci_low'][j])}, {fmt_wer(table['wer_ci_high'][j])}]"
                wers = [float(r[4]) for r in rows]
                assert wers == sorted(wers, reverse=True)  # highest WER first
                heads = dlg.locator(".utt .head bdi.mono").all_inner_texts()
                worst = entry["drilldown"]["worst"][c["id"]]
                if role == "bottom":
                    worst = entry["worst_utterances"]
                assert heads[0::2] == [u["utt_id"] for u in worst]
                assert dlg.locator(".utt .align").count() == len(worst)
                page.keyboard.press("Escape")
                assert not dlg.is_visible()
        # the headline's bottom cohort opens the same panel
        page.locator('#headline-table tr[data-discoverer="geographic"] button.fa-link').click()
        geo = report["discoverers"]["geographic"]
        assert page.locator("#fa-dialog-title").inner_text() == \
            next(x["label"] for x in geo["cohorts"] if x["id"] == geo["bottom"])
        page.locator(".fa-dialog .fa-close").click()
        assert_clean(page, log)
    finally:
        page.close()


def test_map_and_scatter_tooltips_and_clicks(browser, sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    page, log = open_report(browser, sample_out / "report.html")
    try:
        geo = report["discoverers"]["geographic"]
        b = next(i for i, c in enumerate(geo["cohorts"]) if c["id"] == geo["bottom"])
        # the map: the hot spot (the bottom cohort) is reached through its speakers' dots;
        # hover the hot-spot dot farthest from any dot of another cohort
        layer = json.loads(page.locator("#fa-fig1-d1").text_content())
        pts = np.array(layer["points"], dtype=float)
        mine, other = pts[pts[:, 2] == b], pts[pts[:, 2] != b]
        assert len(mine) and len(other)
        gap = ((mine[:, None, :2] - other[None, :, :2]) ** 2).sum(-1).min(1)
        x, y, _ = mine[int(gap.argmax())]
        fig = page.locator("#d1 figure.map .fa-fig")
        fig.scroll_into_view_if_needed()
        bb = fig.bounding_box()
        s = bb["width"] / layer["w"]
        page.mouse.move(bb["x"] + x * s, bb["y"] + y * s)
        tip = page.locator(".fa-tip").inner_text()
        c = geo["cohorts"][b]
        assert c["id"] in tip and f"WER {fmt_wer(c['wer'])} %" in tip and f"{c['speakers']} speakers" in tip
        assert "bottom cohort" in tip
        page.mouse.click(bb["x"] + x * s, bb["y"] + y * s)
        assert page.locator("#fa-dialog-title").inner_text() == c["label"]
        page.keyboard.press("Escape")
        # the overlay lies on the PNG: the rectangles' pixels match the region cells' drawn size
        layer = json.loads(page.locator("#fa-fig1-d1").text_content())
        img = page.locator("#d1 figure.map .fa-fig img").bounding_box()
        box = page.locator("#d1 figure.map svg.fa-layer").bounding_box()
        assert abs(img["width"] - box["width"]) < 1 and abs(img["height"] - box["height"]) < 1
        assert layer["w"] == page.evaluate("document.querySelector('#d1 figure.map .fa-fig img').naturalWidth")
        # bar chart: each row of the chart is its cohort
        bars = json.loads(page.locator("#fa-bars-d1").text_content())
        assert sorted(r[4] for r in bars["rects"]) == list(range(len(geo["cohorts"])))
        bar = page.locator(f'#d1 figure.bars rect.fa-hit[data-cohort="{b}"]')
        bar.scroll_into_view_if_needed()
        bar.hover()
        assert f"WER {fmt_wer(c['wer'])} %" in page.locator(".fa-tip").inner_text()
        bar.click()
        assert page.locator("#fa-dialog-title").inner_text() == c["label"]
        page.keyboard.press("Escape")
        # scatter: the point under the mouse names its cluster
        auto = report["discoverers"]["automatic"]
        pts = json.loads(page.locator("#fa-fig1-d3").text_content())
        fig = page.locator("#d3 figure.scatter .fa-fig")
        fig.scroll_into_view_if_needed()
        bb = fig.bounding_box()
        x, y, idx = pts["points"][0]
        s = bb["width"] / pts["w"]
        page.mouse.move(bb["x"] + x * s, bb["y"] + y * s)
        tip = page.locator(".fa-tip").inner_text()
        near = {p[2] for p in pts["points"] if abs(p[0] - x) < 9 and abs(p[1] - y) < 9}
        assert any(auto["cohorts"][k]["id"] in tip.split(" · ")[0] for k in near)
        page.mouse.click(bb["x"] + x * s, bb["y"] + y * s)
        assert page.locator(".fa-dialog[open]").count() == 1
        page.keyboard.press("Escape")
        assert_clean(page, log)
    finally:
        page.close()


def test_print_hides_the_interactive_chrome(browser, sample_out, tmp_path):
    page, log = open_report(browser, sample_out / "report.html")
    try:
        _open_drill(page, "#d1 table.cohorts tr.bottom button.fa-link")
        page.keyboard.press("Escape")
        page.emulate_media(media="print")
        assert not page.locator(".fa-tools").first.is_visible()
        assert not page.locator(".fa-layer").first.is_visible()
        assert page.locator("#d1 figure.map .fa-fig img").is_visible()
        assert page.evaluate("getComputedStyle(document.querySelector('th[aria-sort], th button.fa-sort'), '::after')"
                             ".content") in ("none", "normal")
        pdf = page.pdf(path=str(tmp_path / "report.pdf"))
        assert pdf[:4] == b"%PDF" and len(pdf) > 200_000  # the figures are in it
        assert_clean(page, log)
    finally:
        page.close()


def test_adjusted_ratio_in_the_drilldown(browser, sample_out, tmp_path):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    # one discoverer (no map or scatter to draw): the page renders in a fraction of the time
    report["discoverers"] = {k: e for k, e in report["discoverers"].items() if k == "attribute:gender,age_band"}
    geo = report["discoverers"]["attribute:gender,age_band"]
    bottom = next(c for c in geo["cohorts"] if c["id"] == geo["bottom"])
    bottom["adjusted"] = {"rate_ratio": 1.5234, "rate_ratio_ci": [1.1012, 2.0456], "p_value": 0.0123,
                          "covariates": ["device", "ref_words"], "method": "Poisson GEE, speaker clusters"}
    out = tmp_path / "adjusted.html"
    html_report.write_html(AuditResult(report=report), str(out))
    page, log = open_report(browser, out)
    try:
        _open_drill(page, "#d1 table.cohorts tr.bottom button.fa-link")
        text = page.locator(".fa-dialog").inner_text()
        assert "Adjusted for covariates" in text
        assert "adjusted rate ratio vs the rest\n1.52 [1.10, 2.05], p = 0.012" in text
        assert "covariates\ndevice, ref_words" in text and "Poisson GEE, speaker clusters" in text
        page.keyboard.press("Escape")
        _open_drill(page, "#d1 table.cohorts tr.top button.fa-link")  # a cohort without one: no section
        assert "Adjusted for covariates" not in page.locator(".fa-dialog").inner_text()
        assert_clean(page, log)
    finally:
        page.close()


def test_systems_in_the_drilldown(browser, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for s in range(40):
        for u in range(3):
            words = [f"w{i}" for i in rng.integers(0, 50, 8)]
            ref = " ".join(words)
            rows.append({"utt_id": f"{s}-{u}", "speaker_id": f"s{s}", "reference": ref,
                         "sysA": " ".join(words[2:]) if s % 4 == 0 else ref, "sysB": " ".join(words[1:]),
                         "grp": "y" if s % 4 == 0 else "x"})
    path = tmp_path / "multi.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    both = fairaudit.audit(InputSpec(path=str(path), hyp_col="sysA", more_hyp_cols=("sysB",)), by=["grp"],
                           discoverers=[], min_speakers=5, n_boot=0, n_perm=0)
    validate(json.loads(both.to_json()))
    assert "drilldown" not in both.report["systems"]["sysA"]["discoverers"]["attribute:grp"]  # not twice
    out = tmp_path / "report.html"
    html_report.write_html(both, str(out))
    page, log = open_report(browser, out)
    try:
        _open_drill(page, "#d1 table.cohorts tr.bottom button.fa-link")
        got = page.evaluate("""() => Array.from(document.querySelectorAll('.fa-dialog .fa-systems tbody tr'))
            .map(tr => Array.from(tr.cells).map(td => td.textContent))""")
        cohort = both.report["discoverers"]["attribute:grp"]
        bottom = next(c for c in cohort["cohorts"] if c["id"] == cohort["bottom"])
        for name, row in zip(("sysA", "sysB"), got):
            alone = both.for_system(name).discoverers["attribute:grp"]
            same = next(c for c in alone["cohorts"] if c["label"] == bottom["label"])
            assert row[0] == name and row[1] == fmt_wer(same["wer"]) and row[3] == f"{same['errors']:,}"
        assert got[1][2] == f"{100 * (got and (float(got[1][1]) - float(got[0][1])) / 100):+.2f} pp"
        assert_clean(page, log)
    finally:
        page.close()


def test_compare_page_tables_sort_and_download(browser, tmp_path):
    rows = []
    for s in range(30):
        grp = f"g{s % 3}"
        rows += [{"utt_id": f"{s}-{u}", "speaker_id": f"s{s}", "reference": "a b c d e", "grp": grp,
                  "sysA": "a b c" if grp == "g0" else "a b c d e", "sysB": "a b c d"} for u in range(2)]
    path = tmp_path / "h.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    r = run("compare", path, "--hyp-col", "sysA", "--hyp-col", "sysB", "--by", "grp", "--discoverers", "",
            "--min-speakers", "2", "--resamples", "200", "-q", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    page, log = open_report(browser, tmp_path / "c" / "compare.html")
    try:
        table = "#d0 table"
        _click_header(page, table, "cohort")
        assert [r[0] for r in _rows(page, table)] == ["grp=g0", "grp=g1", "grp=g2"]
        _click_header(page, table, "cohort")
        assert [r[0] for r in _rows(page, table)] == ["grp=g2", "grp=g1", "grp=g0"]
        with page.expect_download() as dl:
            page.locator("#d0 .fa-csv").first.click()
        got = pd.read_csv(dl.value.path(), dtype=str, keep_default_na=False)
        assert list(got["cohort"]) == ["grp=g2", "grp=g1", "grp=g0"]  # the order shown
        # the criteria table below it too
        assert page.locator("#d0 table.criteria button.fa-sort").count() == 4
        assert_clean(page, log)
    finally:
        page.close()


# --------------------------------------------------------------------------- browser: safety

def test_hostile_report_drilldowns_run_no_script(browser, hostile_out):
    page, log = open_report(browser, hostile_out["path"])
    report = hostile_out["report"]
    try:
        n_scripts = page.evaluate("document.scripts.length")
        texts = []
        for i, (key, entry) in enumerate(report["discoverers"].items()):
            for j in range(len(entry.get("cohorts") or [])):
                page.evaluate("([b, j]) => window.fairaudit.openDrill(b, j)", [f"fa-drill-d{i + 1}", j])
                page.wait_for_selector(".fa-dialog[open] .fa-speakers[data-ready]")
                texts.append(page.locator(".fa-dialog").text_content())
                page.keyboard.press("Escape")
        joined = "\n".join(texts)
        for s in (SCRIPT, JSURL, ENDJSON, "onerror=alert(1)>"):
            assert s in joined  # shown as text
        assert "line\u2028sep" in joined or "line" in joined
        page.locator("#fa-speakers-host button.fa-show").click()
        page.wait_for_selector("#fa-speakers-host[data-ready]")
        page.locator("#fa-speakers-host input.fa-filter").fill("javascript")
        assert JSURL in page.locator("#fa-speakers-host tbody").text_content()
        for rect in page.locator("#d1 .fa-fig rect.fa-hit").all():
            rect.hover()
        # nothing new runs, nothing links anywhere
        assert page.evaluate("document.scripts.length") == n_scripts
        urls = page.evaluate("""() => Array.from(document.querySelectorAll('*')).flatMap(e =>
            Array.from(e.attributes).filter(a => /^(href|src|action|formaction|xlink:href)$/i.test(a.name))
            .map(a => a.value))""")
        assert all(u.startswith(("#", "data:image/png;base64,")) for u in urls), urls
        assert page.evaluate("document.querySelectorAll('[onerror], [onload], [onclick], iframe, object, embed').length") == 0
        assert_clean(page, log)
    finally:
        page.close()


def test_content_security_policy_is_effective(browser, sample_out):
    page, log = open_report(browser, sample_out / "report.html")
    try:
        assert page.evaluate("""() => document.querySelector('meta[http-equiv="Content-Security-Policy"]').content""") \
            == explore.csp_policy()
        got = page.evaluate("""async () => {
            const seen = [];
            document.addEventListener('securitypolicyviolation', e => seen.push(e.effectiveDirective));
            let fetched = 'yes';
            try { await fetch('https://example.invalid/x'); } catch (e) { fetched = 'blocked'; }
            const s = document.createElement('script');
            s.textContent = 'window.__inline = 1';
            document.body.append(s);
            const img = new Image();
            img.src = 'https://example.invalid/p.png';
            document.body.append(img);
            const div = document.createElement('div');
            div.setAttribute('onclick', 'window.__handler = 1');
            document.body.append(div);
            div.click();
            const a = document.createElement('a');
            a.setAttribute('href', 'javascript:window.__url = 1');
            document.body.append(a);
            a.click();
            await new Promise(r => setTimeout(r, 300));
            return {seen, fetched, inline: typeof window.__inline, handler: typeof window.__handler,
                    url: typeof window.__url};
        }""")
        assert got["fetched"] == "blocked"
        assert got["inline"] == got["handler"] == got["url"] == "undefined"
        assert {"connect-src", "script-src-elem", "script-src-attr", "img-src"} <= set(got["seen"])
        # Chromium names the request, and blocks it before it leaves
        assert [u for u in log["requests"] if "example.invalid" in u] == [u for u in log["failed"] if "example.invalid" in u]
        assert log["console_errors"] and all("Content Security Policy" in m for m in log["console_errors"])
    finally:
        page.close()


def test_redact_text_leaves_no_transcript_anywhere(tmp_path):
    r = run(*sample_args(tmp_path, "--redact-text", "--permutations", "0", "--bootstrap", "0"))
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    decoded = json.dumps(blocks(text), ensure_ascii=False)
    for word in ("thermostat", "umbrella", "Beyoncé", "beyoncé"):   # ("degrees" is in the methods text)
        assert word not in text and word not in decoded
    assert 'class="align"' not in text and "Transcripts were redacted" in text
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    for entry in report["discoverers"].values():
        for utts in (entry.get("drilldown") or {}).get("worst", {}).values():
            assert utts and all("alignment" not in u for u in utts)
    assert "Transcripts were redacted" in decoded


# --------------------------------------------------------------------------- many speakers

def test_large_report_opens_sorts_filters_and_drills_down(browser, tmp_path):
    """The steps of benchmarks/bench_report.py (which times them at 100,000 speakers, target
    < 10 s each) on 30,000 speakers: every check, no timing (unit tests are never timed)."""
    result, speakers = bench_report.synthetic_report(30_000)
    # the schema on the first 1,000 speakers (jsonschema spends seconds per 10,000 list items)
    doc = json.loads(result.to_json(indent=None))
    doc["speaker_table"] = {k: v[:1000] if isinstance(v, list) else v for k, v in doc["speaker_table"].items()}
    for entry in doc["discoverers"].values():
        entry["drilldown"]["members"] = entry["drilldown"]["members"][:1000]
    validate(doc)
    out = tmp_path / "big.html"
    html_report.write_html(result, str(out))
    # the speaker table is one deflated block, decoded when asked for (100k speakers: 1.2 MB)
    assert 'id="fa-speakers" data-encoding="deflate-base64"' in out.read_text(encoding="utf-8")
    assert out.stat().st_size < 2 * 1024 * 1024
    page, log = open_report(browser, out)
    try:
        page.evaluate(RECORD_DOWNLOAD_URLS)
        bench_report.explore_speakers(page, speakers, result.report["discoverers"]["attribute:region"]["cohorts"])
        # the speakers' CSV is longer than a data: URI may be (Chromium: 2 MB): a blob: URL of the same text
        assert page.evaluate("window.__hrefs") == ["blob:"]
        assert_clean(page, log)
    finally:
        page.close()


def test_drilldown_names_the_report_rate(sample_out):
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    report["inputs"]["unit"] = "char"
    report["discoverers"] = {k: e for k, e in report["discoverers"].items() if k == "attribute:gender"}  # no map to draw
    got = blocks(html_report.render_html(AuditResult(report=report)))
    drill = got["fa-drill-d1"]
    assert drill["rate"] == "CER" and drill["tokens"] == "characters"
    assert [f[1] for f in drill["cohorts"][0]["facts"]][:2] == ["rank", "CER %"]
    assert got["fa-speakers"]["rate"] == "CER"
