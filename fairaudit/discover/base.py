"""The discoverer contract: the one small interface every cohort discoverer implements.

A discoverer is a scikit-learn-like estimator.  Its parameters are ``__init__`` keyword
arguments with defaults (the common ones, ``min_speakers`` and ``seed``, are forwarded to
the base with ``**common``); they are validated once, by one declarative validator
(:mod:`.params`, from the class's ``_parameter_constraints``), before the first ``fit``.
``fit(speakers, side)`` returns a :class:`Discovery`: which cohort each audited speaker is
in, a label per cohort, which speakers could not be audited and why.  Cohort statistics
(WER, rank, bottom/top, gap, share, intervals, p-values) are computed by the caller
through :mod:`fairaudit.cohorts`, never by the discoverer, so they are the same for all.

Everything specific to a discoverer lives with it: its search, parameters and their
constraints, the side inputs it needs (by name, :mod:`.sides`), the columns it reads that
are not speaker attributes, its planter for ``fairaudit power``/``selftest`` and its
report section.  The host iterates the registry and never branches on a discoverer's name,
so a new discoverer is one module in ``fairaudit/discover/`` decorated with
:func:`register`, or a separate package declaring an entry point in the group
``fairaudit.discoverers`` (see docs/plugins.md).
"""
from __future__ import annotations

import copy
import functools
import importlib.metadata
import inspect
import re
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import UserInputError
from .params import Interval, validate_params
from .sides import SIDE_INPUTS, SideInputs, side_input

if TYPE_CHECKING:  # pragma: no cover
    from .planting import Planter

__all__ = ["Discoverer", "Discovery", "NotEnoughData", "REGISTRY", "SideInputs", "register", "registry",
           "discoverer_class", "default_discoverers", "load_plugins", "non_attribute_columns", "wer_of",
           "ENTRY_POINT_GROUP", "COMMON_PARAMS"]

#: entry-point group third-party discoverers register in
ENTRY_POINT_GROUP = "fairaudit.discoverers"
#: parameters every discoverer has, set by the shared --min-speakers and --seed flags
COMMON_PARAMS = ("min_speakers", "seed")
_COMMON_CONSTRAINTS = {"min_speakers": [Interval(int, 1, None)], "seed": [Interval(int, 0, None)]}
_COMMON_FLAGS = {"min_speakers": "--min-speakers", "seed": "--seed"}
#: columns of every speaker table that are ids or counts, never speaker attributes
CORE_COLUMNS = ("speaker_id", "utterances", "ref_words", "hits", "substitutions", "deletions", "insertions",
                "errors", "wer")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Discovery:
    """What a discoverer found.

    ``assignment``: cohort id (str) per audited speaker, indexed by speaker_id.
    ``labels``: human-readable label per cohort id.
    ``not_audited``: reason -> number of speakers left out (count).
    ``params``: the parameters as used (JSON-able; e.g. the k that k="auto" chose).
    ``details``: discoverer-specific, JSON-able extras for the reports (region boxes,
    candidate rules, cluster descriptions, ...), keyed freely.
    ``cohort_details``: per cohort id, JSON-able extras merged into its row.
    ``definition``: JSON-able description of the cohorts that :meth:`Discoverer.assign`
    applies to other speakers (region tree, rule, centroids, values); saved in report.json.
    ``statistic`` / ``statistic_name``: the discoverer's own search statistic (e.g. a
    scan likelihood ratio) when its significance test should use it instead of the
    bottom-vs-top gap; the permutation null then compares this value across re-fits.
    ``entry_fields``: extra top-level fields of the report entry (e.g. geographic's
    ``approximate_coordinates``); they must be declared in the report schema.
    """

    assignment: pd.Series
    labels: dict[str, str]
    not_audited: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    cohort_details: dict[str, dict[str, Any]] = field(default_factory=dict)
    definition: dict[str, Any] | None = None
    statistic: float | None = None
    statistic_name: str | None = None
    entry_fields: dict[str, Any] = field(default_factory=dict)


