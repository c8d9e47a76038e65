"""Declarative parameter constraints (scikit-learn's ``_parameter_constraints`` style).

A discoverer declares, per ``__init__`` parameter, the list of things a valid value may
be; a value is valid when it satisfies at least one of them::

    _parameter_constraints = {
        "max_regions": [Interval(int, 1, None)],
        "criterion": [Options(str, {"difference", "z"})],
        "k": [Interval(int, 2, None), Options(str, {"auto"})],
        "columns": [list, None],
    }

Constraints: :class:`Interval` (int or float, bounds inclusive by default), :class:`Options`
(a fixed set of values), a Python type (``str``, ``bool``, ``list``, ``dict``, ...;
``bool`` never passes for a number and a number never passes for ``bool``) and ``None``.

:func:`validate_params` checks a dict of values and raises one
:class:`~fairaudit.errors.UserInputError` naming the parameter, the allowed values and the
command-line flag that sets it.  The same table tells the CLI how to parse a flag's text
(:func:`parse_cli`) and what metavar to show (:func:`metavar`), so flags are generated
from it (:mod:`fairaudit.cli.common`).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np

from ..errors import UserInputError

__all__ = ["Interval", "Options", "Constraint", "validate_params", "check", "parse_cli", "metavar",
           "is_flag_only"]


class Constraint:
    """One acceptable form of a parameter value."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The value a command-line text stands for under this constraint (ValueError if none)."""
        raise ValueError(text)

    #: how the CLI names a value of this form (--help metavar)
    metavar = "VALUE"


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


