"""Cohort discoverers: the contract (base.py), one module per discoverer, plugins.

Built-in discoverers register themselves (``@register``) when their module is imported:
every module of this package is imported here, so a new built-in discoverer is one new
file.  Third-party discoverers come from the entry-point group ``fairaudit.discoverers``
(:func:`load_plugins`, called by :func:`registry`).  See docs/plugins.md.
"""
import importlib
import pkgutil

from .base import (COMMON_PARAMS, ENTRY_POINT_GROUP, PLUGINS, REGISTRY, Discoverer, Discovery, NotEnoughData, SideInputs,
                   default_discoverers, discoverer_class, load_plugins, non_attribute_columns, register, registry)
from .params import Interval, Options
from .sides import SideFlag, SideInput, load_side_inputs, register_side_input

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["COMMON_PARAMS", "ENTRY_POINT_GROUP", "PLUGINS", "REGISTRY", "Discoverer", "Discovery", "Interval", "NotEnoughData",
           "Options", "SideFlag", "SideInput", "SideInputs", "default_discoverers", "discoverer_class",
           "load_plugins", "load_side_inputs", "non_attribute_columns", "register", "register_side_input",
           "registry"]
