"""Attribute cohorts: known speaker attributes and their intersections (the baseline).

``--by gender`` gives one cohort per gender; ``--by gender,age_band`` one per
combination.  Nothing is searched, so there is no selection bias to correct, which is why
these cohorts are the baseline shown beside the discovered ones.
"""
from __future__ import annotations

import pandas as pd

from ..errors import UserInputError
from ..io.missing import REASON as MISSING_REASON
from .base import Discoverer, Discovery, SideInputs, register


@register
class AttributeDiscoverer(Discoverer):
    """One cohort per value (combination) of known speaker attribute columns."""

    name = "attribute"
    fixed_cohorts = True

    def __init__(self, min_speakers: int = 20, seed: int = 0, columns: tuple[str, ...] | list[str] = ()):
        super().__init__(min_speakers, seed)
        self.columns = tuple(columns)

    @property
    def key(self) -> str:
        return "attribute:" + ",".join(self.columns)

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        missing = [c for c in self.columns if c not in speakers.columns]
        if missing:
            return f"no column {missing[0]!r} in the speaker table or the utterance table"
        return None

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        if not self.columns:
            raise UserInputError("attribute cohorts need at least one column", hint="--by COLUMN[,COLUMN]")
        values = speakers[list(self.columns)].astype("string").apply(lambda s: s.str.strip())
        missing = values.isna().any(axis=1) | (values == "").any(axis=1)
        not_audited = {}
        if missing.any():
            not_audited[f"{MISSING_REASON}: {' or '.join(self.columns)}"] = int(missing.sum())
        kept = values.loc[~missing]
        text = None
        for c in self.columns:  # vectorised string building: one pass per column
            part = f"{c}=" + kept[c]
            text = part if text is None else text + ", " + part
        codes, uniques = pd.factorize(text if text is not None else pd.Series(dtype="string"), sort=True)
        names = [f"A{i + 1:02d}" for i in range(len(uniques))]
        assignment = pd.Series(pd.Categorical.from_codes(codes, names).astype(object) if len(uniques) else [],
                               index=pd.Index(speakers.loc[~missing, "speaker_id"].to_numpy(), name="speaker_id"),
                               dtype=object)
        code = dict(zip(uniques, names))
        return Discovery(assignment=assignment, labels={v: k for k, v in code.items()}, not_audited=not_audited,
                         params={"columns": list(self.columns), "min_speakers": self.min_speakers})