class Interval(Constraint):
    """A number of ``type`` (int or float) between ``left`` and ``right`` (None = unbounded).

    ``closed``: "both" (default), "left", "right" or "neither".  A float interval accepts
    integers too, never NaN; an int interval accepts only whole-number types (not 2.0).
    """

    def __init__(self, type: type, left: float | None, right: float | None, closed: str = "both"):
        if type not in (int, float, numbers.Integral, numbers.Real):
            raise TypeError(f"Interval type must be int or float, not {type!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be both/left/right/neither, not {closed!r}")
        self.type = int if type in (int, numbers.Integral) else float
        self.left, self.right, self.closed = left, right, closed
        self.metavar = "INTEGER" if self.type is int else "NUMBER"

    def is_satisfied_by(self, value: Any) -> bool:
        if not (_is_int(value) if self.type is int else _is_real(value)):
            return False
        v = float(value)
        if math.isnan(v):
            return False
        if self.left is not None:
            if v < self.left or (v == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if v > self.right or (v == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def parse(self, text: str) -> Any:
        return int(text) if self.type is int else float(text)

    def __str__(self) -> str:
        what = "an integer" if self.type is int else "a number"
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.left is not None and self.right is not None:
            return f"{what} in {'[' if lo_in else '('}{self.left:g}, {self.right:g}{']' if hi_in else ')'}"
        if self.left is not None:
            return f"{what} {'>=' if lo_in else '>'} {self.left:g}"
        if self.right is not None:
            return f"{what} {'<=' if hi_in else '<'} {self.right:g}"
        return what


class Options(Constraint):
    """One of a fixed set of values of ``type`` (e.g. ``Options(str, {"difference", "z"})``)."""

    def __init__(self, type: type, options: Iterable[Any]):
        self.type = type
        self.options = sorted(options, key=str)
        self.metavar = "|".join(map(str, self.options))

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.type) and value in self.options

    def parse(self, text: str) -> Any:
        value = self.type(text)
        if value not in self.options:
            raise ValueError(text)
        return value

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


class _Type(Constraint):
    _NAMES = {str: "a string", bool: "True or False", list: "a list", dict: "a mapping", tuple: "a list"}

    def __init__(self, type: type):
        self.type = type
        self.metavar = {str: "TEXT", list: "A,B,...", tuple: "A,B,..."}.get(type, "VALUE")

    def is_satisfied_by(self, value: Any) -> bool:
        if self.type is bool:
            return isinstance(value, (bool, np.bool_))
        if self.type in (list, tuple):
            return isinstance(value, (list, tuple))
        if self.type in (int, float):
            return (_is_int if self.type is int else _is_real)(value)
        return isinstance(value, self.type)

    def parse(self, text: str) -> Any:
        if self.type is bool:
            low = text.strip().lower()
            if low in ("true", "yes", "1"):
                return True
            if low in ("false", "no", "0"):
                return False
            raise ValueError(text)
        if self.type in (list, tuple):
            return [t.strip() for t in text.split(",") if t.strip()]
        if self.type in (int, float, str):
            return self.type(text)
        raise ValueError(text)

    def __str__(self) -> str:
        return self._NAMES.get(self.type, f"a {self.type.__name__}")


class _NoneConstraint(Constraint):
    metavar = "NONE"

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


def make_constraint(c: Any) -> Constraint:
    """A Constraint from a declaration: a Constraint, a type, or None."""
    if isinstance(c, Constraint):
        return c
    if c is None:
        return _NoneConstraint()
    if isinstance(c, type):
        return _Type(c)
    raise TypeError(f"unknown parameter constraint {c!r}")


def _constraints(decl: Iterable[Any]) -> list[Constraint]:
    return [make_constraint(c) for c in decl]


def describe(decl: Iterable[Any]) -> str:
    """'an integer >= 2 or one of 'auto'': what a value may be, for messages and --help."""
    return " or ".join(str(c) for c in _constraints(decl))


def check(value: Any, decl: Iterable[Any], *, name: str, flag: str | None = None, owner: str | None = None) -> Any:
    """``value`` if it satisfies one constraint of ``decl``, else a one-line UserInputError
    naming ``name``, what is allowed and ``flag`` (the CLI option to fix).  Returns ``value``."""
    cons = _constraints(decl)
    if any(c.is_satisfied_by(value) for c in cons):
        return value
    who = f"{owner}: " if owner else ""
    raise UserInputError(f"{who}{name} must be {describe(decl)}, not {value!r}",
                         hint=f"fix {flag}" if flag else None)


def validate_params(params: dict[str, Any], constraints: dict[str, list], *, owner: str,
                    flags: dict[str, str] | None = None) -> None:
    """Check every value of ``params`` that has constraints; the first invalid one raises a
    UserInputError naming ``owner`` (e.g. "geographic discoverer"), the parameter and its
    flag (``flags[name]``, e.g. "--geographic-max-regions (alias --geo-max-regions)")."""
    flags = flags or {}
    for name, decl in constraints.items():
        if name in params:
            check(params[name], decl, name=name, flag=flags.get(name), owner=owner)


def parse_cli(text: str, decl: Iterable[Any]) -> Any:
    """The value a flag's text stands for: the first constraint that parses it into a valid
    value wins ("10" -> 10 for ``[Interval(int, 2, None), Options(str, {"auto"})]``,
    "auto" -> "auto"); if none does, the first parse that succeeds (or the text) is
    returned so that :func:`validate_params` gives the one-line error."""
    first: Any = text
    found = False
    for c in _constraints(decl):
        try:
            value = c.parse(text)
        except (ValueError, TypeError):
            continue
        if c.is_satisfied_by(value):
            return value
        if not found:
            first, found = value, True
    return first


def metavar(decl: Iterable[Any]) -> str:
    """The --help metavar of a flag: 'INTEGER', 'difference|z', 'INTEGER|auto', 'A,B,...'."""
    parts = [c.metavar for c in _constraints(decl) if not isinstance(c, _NoneConstraint)]
    return "|".join(dict.fromkeys(parts)) or "VALUE"


def is_flag_only(decl: Iterable[Any]) -> bool:
    """True when the only non-None form is a boolean: the CLI gives it a flag pair (on, off)."""
    cons = [c for c in _constraints(decl) if not isinstance(c, _NoneConstraint)]
    return bool(cons) and all(isinstance(c, _Type) and c.type is bool for c in cons)
