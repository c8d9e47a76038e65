"""The one small interface every cohort discoverer implements.

A discoverer is an estimator-like object (scikit-learn style): parameters in
``__init__``, validated in :meth:`Discoverer.fit`; ``fit`` takes the per-speaker table
(plus optional side inputs) and returns a :class:`Discovery`: which cohort each audited
speaker is in, a human-readable label per cohort, and which speakers could not be audited
and why.  Cohort statistics (WER, gap, share, confidence intervals) are computed by the
caller from the assignment, never by the discoverer, so they are the same for all.

Adding a discoverer = one new module in ``fairaudit/discover/`` that defines a subclass
with a ``name`` and decorates it with :func:`register`; nothing else changes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import UserInputError


@dataclass
class SideInputs:
    """Inputs beyond the per-speaker table that some discoverers need.

    ``census``: census table indexed by 5-digit zip (str), numeric columns.
    ``embeddings``: float matrix, one row per id in ``embedding_ids`` (speaker ids).
    """

    census: pd.DataFrame | None = None
    census_path: str | None = None
    embeddings: np.ndarray | None = None
    embedding_ids: np.ndarray | None = None
    embeddings_path: str | None = None


@dataclass
class Discovery:
    """What a discoverer found.

    ``assignment``: cohort id (str) per audited speaker, indexed by speaker_id.
    ``labels``: human-readable label per cohort id.
    ``not_audited``: reason -> number of speakers left out (count).
    ``details``: discoverer-specific, JSON-serialisable extras for the reports (region
    boxes, candidate rules, cluster descriptions, ...), keyed freely.
    ``cohort_details``: per cohort id, JSON-serialisable extras merged into its row.
    """

    assignment: pd.Series
    labels: dict[str, str]
    not_audited: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    cohort_details: dict[str, dict[str, Any]] = field(default_factory=dict)


class Discoverer(ABC):
    """Base class: see module docstring."""

    #: key in report.json (``geographic``, ``geodemographic``, ``automatic``, ...)
    name: ClassVar[str] = ""
    #: True when the cohorts do not depend on the error counts (known attributes, embedding
    #: clusters): the permutation null then fits once instead of once per permutation.
    fixed_cohorts: ClassVar[bool] = False

    def __init__(self, min_speakers: int = 20, seed: int = 0):
        self.min_speakers = min_speakers
        self.seed = seed

    @property
    def key(self) -> str:
        """The key of this discoverer's entry in report.json."""
        return self.name

    @abstractmethod
    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        """Why this discoverer cannot run on these inputs (None if it can)."""

    @abstractmethod
    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        """Assign speakers to cohorts.

        ``speakers``: one row per speaker with ``speaker_id``, ``errors``, ``ref_words``
        (counts), ``wer`` (ratio) and attribute columns.  Must not depend on row order
        beyond ``seed`` and must be deterministic for a given ``seed``.  Discoverers that
        search for a worst split may use only ``errors``/``ref_words`` of the table
        passed in: the statistics layer re-runs ``fit`` on permuted or held-out counts.
        """

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class NotEnoughData(UserInputError):
    """The data are too small for this discoverer's settings: the audit lists it as skipped
    with this message instead of stopping (the other discoverers still run)."""


REGISTRY: dict[str, type[Discoverer]] = {}


def register(cls: type[Discoverer]) -> type[Discoverer]:
    """Class decorator: make a discoverer available to ``audit`` by its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a name")
    REGISTRY[cls.name] = cls
    return cls


def check_int(value: Any, name: str, flag: str, minimum: int, who: str) -> int:
    """A whole-number parameter >= ``minimum``, or a one-line UserInputError naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserInputError(f"{who} discoverer: {name} must be an integer >= {minimum}, not {value!r}",
                             hint=f"pass {flag} N with N >= {minimum}")
    return int(value)


def wer_of(errors: np.ndarray, words: np.ndarray) -> float:
    """Micro WER (ratio) of a set: sum(errors) / sum(words); NaN when there are no words."""
    w = float(np.sum(words))
    return float(np.sum(errors)) / w if w > 0 else float("nan")
