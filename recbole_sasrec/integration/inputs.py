"""What a user writes, read as RecBole would without its faults: command-line values typed
without ``eval``, ``--key=value`` arguments, numpy numbers as Python's, and the list of
configuration files."""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.keys import ConfigError


def parse_value(text: str) -> Any:
    """A command-line value as RecBole types it, without running it: a Python literal
    (``32``, ``0.2``, ``[10, 20]``, ``{'mode': 'uni100'}``, ``None``), ``true``/``false`` in
    any case, else the text itself (RecBole ``eval``s the text, so ``--output=int.result``
    raised AttributeError and ``--x=__import__(...)`` ran)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.lower()
        return True if lowered == "true" else False if lowered == "false" else text


def parse_command_line(args: Sequence[str]) -> dict[str, Any]:
    """``--key=value`` arguments -> {key: value}; ``ConfigError`` for any other argument, and for
    a key given twice with different values."""
    parsed: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep or not key:
            raise ConfigError(
                f"command line argument {arg!r} is not of the form --key=value; allowed: "
                f"--key=value with no spaces around '=' (e.g. --n_layers=3)"
            )
        value = parse_value(value)
        if key in parsed and parsed[key] != value:
            raise ConfigError(f"--{key} is given twice, as {parsed[key]!r} and {value!r}")
        parsed[key] = value
    return parsed


def plain_numbers(value: Any) -> Any:
    """``value`` with numpy scalars as Python's (``np.int64(2)`` -> ``2``), inside lists, tuples
    and dicts too: numpy integers are integers (an int check would refuse them), and a numpy
    float that is a whole number stays a float (refused where an int is asked)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(plain_numbers(v) for v in value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    return value


def config_file_names(file_list: Any) -> list[str]:
    """``config_file_list`` as a list of paths: one path (a string) is one file, never a list of
    its characters; anything but paths is refused."""
    if file_list is None:
        return []
    if isinstance(file_list, (str, os.PathLike)):
        return [os.fspath(file_list)]
    if not isinstance(file_list, (list, tuple)) or not all(
        isinstance(f, (str, os.PathLike)) for f in file_list
    ):
        raise ConfigError(
            f"config_file_list={file_list!r} must be a list of yaml file paths, e.g. "
            f"['a.yaml', 'b.yaml']"
        )
    return [os.fspath(f) for f in file_list]
