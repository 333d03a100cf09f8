"""The search space: a params file in RecBole's format, parsed and checked line by line.

One key per line::

    learning_rate choice [0.01, 0.001]      # the values themselves
    hidden_dropout_prob uniform 0.1,0.5     # a float in [low, high]
    n_layers quniform 1,3,1                 # round(uniform(low, high) / q) * q
    learning_rate loguniform -9.2,-4.6      # exp(uniform(log_low, log_high)): NATURAL-LOG bounds

Blank lines and lines starting with ``#`` are skipped; any other line that does not parse is an
error. Before the first trial every key is checked against the keys the model and RecBole read
(``integration.known_keys.check_keys``), so a typo or a key of another model cannot turn into a
silent no-op. A ``quniform`` line whose low, high and q are all written as integers yields ints
(hyperopt and Tune would give 2.0, which ``n_layers`` or ``n_heads`` cannot take).
"""

from __future__ import annotations

import ast
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.keys import ConfigError
from ..integration.known_keys import check_keys
from ..integration.registry import get_model

KINDS = ("choice", "uniform", "quniform", "loguniform")
FORMS = (
    "'<key> choice [v1, v2, ...]', '<key> uniform low,high', '<key> quniform low,high,q', "
    "'<key> loguniform log_low,log_high' (natural-log bounds)"
)


@dataclass(frozen=True)
class Param:
    """One line of a params file: ``key kind args``.

    ``args``: the values (choice), ``(low, high)`` (uniform; loguniform in natural-log units) or
    ``(low, high, q)`` (quniform; ints when all three are written as integers).
    """

    key: str
    kind: str
    args: tuple
    line_no: int
    line: str

    @property
    def where(self) -> str:
        return f"line {self.line_no} {self.line!r}"

    def grid(self) -> list | None:
        """Every value this line can take, or None for a continuous range."""
        if self.kind == "choice":
            return list(self.args)
        if self.kind == "quniform":
            low, high, q = self.args
            # hyperopt: round(uniform(low, high) / q) * q, so these multiples of q and no others
            steps = range(round(low / q), round(high / q) + 1)
            return [k * q for k in steps]
        return None

    def hyperopt(self):
        """The hyperopt expression of this line."""
        from hyperopt import hp
        from hyperopt.pyll import scope

        if self.kind == "choice":
            return hp.choice(self.key, list(self.args))
        if self.kind == "uniform":
            return hp.uniform(self.key, *self.args)
        if self.kind == "loguniform":
            return hp.loguniform(self.key, *self.args)
        expression = hp.quniform(self.key, *self.args)
        return scope.int(expression) if isinstance(self.args[0], int) else expression

    def tune(self, grid: bool = False):
        """The Ray Tune domain of this line (``tune.grid_search`` over ``grid()`` if ``grid``)."""
        from ray import tune

        if grid:
            return tune.grid_search(self.grid())
        if self.kind == "choice":
            return tune.choice(list(self.args))
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "loguniform":
            low, high = self.args  # hyperopt's bounds are logs; Tune's are the values
            return tune.loguniform(math.exp(low), math.exp(high))
        if isinstance(self.args[0], int):
            return tune.qrandint(*self.args)
        return tune.quniform(*self.args)


def _parse_number(text: str) -> int | float:
    """An int when written as one (``2``), else a float (``2.0``, ``1e-3``)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parse_line(line: str) -> tuple[str, str, tuple]:
    """``(key, kind, args)`` of one non-blank line; ValueError with the reason otherwise."""
    parts = line.split(None, 2)
    if len(parts) < 3:
        raise ValueError("expected '<key> <kind> <values>'")
    key, kind, text = parts
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    if kind == "choice":
        try:
            values = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{text!r} is not a Python list literal") from None
        if not isinstance(values, list) or not values:
            raise ValueError(f"{text!r} is not a non-empty list such as [1, 2]")
        return key, kind, tuple(values)
    fields = text.replace(" ", "").split(",")
    expected = 3 if kind == "quniform" else 2
    if len(fields) != expected:
        raise ValueError(f"{kind} takes {expected} comma-separated numbers, got {text!r}")
    try:
        numbers = tuple(_parse_number(f) for f in fields)
    except ValueError:
        raise ValueError(f"{text!r} are not all numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise ValueError(f"{text!r}: bounds must be finite")
    if not numbers[0] < numbers[1]:
        raise ValueError(f"low={numbers[0]} must be smaller than high={numbers[1]}")
    if kind == "quniform" and not numbers[2] > 0:
        raise ValueError(f"q={numbers[2]} must be > 0")
    if kind != "quniform" or not all(isinstance(n, int) for n in numbers):
        numbers = tuple(float(n) for n in numbers)  # only an all-integer quniform stays int
    return key, kind, numbers


def parse_params_file(path: str | os.PathLike) -> list[Param]:
    """The lines of a params file, in order; ``ConfigError`` naming the file, line and reason
    for a line that does not parse or a key given twice."""
    params: list[Param] = []
    seen: dict[str, Param] = {}
    text = Path(path).read_text(encoding="utf-8")
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key, kind, args = _parse_line(line)
        except ValueError as error:
            raise ConfigError(
                f"{path}: line {line_no} {line!r}: {error}; allowed: {FORMS}"
            ) from None
        param = Param(key, kind, args, line_no, line)
        if key in seen:
            raise ConfigError(
                f"{path}: {param.where}: {key!r} is already tuned by {seen[key].where}; "
                f"allowed: one line per key"
            )
        seen[key] = param
        params.append(param)
    if not params:
        raise ConfigError(f"{path}: no parameter to tune; allowed lines: {FORMS}")
    return params


def load_search_space(params_file: str | os.PathLike, model: str | type) -> list[Param]:
    """Parse ``params_file`` and check every key against ``model`` (a name or a class)."""
    model_class = get_model(model)
    params = parse_params_file(params_file)
    by_key = {p.key: p for p in params}
    sample = {p.key: (p.grid() or list(p.args))[0] for p in params}
    check_keys(sample, model_class, where=lambda key: f"{params_file}: {by_key[key].where}")
    return params
