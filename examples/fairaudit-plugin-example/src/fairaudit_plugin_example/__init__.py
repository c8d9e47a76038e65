"""The SNR-threshold discoverer: an example fairaudit plugin, in one file.

Speakers come with a signal-to-noise ratio (dB) in a side table (``--snr FILE``:
``speaker_id,snr_db``).  The discoverer tries ``thresholds`` candidate thresholds at evenly
spaced quantiles of the audited speakers' SNR and keeps the one where the low-SNR side's
WER exceeds the high-SNR side's by the most standard errors (a z score of the two micro
WERs).  Cohorts: "low" (SNR below the threshold) and "high".  The search chases noise like
any search, so its z score is its own test statistic: fairaudit's permutation null re-runs
the search on shuffled error counts and compares z scores.

Everything fairaudit needs is here: the side input (flag and loader), the parameters and
their constraints (they become ``--snr-thresholds`` and ``--snr-min-side-share``), the
search, ``assign``, a planter for ``fairaudit power``/``selftest`` and a report section.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fairaudit.discover import Discoverer, Discovery, register
from fairaudit.discover.params import Interval
from fairaudit.discover.planting import Planter
from fairaudit.discover.sides import SideFlag, SideInput, register_side_input
from fairaudit.errors import UserInputError

__version__ = "0.1.0"

NO_SNR = "no SNR value"


# ---------------------------------------------------------------- the side input

def _load_snr(values: dict, utterances) -> dict:
    """``--snr FILE``: a CSV with speaker_id and snr_db (dB); one row per speaker."""
    path = str(values["snr"])
    try:
        table = pd.read_csv(path, dtype={"speaker_id": str})
    except FileNotFoundError:
        raise UserInputError("SNR table not found", path=path, hint="pass --snr FILE (speaker_id,snr_db)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserInputError(f"not a readable CSV ({str(exc).splitlines()[0]})", path=path) from None
    missing = [c for c in ("speaker_id", "snr_db") if c not in table.columns]
    if missing:
        raise UserInputError(f"no {missing[0]!r} column (columns: {', '.join(map(str, table.columns))})", path=path,
                             hint="the SNR table needs speaker_id and snr_db")
    snr = pd.to_numeric(table["snr_db"], errors="coerce")
    bad = snr.isna() & table["snr_db"].notna()
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise UserInputError(f"line {line}: snr_db {table['snr_db'][bad].iloc[0]!r} is not a number", path=path)
    ids = table["speaker_id"].astype(str).str.strip()
    if ids.duplicated().any():
        raise UserInputError(f"speaker {ids[ids.duplicated()].iloc[0]!r} appears twice", path=path)
    return {"snr": pd.Series(snr.to_numpy(dtype=float), index=pd.Index(ids.to_numpy(), name="speaker_id")),
            "snr_path": path}


register_side_input(SideInput(
    name="snr", description="SNR table", fields=("snr", "snr_path"), load=_load_snr,
    flags=(SideFlag("snr", "Per-speaker signal-to-noise ratios: CSV with speaker_id, snr_db (dB)."),)))


# ---------------------------------------------------------------- the planter

class LowSnrPlanter(Planter):
    """Plants on the audited speakers with the lowest SNR (ties broken at random)."""

    kind = "the speakers with the lowest SNR"

    def __init__(self, snr: np.ndarray):
        super().__init__(len(snr))
        self.snr = snr

    def draw(self, gen, row):
        order = np.lexsort((gen.random(self.n), self.snr))
        idx = np.sort(order[:row.size])
        return idx, f"the {len(idx)} speakers with the lowest SNR (up to {self.snr[idx].max():.1f} dB)"


# ---------------------------------------------------------------- the discoverer

@register
class SnrThresholdDiscoverer(Discoverer):
    """The SNR threshold below which WER is worst (low vs high SNR speakers).

    Parameters
    ----------
    thresholds : int, default 9
        Candidate thresholds tried, at evenly spaced quantiles of the audited speakers' SNR.
    min_side_share : float, default 0.05
        Smallest share (ratio) of the audited speakers on either side of a threshold, on
        top of --min-speakers.
    min_speakers : int, default 20
        Smallest number of speakers on either side.
    seed : int, default 0
        Recorded only: the search is exhaustive.
    """

    name = "snr"
    title = "Signal-to-noise threshold (example plugin)"
    description = ("Speakers are split at the SNR threshold where the low-SNR side's WER exceeds the high-SNR "
                   "side's by the most standard errors; the permutation test compares that z score with the "
                   "same search on shuffled error counts.")
    side_inputs = ("snr",)
    order = 100
    _parameter_constraints = {"thresholds": [Interval(int, 1, 99)],
                              "min_side_share": [Interval(float, 0, 0.5, closed="left")]}

    def __init__(self, thresholds: int = 9, min_side_share: float = 0.05, **common):
        super().__init__(**common)
        self.thresholds = thresholds
        self.min_side_share = min_side_share

    def _snr(self, speakers: pd.DataFrame, side) -> np.ndarray:
        return side.snr.reindex(speakers["speaker_id"].astype(str).to_numpy()).to_numpy(dtype=float)

    def missing_inputs(self, speakers, side) -> str | None:
        if side.snr is None:
            return "no SNR table (pass --snr FILE)"
        if not np.isfinite(self._snr(speakers, side)).any():
            return "none of the speakers has an SNR value in the SNR table"
        return None

    def fit(self, speakers: pd.DataFrame, side) -> Discovery:
        snr_all = self._snr(speakers, side)
        ok = np.isfinite(snr_all)
        ids = speakers["speaker_id"].astype(str).to_numpy(dtype=object)[ok]
        snr = snr_all[ok]
        e = speakers["errors"].to_numpy(dtype=float)[ok]
        w = speakers["ref_words"].to_numpy(dtype=float)[ok]
        floor = max(int(self.min_speakers), int(math.ceil(self.min_side_share * len(snr))))
        qs = np.arange(1, self.thresholds + 1) / (self.thresholds + 1)
        candidates = np.unique(np.quantile(snr, qs)) if len(snr) else np.zeros(0)
        p = e.sum() / w.sum() if w.sum() > 0 else 0.0
        curve, best = [], None
        for t in candidates:   # a loop over thresholds, not speakers
            low = snr < t
            n_low = int(low.sum())
            if n_low < floor or len(snr) - n_low < floor:
                continue
            wl, wh = w[low].sum(), w[~low].sum()
            if wl <= 0 or wh <= 0:
                continue
            diff = e[low].sum() / wl - e[~low].sum() / wh
            z = diff / math.sqrt(max(p * (1 - p), 1e-12) * (1 / wl + 1 / wh))
            curve.append({"threshold_db": float(t), "z": float(z), "low_speakers": n_low})
            if best is None or z > best[1]:
                best = (float(t), float(z))
        not_audited = {NO_SNR: int((~ok).sum())} if (~ok).any() else {}
        params = {**self.get_params(), "min_side_speakers": floor}
        index = pd.Index(ids, name="speaker_id")
        if best is None:
            return Discovery(pd.Series("all", index=index, dtype=object),
                             {"all": f"all audited speakers (no threshold leaves {floor} speakers on both sides)"},
                             not_audited, params, details={"candidates": curve}, definition={"threshold_db": None})
        t, z = best
        assignment = pd.Series(np.where(snr < t, "low", "high").astype(object), index=index, dtype=object)
        labels = {"low": f"SNR < {t:.1f} dB", "high": f"SNR >= {t:.1f} dB"}
        return Discovery(assignment, labels, not_audited, params,
                         details={"threshold_db": t, "z": z, "candidates": curve},
                         definition={"threshold_db": t}, statistic=z, statistic_name="snr_z")

    # ------------------------------------------------------------ optional hooks

    def assign(self, definition: dict, speakers: pd.DataFrame, side) -> pd.Series | None:
        if side is None or side.snr is None:
            return pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object)
        snr = self._snr(speakers, side)
        ok = np.isfinite(snr)
        ids = pd.Index(speakers["speaker_id"].astype(str).to_numpy(dtype=object)[ok], name="speaker_id")
        t = definition.get("threshold_db")
        cohort = np.full(len(ids), "all", dtype=object) if t is None else np.where(snr[ok] < t, "low", "high")
        return pd.Series(cohort.astype(object), index=ids, dtype=object)

    def planter(self, speakers, side, discovery) -> Planter:
        snr = side.snr.reindex(discovery.assignment.index.astype(str)).to_numpy(dtype=float)
        return LowSnrPlanter(snr)

    def report_section(self, entry: dict, report: dict):
        from fairaudit.reports.html.figures import DPI, figure, png
        from fairaudit.reports.sections import Figure, ReportSection

        d = entry.get("details") or {}
        sec = ReportSection(title=self.title, method=self.description)
        if d.get("threshold_db") is not None:
            sec.facts.append(("chosen threshold", f"{d['threshold_db']:.1f} dB (z = {d['z']:.2f})"))
        curve = d.get("candidates") or []
        if curve:
            fig = figure(7.0, 3.0)
            ax = fig.add_subplot()
            ax.plot([c["threshold_db"] for c in curve], [c["z"] for c in curve], marker="o", color="#6f94b8")
            if d.get("threshold_db") is not None:
                ax.axvline(d["threshold_db"], color="#c0392b", linestyle="--", linewidth=1)
            ax.set_xlabel("SNR threshold (dB)")
            ax.set_ylabel("z (low vs high SNR)")
            sec.figures.append(Figure(src=png(fig), alt="z score of each candidate SNR threshold",
                                      caption="The search: z score of the WER difference at each candidate threshold; "
                                              "the chosen one is dashed.", width=int(7.0 * DPI)))
        return sec
