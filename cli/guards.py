"""What every command checks on entry, before any work starts.

:func:`checked` wraps a command (inside :func:`~fairaudit.cli.common.user_errors`, so
its refusals are one line and exit code 2):

* the numbers it was given: ``--seed`` (0 .. 2**32 - 1), ``--workers`` (>= 1),
  ``--bootstrap``/``--permutations``/``--simulations``/``--resamples`` (ceilings in
  :mod:`fairaudit.limits`);
* ``--out``: a folder is checked, locked and written through a staging folder
  (:class:`fairaudit.outputs.OutputFolder`: the command receives the staging folder as
  ``out``, and :func:`fairaudit.outputs.shown` gives back the name to print); a file is
  checked only;
* ``--encoding``: added to the command, the encoding of every text input of the run.
"""
from __future__ import annotations

import functools
import inspect
from typing import Annotated, Optional

import click
import typer

from fairaudit import limits
from fairaudit.io import text_files
from fairaudit.outputs import OutputFolder, check_out_file

#: the exceptions that end a command on purpose (typer's own and click's)
_EXITS = (typer.Exit, click.exceptions.Exit)

Encoding = Annotated[Optional[str], typer.Option(
    "--encoding", help="Text encoding of every input file (utterances, Kaldi/trn, speaker and census tables, "
                       "embedding ids) [default: utf-8]; e.g. latin-1, cp1252, utf-16.", show_default=False)]


def check_options(values: dict) -> None:
    """Refuse out-of-range seeds, worker counts and resample counts (one line each)."""
    if values.get("seed") is not None:
        limits.check_seed(values["seed"])
    limits.check_workers(values.get("workers"))
    for name, (flag, ceiling) in limits.RESAMPLE_OPTIONS.items():
        if values.get(name) is not None:
            limits.check_count(values[name], flag, ceiling)


def checked(out: str | None = "dir", *, encoding: bool = True):
    """Decorator: the entry checks above; ``out`` says what ``--out`` names ("dir",
    "file" or None), ``encoding`` whether the command reads text inputs (adds ``--encoding``)."""

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)
        params = list(sig.parameters.values())
        if encoding:
            params.append(inspect.Parameter("encoding", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                            annotation=Encoding))

        @functools.wraps(fn)
        def wrapper(**kwargs):
            enc = text_files.check_encoding(kwargs.pop("encoding", None))
            check_options(kwargs)
            target = kwargs.get("out")
            if target and out == "file":
                check_out_file(target)
            with text_files.input_encoding(enc):
                if not (target and out == "dir"):
                    return fn(**kwargs)
                # typer.Exit ends a run that wrote all its outputs (a failed gate's exit 1):
                # the outputs are kept, then the exit goes on.
                ended = None
                with OutputFolder(target) as staging:
                    try:
                        result = fn(**{**kwargs, "out": staging})
                    except _EXITS as exc:
                        ended = exc
                if ended is not None:
                    raise ended
                return result

        wrapper.__signature__ = sig.replace(parameters=params)
        return wrapper

    return decorate
