"""Helpers shared by the HTML report tests: the sample and hostile audits, the page's
scripts, and headless Chromium (the fixtures themselves live in conftest.py)."""
import html.parser
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import fairaudit
from fairaudit.cli.app import app
from fairaudit.reports import html as html_report

from conftest import SAMPLE

runner = CliRunner()

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PWN = "<script>window.__pwned=1</script>"
PWN_IMG = "<img src=y onerror=window.__pwned=2>"
RTL = "مرحبا بالعالم"
UNICODE = "Beyoncé_中文_🎉"
LONG = "w" * 500
JSURL = "javascript:window.__pwned=3"
ENDJSON = '</script><script>window.__pwned=4</script><!--'
LSEP = "line\u2028sep\u2029par"
HOSTILE = [SCRIPT, IMG, PWN, PWN_IMG, RTL, UNICODE, LONG, JSURL, ENDJSON, LSEP]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def sample_args(out, *extra):
    s = SAMPLE
    return ["audit", s / "utterances.csv", "--speakers", s / "speakers.csv", "--census", s / "census.csv",
            "--embeddings", s / "embeddings.npy", "--embedding-ids", s / "embedding_ids.txt",
            "--by", "gender", "--by", "gender,age_band", "--out", out, "--quiet", *extra]


# --------------------------------------------------------------------------- pages

def write_sample(out):
    """The sample audit written by the CLI (report.json + report.html) into ``out``."""
    r = run(*sample_args(out, "--permutations", "20"))  # few permutations: p-values present, test fast
    assert r.exit_code == 0, r.output
    return out


def write_hostile(root):
    """An audit whose ids, labels, file names, transcripts and warnings are hostile strings."""
    # A file name may hold anything but '/' and NUL: split the script tag over a folder.
    folder = root / "<script>alert(1)<"
    folder.mkdir()
    speakers = ["spk" + SCRIPT, IMG, "spk" + PWN, PWN_IMG, RTL, UNICODE, LONG, "plain", JSURL, "spk" + ENDJSON, LSEP]
    rng = np.random.default_rng(0)
    lat = np.array([33.7, 40.7, 34.0, 41.9, 29.8, 47.6, 25.8, 39.7, 35.2, 44.9, 32.7])
    lon = np.array([-84.4, -74.0, -118.2, -87.6, -95.4, -122.3, -80.2, -105.0, -101.8, -93.2, -117.1])
    rows = []
    for i, spk in enumerate(speakers):
        for j in range(3):
            words = ["set", "a", SCRIPT, "timer", RTL, UNICODE, LONG, IMG, JSURL, ENDJSON, LSEP, "for", "ten", "minutes"]
            hyp = list(words)
            for k in rng.choice(len(hyp), size=4 - i % 4, replace=False):  # hostile ids err most
                hyp[k] = [PWN, PWN_IMG, "", "uh " + SCRIPT][(k + j) % 4]
            rows.append({"utt_id": f"u{i}_{j}" + (SCRIPT if j == 0 else IMG), "speaker_id": spk,
                         "reference": " ".join(words), "hypothesis": " ".join(w for w in hyp if w)})
    rows.append(dict(rows[0]))  # a duplicate utt_id: its drop example quotes the hostile id
    utt_path = folder / ("script>" + IMG + ".csv")
    pd.DataFrame(rows).to_csv(utt_path, index=False)
    attr = IMG + "col"
    spk = pd.DataFrame({"speaker_id": speakers, "lat": lat, "lon": lon,
                        "gender": [SCRIPT, IMG, RTL, UNICODE, LONG, PWN, SCRIPT, IMG, JSURL, ENDJSON, LSEP],
                        attr: ["a" + SCRIPT, "b", "a" + SCRIPT, "b", "a" + SCRIPT, "b", "a" + SCRIPT, "b", "b", "b",
                               "a" + SCRIPT]})
    spk_path = root / (IMG + "speakers.csv")
    spk.to_csv(spk_path, index=False)
    result = fairaudit.audit(str(utt_path), speakers=str(spk_path), by=["gender", attr],
                             discoverers=["geographic"], normalization="none", min_speakers=1,
                             params={"geographic": {"max_regions": 4}})
    result.report["accounting"]["warnings"] += [SCRIPT, IMG, PWN]
    result.report["inputs"]["options"][SCRIPT] = IMG
    path = root / "report.html"
    html_report.write_html(result, str(path))
    return {"path": path, "html": path.read_text(encoding="utf-8"), "report": json.loads(result.to_json())}


SCRIPT_RE = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


def split_scripts(text):
    """(the page without its script elements, [(attributes, content)] of each script element).

    A regex is exact here only because the page guarantees it: no script content holds
    '</script' (JSON blocks escape '<'; the code is checked for it when loaded).
    """
    scripts = [(attrs, body) for attrs, body in SCRIPT_RE.findall(text)]
    return SCRIPT_RE.sub("", text), scripts


def check_scripts(scripts):
    """The page's scripts are JSON data blocks and the one constant, hashed script."""
    from fairaudit.reports import explore

    code = [body for attrs, body in scripts if "application/json" not in attrs]
    assert code == [explore.script_source()], "a script other than _explore.js"
    for attrs, body in scripts:
        if "application/json" in attrs:
            assert re.fullmatch(r' type="application/json" id="fa-[\w-]+"( data-encoding="deflate-base64" data-bytes="\d+")?',
                                attrs), attrs
            assert "<" not in body and ">" not in body and "\u2028" not in body and "\u2029" not in body


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse_tags(text):
    p = _Tags()
    p.feed(text)
    return p.tags


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def launch_browser():
    """Headless Chromium driven by Playwright (a generator: yields the browser); skips only
    when the system browser is missing."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium not found (apt-get install chromium): browser checks skipped")
    from playwright import sync_api  # in the [test] extra: only the system browser may be missing
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_report(browser, path):
    """Load a report; returns (page, log of dialogs, console errors, page errors and requests)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = {"dialogs": [], "console_errors": [], "page_errors": [], "requests": [], "failed": []}

    def on_dialog(d):
        log["dialogs"].append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: m.type == "error" and log["console_errors"].append(m.text))
    page.on("pageerror", lambda e: log["page_errors"].append(str(e)))
    page.on("request", lambda r: log["requests"].append(r.url))
    page.on("requestfailed", lambda r: log["failed"].append(r.url))
    url = path.resolve().as_uri()
    page.goto(url, wait_until="load")
    log["url"] = url
    return page, log


def assert_clean(page, log):
    assert log["dialogs"] == [], "an injected script ran"
    assert page.evaluate("typeof window.__pwned") == "undefined", "an injected script ran"
    assert log["console_errors"] == [] and log["page_errors"] == []
    assert log["failed"] == []
    # the page itself is the only request; embedded images are data: URIs
    assert [u for u in log["requests"] if u != log["url"] and not u.startswith("data:")] == []
    # the scripts are the JSON data blocks and the one inline script the CSP allows
    kinds = page.evaluate("Array.from(document.scripts).map(s => s.type || 'code')")
    assert kinds.count("code") == 1 and set(kinds) == {"code", "application/json"}
    assert page.evaluate("document.documentElement.classList.contains('fa-js')"), "the script did not run"
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 22)])")
    assert images, "no figures"
    for complete, width, src in images:
        assert complete and width > 0 and src == "data:image/png;base64,"
