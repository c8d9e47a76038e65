"""The one owner of how numbers are shown to people (console, HTML, gate, power sentences).

report.json keeps full precision; every view formats through these functions, so a WER
reads "10.92" everywhere and a test can format report.json the same way and compare.
Units: a *WER* argument is a ratio (0.1092) shown as a percentage; a *pct* argument is
already in % (a gap, a share); a *pp* argument is a difference of WER ratios shown in
percentage points.
"""
from __future__ import annotations

from typing import Any

NA = "n/a"
UNDEFINED = "undefined"


def wer(x: float | None) -> str:
    """A WER ratio as a percentage with two decimals (0.10924 -> '10.92'); 'n/a' for None."""
    return NA if x is None else f"{100 * x:.2f}"


def wer_pct(x: float | None) -> str:
    """A WER ratio with its unit: '10.92 %'."""
    return NA if x is None else f"{wer(x)} %"


def pct(x: float | None, digits: int = 1) -> str:
    """A value already in % with ``digits`` decimals (54.123 -> '54.1'); 'n/a' for None."""
    return NA if x is None else f"{x:.{digits}f}"


def gap(entry: dict) -> str:
    """The relative WER gap (%) of a report entry (or any dict with wer_gap_pct/wer_gap_abs):
    'undefined' when the top cohort's WER is 0 (only the absolute gap exists), 'n/a' when
    there is no gap at all."""
    if entry.get("wer_gap_pct") is not None:
        return pct(entry["wer_gap_pct"])
    return UNDEFINED if entry.get("wer_gap_abs") is not None else NA


def heldout_gap(entry: dict) -> str:
    """The held-out gap (%) of a report entry (``entry["heldout"]``, speaker split): 'n/a' when
    it has no estimate or was not computed."""
    held = entry.get("heldout") or {}
    return pct(held.get("gap_pct")) if held.get("estimate") else NA


def heldout_interval(entry: dict) -> str:
    """The held-out gap's interval as a compact range ('-12–31'), 'n/a' without one."""
    held = entry.get("heldout") or {}
    ci = held.get("ci_pct") if held.get("estimate") else None
    return range_pct(*ci) if ci else NA


def gap_with_unit(entry: dict) -> str:
    """:func:`gap` followed by ' %' when it is a number."""
    text = gap(entry)
    return text if text in (NA, UNDEFINED) else f"{text} %"


def pp(x: float | None) -> str:
    """An absolute WER difference (ratio) in percentage points: '1.23 pp'."""
    return NA if x is None else f"{100 * x:.2f} pp"


def delta(x: float | None) -> str:
    """A signed WER change (ratio) in percentage points, no unit: '+1.23'."""
    return NA if x is None else f"{100 * x:+.2f}"


def delta_interval(lo: float | None, hi: float | None) -> str:
    """A signed interval of WER changes (ratios) in points: '[-0.50, +1.20]'."""
    return NA if lo is None or hi is None else f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"


def count(n: Any) -> str:
    """A count with thousands separators: '6,046'; 'n/a' for None."""
    return NA if n is None else f"{int(n):,}"


def interval(lo: float | None, hi: float | None, ratio: bool = True) -> str:
    """'[lo, hi]': WER ratios in % with two decimals, or values already in % with one; ''
    when an end is missing."""
    if lo is None or hi is None:
        return ""
    return f"[{wer(lo)}, {wer(hi)}]" if ratio else f"[{pct(lo)}, {pct(hi)}]"


def range_pct(lo: float | None, hi: float | None) -> str:
    """A compact range of values in % without decimals: '113–251'; 'n/a' when missing."""
    return NA if lo is None or hi is None else f"{pct(lo, 0)}–{pct(hi, 0)}"


def level(x: float | None) -> str:
    """A confidence level (ratio) as '95 %' (0.95 when None)."""
    return f"{100 * (x if x is not None else 0.95):g} %"


def p_value(p: float | None, none: str = "") -> str:
    """A p-value: '< 0.001' below 0.001, else three decimals; ``none`` when None."""
    if p is None:
        return none
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def share(x: float) -> str:
    """A cohort share in % in a sentence: no decimals from 10 %, two significant digits below."""
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def whole_pct(x: float | None) -> str:
    """A percentage without decimals ('75'); 'n/a' for None."""
    return pct(x, 0)


def ratio_as_pct(x: float | None) -> str:
    """A ratio (power, share of speakers) as a whole percentage: 0.8 -> '80 %'."""
    return NA if x is None else f"{100 * x:.0f} %"


def signed_pct(x: float | None, digits: int = 1) -> str:
    """A signed change of a value in % (a gap's increase in points): '+3.2'."""
    return NA if x is None else f"{x:+.{digits}f}"


def rate_ratio(x: float | None) -> str:
    """A rate ratio (errors per reference word, cohort / rest) with two decimals: '1.41'."""
    return NA if x is None else f"{x:.2f}"


def rate_ratio_block(block: dict | None, with_p: bool = False) -> str:
    """A rate-ratio block of report.json as '1.41 [1.21, 1.63]' (and ', p_Holm 0.002'),
    the ratio alone when it has no interval, and 'n/a' when there is none."""
    if not block or block.get("rate_ratio") is None:
        return NA
    ci = block.get("rate_ratio_ci")
    text = rate_ratio(block["rate_ratio"]) + (f" [{rate_ratio(ci[0])}, {rate_ratio(ci[1])}]" if ci else "")
    if with_p and block.get("p_holm") is not None:
        text += f", p_Holm {p_value(block['p_holm'])}"
    return text


def wer_variance(x: float | None) -> str:
    """A variance of WER ratios in squared percentage points with two decimals
    (0.000123 -> '1.23 pp²'); 'n/a' for None."""
    return NA if x is None else f"{10000 * x:.2f} pp²"


#: Trinh et al.'s criteria across cohorts, in report order, with their display names
CRITERIA = {"wer_mean": "mean", "wer_max": "max", "wer_variance": "variance", "wer_gap_pct": "gap"}


def criterion(name: str, x: float | None) -> str:
    """A criterion value of ``fairaudit compare``: WER mean/max as '10.92 %', the variance
    as '1.23 pp²', the relative gap (already in %) as '54.1 %'."""
    if x is None:
        return NA
    if name == "wer_variance":
        return wer_variance(x)
    if name == "wer_gap_pct":
        return f"{pct(x)} %"
    return wer_pct(x)


def criterion_change(name: str, d: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """A criterion's change (candidate - baseline) with its interval: WER mean/max in
    points ('-1.20 pp [-2.00, -0.40]'), the variance in pp², the gap in % points."""
    if d is None:
        return NA
    if name == "wer_variance":
        f = (lambda v: f"{10000 * v:+.2f}")
        unit = " pp²"
    elif name == "wer_gap_pct":
        f = (lambda v: signed_pct(v))
        unit = " points"
    else:
        f = (lambda v: f"{100 * v:+.2f}")
        unit = " pp"
    ci = "" if lo is None or hi is None else f" [{f(lo)}, {f(hi)}]"
    return f"{f(d)}{unit}{ci}"
