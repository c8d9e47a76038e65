"""The HTML view: one self-contained file over a saved audit result.

Everything comes from ``AuditResult.report`` (nothing is recomputed), so ``fairaudit
report report.json`` re-renders byte for byte what ``fairaudit audit`` wrote.  The page has
inline CSS, no fonts or images fetched at view time (figures are PNGs drawn with
matplotlib's Agg renderer, embedded as base64 data URIs) and one inline script that makes
it explorable (sortable, filterable, downloadable tables, cohort drill-downs, figure
tooltips): see :mod:`fairaudit.reports.explore` for how its data and policy keep it safe.

Every string taken from the report (cohort labels, speaker and utterance ids, transcripts,
file names, drop reasons, warnings) is untrusted: the Jinja2 environment autoescapes, and
the template never marks report text ``|safe``.

Modules: :mod:`.context` (the view model; each discoverer's own part comes from its
``report_section`` hook), :mod:`.figures` (matplotlib helpers, the cohort bar chart),
:mod:`.maps` (US state outlines), :mod:`.render` (the page), :mod:`.compare` (the
``fairaudit compare`` page), :mod:`.cache` (the folder keeping state outlines and compiled
templates between runs).
"""
from .compare import render_compare_html, write_compare_html
from .context import build_context, fmt_ci, fmt_count, fmt_gap, fmt_level, fmt_p, fmt_pct, fmt_pp, fmt_wer
from .maps import CONTINENTAL, counties_shapefile, state_outlines
from .render import render_html, write_html

__all__ = ["CONTINENTAL", "build_context", "counties_shapefile", "fmt_ci", "fmt_count", "fmt_gap", "fmt_level",
           "fmt_p", "fmt_pct", "fmt_pp", "fmt_wer", "render_compare_html", "render_html", "state_outlines",
           "write_compare_html", "write_html"]
