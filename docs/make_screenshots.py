"""Take the README's screenshots of the sample-data report in headless Chromium.

    fairaudit audit sample_data/utterances.csv ... --out audit_out   (the README's command)
    python docs/make_screenshots.py audit_out/report.html

Needs the test extra (Playwright) and Debian's Chromium (/usr/bin/chromium); no browser
download.  Writes docs/report_screenshot.png (the top of the report, sorted by the held-out gap)
and docs/report_drilldown.png (the bottom region's drill-down).
"""
import pathlib
import sys

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
DOCS = pathlib.Path(__file__).resolve().parent


def main(report: str) -> None:
    url = pathlib.Path(report).resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1860})
        page.goto(url, wait_until="load")
        # sort the headline by gap, hover the bottom region on the map
        page.locator("#headline-table th", has_text="Held-out WER gap").locator("button").click()
        page.locator("#headline-table th", has_text="Held-out WER gap").locator("button").click()
        # the map's regions are hover boxes; the scan's hot spot is hovered through its
        # speakers' dots (no box), so a map without a bottom box is taken as it is
        bottom = page.locator("#d1 figure.map rect.fa-hit.fa-bottom")
        if bottom.count():
            box = bottom.first.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.screenshot(path=str(DOCS / "report_screenshot.png"))
        page.mouse.move(0, 0)
        page.set_viewport_size({"width": 1280, "height": 1100})
        page.locator("#d1 table.cohorts tr.bottom button.fa-link").click()
        page.wait_for_selector(".fa-dialog[open] .fa-speakers[data-ready]")
        page.screenshot(path=str(DOCS / "report_drilldown.png"))
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "audit_out/report.html")