class NotEnoughData(UserInputError):
    """The data are too small for this discoverer's settings: the audit lists it as skipped
    with this message instead of stopping (the other discoverers still run)."""


def _validating(fit):
    """Wrap a subclass's ``fit`` so parameters are validated before the first fit (and
    again only after they change): re-fits in the permutation null pay nothing."""

    @functools.wraps(fit)
    def wrapper(self, speakers, side, *args, **kwargs):
        self._ensure_valid()
        return fit(self, speakers, side, *args, **kwargs)

    wrapper._fairaudit_validating = True
    return wrapper


class Discoverer(ABC):
    """Base class of every discoverer: see the module docstring and docs/plugins.md."""

    #: registry key, report key and CLI prefix (--<name>-<param>): [a-z][a-z0-9_]*
    name: ClassVar[str] = ""
    #: report section title (default: the name)
    title: ClassVar[str] = ""
    #: one paragraph of method text for the report and docs
    description: ClassVar[str] = ""
    #: True when the cohorts do not depend on the error counts (known attributes, embedding
    #: clusters): the permutation null and the held-out gap re-measure the audit's cohorts
    #: instead of fitting again
    fixed_cohorts: ClassVar[bool] = False
    #: names of the side inputs it needs (see fairaudit.discover.sides), e.g. ("census",)
    side_inputs: ClassVar[tuple[str, ...]] = ()
    #: speaker-table columns it reads that are not speaker attributes (coordinates, zip):
    #: other discoverers (cluster descriptions, attribute trees) leave them out
    non_attribute_columns: ClassVar[tuple[str, ...]] = ()
    #: runs when the user does not pick discoverers (--discoverers); skipped with a reason
    #: when its inputs are missing
    default: ClassVar[bool] = False
    #: position among the discoverers in the report and in the default list
    order: ClassVar[int] = 100
    #: a repeatable list parameter: one instance per value of its flag instead of being
    #: chosen with --discoverers (the attribute discoverer: --by gender --by gender,age_band)
    instance_param: ClassVar[str | None] = None
    #: other spellings of a parameter's flag, kept working: {"k": ("--k",)}
    flag_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: declarative constraints per parameter (see fairaudit.discover.params)
    _parameter_constraints: ClassVar[dict[str, list]] = {}

    def __init__(self, min_speakers: int = 20, seed: int = 0):
        self.min_speakers = min_speakers
        self.seed = seed

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if fit is not None and not getattr(fit, "_fairaudit_validating", False) \
                and not getattr(fit, "__isabstractmethod__", False):
            cls.fit = _validating(fit)

    # ------------------------------------------------------------ parameters

    @classmethod
    def param_names(cls) -> list[str]:
        """The parameters of ``__init__`` (through ``**common`` forwarding), own ones first."""
        cached = cls.__dict__.get("_param_names_cache")
        if cached is not None:
            return list(cached)
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            forwards = False
            for p in list(inspect.signature(init).parameters.values())[1:]:
                if p.kind is inspect.Parameter.VAR_KEYWORD:
                    forwards = True
                elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                    raise TypeError(f"{cls.__name__}.__init__ must not take *args (scikit-learn convention)")
                elif p.name not in names:
                    names.append(p.name)
            if not forwards or klass is Discoverer:
                break
        cls._param_names_cache = tuple(names)
        return names

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Default value of each parameter, from the ``__init__`` signatures."""
        out: dict[str, Any] = {}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in list(inspect.signature(init).parameters.values())[1:]:
                if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                    out.setdefault(p.name, p.default)
            if klass is Discoverer:
                break
        return {k: out.get(k, inspect.Parameter.empty) for k in cls.param_names()}

    @classmethod
    def own_params(cls) -> list[str]:
        """Parameters other than the common ones: each gets a --<name>-<param> flag."""
        return [p for p in cls.param_names() if p not in COMMON_PARAMS]

    @classmethod
    def parameter_constraints(cls) -> dict[str, list]:
        """Constraints of every parameter: the common ones plus the class's own."""
        return {**_COMMON_CONSTRAINTS, **cls._parameter_constraints}

    @classmethod
    def flag(cls, param: str) -> str:
        """The CLI flag of a parameter: --min-speakers, --seed, or --<name>-<param>."""
        if param in _COMMON_FLAGS:
            return _COMMON_FLAGS[param]
        return f"--{cls.name.replace('_', '-')}-{param.replace('_', '-')}"

    @classmethod
    def flag_text(cls, param: str) -> str:
        """The flag with its aliases, for messages: '--geographic-max-regions (or --geo-max-regions)'."""
        aliases = tuple(cls.flag_aliases.get(param, ()))
        return cls.flag(param) + (f" (or {', '.join(aliases)})" if aliases else "")

    def get_params(self) -> dict[str, Any]:
        """The parameters (scikit-learn ``get_params``): one value per ``__init__`` argument."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> "Discoverer":
        """Set parameters by name (unknown names are a TypeError); returns self."""
        known = set(self.param_names())
        for name, value in params.items():
            if name not in known:
                raise TypeError(f"{type(self).__name__} has no parameter {name!r} (it has: {', '.join(sorted(known))})")
            setattr(self, name, value)
        return self

    def clone(self, **changes: Any) -> "Discoverer":
        """A new, unfitted discoverer with the same parameters (deep-copied), ``changes`` applied."""
        params = copy.deepcopy(self.get_params())
        params.update(changes)
        return type(self)(**params)

    def validate_params(self) -> None:
        """Check every parameter against :meth:`parameter_constraints`; a one-line
        UserInputError names the parameter, what is allowed and its CLI flag."""
        flags = {p: self.flag_text(p) for p in self.param_names()}
        validate_params(self.get_params(), self.parameter_constraints(), owner=f"{self.name} discoverer", flags=flags)

    def _ensure_valid(self) -> None:
        snapshot = self.get_params()
        try:
            same = self.__dict__.get("_validated_params") == snapshot
        except Exception:  # noqa: BLE001 - e.g. arrays as values: compare by validating again
            same = False
        if not same:
            self.validate_params()
            self.__dict__["_validated_params"] = copy.deepcopy(snapshot)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------ identity

    @property
    def key(self) -> str:
        """The key of this discoverer's entry in report.json (the name, unless several
        instances of it run, as with attribute:<columns>)."""
        return self.name

    def required_columns(self) -> list[str]:
        """Columns of the utterance table it needs as speaker attributes (default none)."""
        return []

    # ------------------------------------------------------------ the search

    @abstractmethod
    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        """Why this discoverer cannot run on these inputs (None if it can)."""

    @abstractmethod
    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        """Assign speakers to cohorts.

        ``speakers``: one row per speaker with ``speaker_id``, ``errors``, ``ref_words``
        (counts), ``utterances``, ``wer`` (ratio) and attribute columns.  Must not depend
        on row order and must be deterministic for a given ``seed``.  Discoverers that
        search for a worst split may use only ``errors``/``ref_words`` as outcome: the
        statistics layer re-runs ``fit`` on permuted counts and on subsets of speakers.
        """

    def missing_side_inputs(self, side: SideInputs) -> str | None:
        """The first declared side input that was not given, as a reason naming its flags."""
        for name in self.side_inputs:
            spec = side_input(name)
            if not side.has(name):
                flags = " ".join(f.flag for f in spec.flags if f.required)
                return f"no {spec.description or name} (pass {flags})"
        return None

    # ------------------------------------------------------------ optional hooks

    def annotate(self, discovery: Discovery, speakers: pd.DataFrame, side: SideInputs) -> None:
        """Add report-only extras to the audit's own discovery (called once per audit, never
        on the permutation or held-out re-fits): e.g. a map's speaker points.  Default: nothing."""

    def assign(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """Apply saved cohort definitions (``Discovery.definition``) to other speakers:
        cohort id per speaker_id (speakers it cannot place are left out).  Default: None =
        the definitions cannot be applied."""
        return None

    def assign_reasons(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """Why :meth:`assign` leaves speakers out: a reason (short text) per speaker_id it
        could not place, for ``fairaudit assign`` to count.  Default: None (the host then
        gives one generic reason)."""
        return None

    def permuted_statistics(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery,
                            takes: np.ndarray) -> dict | None:
        """Optional batched permutation null of the own statistic (``Discovery.statistic``).

        ``takes``: (B, rows of ``speakers``) indices; permutation b gives row i the count
        columns of row ``takes[b, i]`` (the audited rows shuffled among themselves).  Return
        ``{"statistics": (B,), "gaps_pct": (B,) or None, "gaps_abs": (B,) or None}``: what
        re-fitting on each permuted table would give as ``Discovery.statistic`` (and the
        headline gap, % and ratio), computed in one pass; or None to be re-fitted per
        permutation.  Default: None."""
        return None

    def refit_batch(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery, errors: np.ndarray,
                    words: np.ndarray) -> dict | None:
        """Optional: the cohorts B re-fits give, computed at once (``fairaudit power``).

        ``errors``/``words``: (B, rows of ``speakers``) counts replacing the table's
        ``errors``/``ref_words`` (every other column unchanged); ``discovery`` is this
        discoverer's fit on ``speakers``.  Only for a discoverer whose audited speakers do
        not depend on the counts.  Return ``{"codes": (B, len(discovery.assignment)) int
        array, "statistics": (B,) or None}``: per re-fit, each audited speaker's cohort
        (codes of a sorted factorize of the re-fit's cohort ids, speakers in
        ``discovery.assignment`` order) and ``Discovery.statistic`` (-inf when None); or
        None to be re-fitted one by one.  Default: None."""
        return None

    def heldout_folds(self, speakers: pd.DataFrame, side: SideInputs, in_train: np.ndarray) -> list | None:
        """Optional: the held-out gap's fits of every fold at once (:mod:`fairaudit.heldout`).

        ``in_train``: (folds, rows of ``speakers``) bool, the training rows of each fit.
        Return, per fold, what ``fit(speakers[in_train[f]])`` followed by :meth:`assign` of
        its definition to the other rows gives: ``(codes, cohort_ids)`` with ``codes`` one
        int per row of ``speakers`` (training rows: the fit's cohort, the others: the
        assigned one; -1 = not placed or a cohort the fit does not have) into
        ``cohort_ids`` (the fit's cohort ids, sorted), or None for a fold whose fit fails
        (:class:`NotEnoughData`); or None (the default) to fit and assign fold by fold."""
        return None

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> "Planter":
        """How ``fairaudit power``/``selftest`` plant a disparity this discoverer can
        express.  ``discovery`` is this discoverer's fit on ``speakers``; the planter draws
        positions into ``discovery.assignment`` (the audited speakers, in that order).
        Default: plant on one of its own cohorts (:class:`~.planting.CohortPlanter`)."""
        from .planting import CohortPlanter

        return CohortPlanter(discovery)

    def report_section(self, entry: dict, report: dict):
        """This discoverer's section of the HTML report (a
        :class:`fairaudit.reports.sections.ReportSection`: title, method text, facts,
        figures, tables), built from its report.json ``entry`` only.  Default: the generic
        section (title, description, scalar details as facts); the cohort table, bar chart,
        statistics and worst utterances are drawn for every discoverer."""
        from fairaudit.reports.sections import generic_section

        return generic_section(self, entry, report)


# ---------------------------------------------------------------- registry

REGISTRY: dict[str, type[Discoverer]] = {}
#: name -> {"package", "version", "entry_point"} of discoverers that came from entry points
PLUGINS: dict[str, dict[str, str]] = {}
_plugins_loaded = False


def register(cls: type[Discoverer]) -> type[Discoverer]:
    """Class decorator: make a discoverer available to the audit, the CLI and the reports."""
    if not (isinstance(cls, type) and issubclass(cls, Discoverer)):
        raise TypeError(f"{cls!r} is not a fairaudit.discover.Discoverer subclass")
    if not cls.name or not _NAME.match(cls.name):
        raise TypeError(f"{cls.__name__}.name must match [a-z][a-z0-9_]*, not {cls.name!r}")
    known = set(cls.param_names())
    unknown = [p for p in cls._parameter_constraints if p not in known]
    if unknown:
        raise TypeError(f"{cls.__name__}: constraints for {unknown} which are not __init__ parameters")
    if cls.instance_param is not None and cls.instance_param not in known:
        raise TypeError(f"{cls.__name__}.instance_param {cls.instance_param!r} is not an __init__ parameter")
    old = REGISTRY.get(cls.name)
    if old is not None and old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"two discoverers are named {cls.name!r}: {old.__module__}.{old.__qualname__} and "
                        f"{cls.__module__}.{cls.__qualname__}")
    REGISTRY[cls.name] = cls
    return cls


def load_plugins(refresh: bool = False) -> dict[str, dict[str, str]]:
    """Register the discoverers of installed packages (entry-point group
    ``fairaudit.discoverers``; each entry point names a Discoverer subclass or a module
    whose classes use :func:`register`).  Once per process unless ``refresh``.  A plugin
    that fails to load is reported as a warning and left out: fairaudit still runs."""
    global _plugins_loaded
    if _plugins_loaded and not refresh:
        return PLUGINS
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        before = set(REGISTRY)
        try:
            obj = ep.load()
            if isinstance(obj, type):
                if not issubclass(obj, Discoverer):
                    raise TypeError(f"{ep.value} is not a fairaudit.discover.Discoverer subclass")
                register(obj)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break fairaudit
            warnings.warn(f"fairaudit: the discoverer plugin {ep.name!r} ({ep.value}) did not load: {exc}",
                          RuntimeWarning, stacklevel=2)
            continue
        dist = getattr(ep, "dist", None)
        for name in (set(REGISTRY) - before) or {getattr(obj, "name", ep.name)}:
            if name in REGISTRY:
                PLUGINS[name] = {"package": dist.name if dist else "", "version": dist.version if dist else "",
                                 "entry_point": ep.value}
    return PLUGINS


def registry() -> dict[str, type[Discoverer]]:
    """Every registered discoverer (built-ins and plugins), in report order."""
    load_plugins()
    return dict(sorted(REGISTRY.items(), key=lambda kv: (kv[1].order, kv[0])))


def discoverer_class(name: str) -> type[Discoverer]:
    """The registered class of ``name``, or a one-line UserInputError listing the choices."""
    reg = registry()
    if name not in reg:
        choices = ", ".join(n for n, c in reg.items() if c.instance_param is None)
        raise UserInputError(f"unknown discoverer {name!r}", hint=f"choose from: {choices}")
    return reg[name]


def default_discoverers() -> list[str]:
    """Names of the discoverers that run when the user does not choose (report order)."""
    return [n for n, c in registry().items() if c.default and c.instance_param is None]


def non_attribute_columns() -> frozenset[str]:
    """Speaker-table columns that are ids, counts, coordinates or other discoverer inputs,
    never speaker attributes: the core columns plus what every registered discoverer and
    side input declares."""
    cols = set(CORE_COLUMNS)
    for cls in registry().values():
        cols.update(cls.non_attribute_columns)
    for spec in SIDE_INPUTS.values():
        cols.update(spec.non_attribute_columns)
    return frozenset(cols)


def wer_of(errors: np.ndarray, words: np.ndarray) -> float:
    """Micro WER (ratio) of a set: sum(errors) / sum(words); NaN when there are no words."""
    w = float(np.sum(words))
    return float(np.sum(errors)) / w if w > 0 else float("nan")
