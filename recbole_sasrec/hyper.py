"""Hyper-parameter tuning with hyperopt (RecBole's ``HyperTuning``) or Ray Tune.

A search is described by a params file in RecBole's format, one key per line::

    learning_rate choice [0.01, 0.001]      # the values themselves
    hidden_dropout_prob uniform 0.1,0.5     # a float in [low, high]
    n_layers quniform 1,3,1                 # round(uniform(low, high) / q) * q
    learning_rate loguniform -9.2,-4.6      # exp(uniform(log_low, log_high)): NATURAL-LOG bounds

Blank lines and lines starting with ``#`` are skipped; any other line that does not parse is an
error. Before the first trial every key is checked against the keys the model and RecBole read
(``check_keys``), so a typo or a key of another model cannot turn into a silent no-op.

What differs from RecBole's ``run_hyper.py``, and why:
  * trials build our ``Config``, ``create_dataset``, model and trainer: RecBole's
    ``objective_function`` resolves ``SASRec``/``LightSANs`` to its own built-in models;
  * the hyperopt exhaustive search is ``ExhaustiveSearch``: RecBole's draws from
    ``np.random.RandomState``, which hyperopt >= 0.2.7 calls ``.integers`` on (RecBole issues
    1081, 1240). Ours visits every grid point once (``quniform`` lines included, which RecBole's
    grid size leaves out) in a seeded random order, so a search cut short by ``max_evals`` or
    ``early_stop`` still spreads over the whole grid;
  * every search is seeded by the configuration's ``seed`` (RecBole's fmin draws an unseeded one):
    the same command proposes the same trials;
  * a ``quniform`` line whose low, high and q are all written as integers yields ints (hyperopt
    and Tune would give 2.0, which ``n_layers`` or ``n_heads`` cannot take);
  * the output file lists every trial in order, repeated parameters included (RecBole keys its
    results by the parameter string, so a repeated draw overwrites the earlier one);
  * Ray trials report validation metrics after every epoch, so ASHA can stop bad trials early
    (RecBole's objective reports once, after training: RecBole issue 1819); resources per trial
    come from the caller (RecBole hard-codes one GPU per trial).
"""

from __future__ import annotations

import ast
import difflib
import functools
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import recbole
import yaml
from recbole.trainer.hyper_tuning import HyperTuning
from recbole.utils import argument_list, init_logger
from recbole.utils.utils import dict2str

from .checks import ConfigError
from .config import BUILTIN_PREFIX, MODELS, Config, get_model, is_ours
from .quick_start import prepare
from .trainer import get_trainer

KINDS = ("choice", "uniform", "quniform", "loguniform")
ALGOS = ("exhaustive", "random", "bayes")
FORMS = (
    "'<key> choice [v1, v2, ...]', '<key> uniform low,high', '<key> quniform low,high,q', "
    "'<key> loguniform log_low,log_high' (natural-log bounds)"
)
DEFAULT_OUTPUT_FILE = "hyper_example.result"  # RecBole's run_hyper.py default
DEFAULT_MAX_EVALS = 100  # RecBole's run_hyper.py: hyperopt random/bayes budget
DEFAULT_EARLY_STOP = 10  # RecBole's run_hyper.py: stop after 10 trials without improvement
DEFAULT_NUM_SAMPLES = 100  # Ray random/bayes: the same budget as hyperopt's max_evals


# ---- the params file ----------------------------------------------------------------------
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


# ---- which keys exist ---------------------------------------------------------------------
def _yaml_keys(path: str | os.PathLike) -> set[str]:
    if not os.path.isfile(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return set(yaml.safe_load(f) or {})


@functools.cache
def recbole_keys() -> frozenset[str]:
    """Keys RecBole itself reads for any model: its general, training, evaluation and dataset
    arguments (``recbole/utils/argument_list.py``) and ``recbole/properties/overall.yaml``
    (which adds trainer keys such as ``enable_amp``, ``shuffle``, ``worker``)."""
    lists = (
        argument_list.general_arguments
        + argument_list.training_arguments
        + argument_list.evaluation_arguments
        + argument_list.dataset_arguments
    )
    overall = Path(recbole.__file__).parent / "properties" / "overall.yaml"
    return frozenset(lists) | _yaml_keys(overall)


def model_keys(model_class: type) -> set[str]:
    """The keys of the model's own property file: ours, or RecBole's ``<Name>.yaml``."""
    if is_ours(model_class):
        return _yaml_keys(model_class.properties_file())
    path = Path(recbole.__file__).parent / "properties" / "model" / f"{model_class.__name__}.yaml"
    return _yaml_keys(path)


def _is_alias(model_class: type, key: str, value: Any) -> bool:
    """Whether our model accepts ``key`` as another name of one of its keys (LightSANs'
    ``num_layers``): its ``resolve_aliases`` then writes a key into the final configuration."""
    if not is_ours(model_class):
        return False
    final: dict[str, Any] = {}
    try:
        model_class.resolve_aliases(final, {key: value})
    except ConfigError:
        return True  # it recognised the key (and disliked the value, which a trial will report)
    return bool(final)


def check_keys(
    keys: dict[str, Any], model: str, where: Callable[[str], str] = lambda key: repr(key)
) -> None:
    """``ConfigError`` for the first key that neither ``model`` nor RecBole reads.

    ``keys`` maps each key to a sample value (for the alias probe); ``where(key)`` says where
    the key was given (file and line, or the command line).
    """
    model_class = get_model(model)
    own = model_keys(model_class)
    known = own | recbole_keys()
    for key, value in keys.items():
        if key in known or _is_alias(model_class, key, value):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where(key)}: {key!r} is not a key {model} or RecBole's trainer reads{hint} "
            f"Allowed: {model}'s keys ({', '.join(sorted(own))}) and aliases it accepts, and "
            f"RecBole's general, training, evaluation and dataset keys "
            f"(recbole/utils/argument_list.py, recbole/properties/overall.yaml)"
        )


def load_search_space(params_file: str | os.PathLike, model: str) -> list[Param]:
    """Parse ``params_file`` and check every key against ``model`` (see ``check_keys``)."""
    params = parse_params_file(params_file)
    by_key = {p.key: p for p in params}
    sample = {p.key: (p.grid() or list(p.args))[0] for p in params}
    check_keys(sample, model, where=lambda key: f"{params_file}: {by_key[key].where}")
    return params


# ---- which model --------------------------------------------------------------------------
def infer_model(params_file: str | os.PathLike) -> str | None:
    """The model a params file is for, from its name: ``hyper/sasrec.test`` -> ``SASRec``
    (file stem matched case-insensitively against this package's models); None if no match."""
    stem = Path(params_file).stem.lower()
    return next((name for name in MODELS if name.lower() == stem), None)


def resolve_model(params_file: str | os.PathLike, model: str | None) -> str:
    """The model to tune: ``model`` if given, else the one the file name names. ``ConfigError``
    if neither names one, or if both do and they disagree (never silently the wrong model)."""
    inferred = infer_model(params_file)
    if model is None:
        if inferred is None:
            stems = ", ".join(f"{name.lower()}.test" for name in MODELS)
            raise ConfigError(
                f"params_file={str(params_file)!r} does not name a model of recbole_sasrec, and "
                f"no model was given; allowed: a file named like {stems} (-> "
                f"{', '.join(MODELS)}), or --model=<name>"
            )
        return inferred
    get_model(model)  # ConfigError for an unknown name
    if inferred is not None and model != inferred:
        raise ConfigError(
            f"model={model!r} disagrees with params_file={str(params_file)!r}, which is "
            f"{inferred}'s search space; allowed: model={inferred!r} or no model, or a params "
            f"file not named after another model (e.g. {BUILTIN_PREFIX}SASRec needs a copy of "
            f"the file under another name)"
        )
    return model


# ---- one trial ----------------------------------------------------------------------------
class EpochReportingMixin:
    """Calls ``epoch_reporter`` with each validation's metrics, so that a scheduler (Ray Tune's
    ASHA) can stop a bad trial after any epoch instead of only seeing its final result."""

    epoch_reporter: Callable[[dict[str, Any]], None] | None = None
    validations = 0

    def _valid_epoch(self, valid_data, *args, **kwargs):
        valid_score, valid_result = super()._valid_epoch(valid_data, *args, **kwargs)
        if self.epoch_reporter is not None:
            self.validations += 1
            self.epoch_reporter(
                # "validation" is ASHA's clock; the final report leaves it out (see run_ray)
                {"validation": self.validations, **_tune_metrics(valid_score, valid_result)}
            )
        return valid_score, valid_result


@functools.cache
def reporting_trainer(model_type, model_name: str) -> type:
    """Our ``get_trainer`` class for the model, reporting after every validation."""
    base = get_trainer(model_type, model_name)
    return type(base.__name__, (EpochReportingMixin, base), {"__module__": __name__})


def _tune_metrics(valid_score: float, valid_result: dict, test_result: dict | None = None) -> dict:
    metrics = {"valid_score": float(valid_score)}
    metrics.update({f"valid_{k}": float(v) for k, v in valid_result.items()})
    metrics.update({f"test_{k}": float(v) for k, v in (test_result or {}).items()})
    return metrics


def objective_function(
    config_dict: dict[str, Any] | None = None,
    config_file_list: list[str] | None = None,
    saved: bool = True,
    *,
    model: str,
    dataset: str,
    fixed_config: dict[str, Any] | None = None,
    epoch_reporter: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train and test one trial: RecBole's ``objective_function`` with our model resolution.

    ``config_dict`` (the trial's parameters) overrides ``fixed_config``, which overrides
    ``config_file_list``. ``epoch_reporter`` receives the validation metrics after every
    validation. Returns RecBole's dictionary: ``model``, ``best_valid_score``,
    ``valid_score_bigger``, ``best_valid_result``, ``test_result``.
    """
    config = Config(
        model=model,
        dataset=dataset,
        config_file_list=config_file_list,
        config_dict={**(fixed_config or {}), **(config_dict or {})},
    )
    # init_logger calls logging.basicConfig, a no-op once the root logger has handlers: without
    # this, every trial after the first would log into the first trial's file (as RecBole does).
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    init_logger(config)

    _, train_data, valid_data, test_data, net = prepare(config)
    trainer = reporting_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    trainer.epoch_reporter = epoch_reporter
    # verbose=False and no progress bars, as RecBole's objective: a search runs many trials.
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=False, saved=saved
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved)
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }


# ---- results ------------------------------------------------------------------------------
@dataclass
class TrialResult:
    """One trial: its parameters, validation score and metrics (the best epoch's; for a trial
    ASHA stopped, its last validation's), test metrics (None when stopped), and status."""

    params: dict[str, Any]
    valid_score: float
    valid_result: dict[str, float]
    test_result: dict[str, float] | None
    status: str = "completed"

    @property
    def params_str(self) -> str:
        return HyperTuning.params2str(self.params)


@dataclass
class SearchResult:
    """Every trial of a search, in the order they were run, and the best completed one."""

    model: str
    dataset: str
    tool: str
    algo: str
    valid_metric: str
    bigger: bool
    trials: list[TrialResult]

    @property
    def best(self) -> TrialResult:
        """The completed trial with the best validation score (the first of equals)."""
        completed = [t for t in self.trials if t.test_result is not None]
        if not completed:
            raise RuntimeError(f"no trial of the {self.tool} search completed")
        choose = max if self.bigger else min
        return choose(completed, key=lambda t: t.valid_score)

    def describe(self, trial: TrialResult) -> str:
        lines = [
            f"{trial.params_str} ({trial.status})",
            f"Valid result:\n{dict2str(trial.valid_result)}",
        ]
        if trial.test_result is not None:
            lines.append(f"Test result:\n{dict2str(trial.test_result)}")
        return "\n".join(lines)

    def write(self, output_file: str | os.PathLike) -> None:
        """Every trial's parameters with its valid and test metrics, then the best trial."""
        header = (
            f"# {self.model} on {self.dataset}: {self.tool} {self.algo} search, "
            f"{len(self.trials)} trials, valid_metric {self.valid_metric} "
            f"({'bigger' if self.bigger else 'smaller'} is better)\n\n"
        )
        body = "".join(
            f"trial {i}: {self.describe(t)}\n\n" for i, t in enumerate(self.trials, start=1)
        )
        best = self.best
        footer = f"best trial {self.trials.index(best) + 1}: {self.describe(best)}\n"
        Path(output_file).write_text(header + body + footer, encoding="utf-8")

    def print_best(self) -> None:
        best = self.best
        print("best params: ", best.params)
        print("best result: ")
        print({"best_valid_result": best.valid_result, "test_result": best.test_result})

    def plot(self, display_file: str | os.PathLike) -> None:
        """RecBole's interactive HTML plot of the trials' validation scores."""
        import plotly.graph_objs as go
        from plotly.offline import plot

        # RecBole's plot_hyper does the same with astype(np.str), gone since numpy 1.24, and
        # opens a browser (auto_open=True), which a search on a server must not try.
        numbers = [str(i) for i in range(1, len(self.trials) + 1)]
        trace = go.Scatter(
            x=numbers,
            y=[t.valid_score for t in self.trials],
            text=[t.params_str for t in self.trials],
            mode="lines+markers",
            marker={"color": "green"},
            showlegend=True,
            textposition="top center",
            name=f"{self.model} tuning process",
        )
        layout = go.Layout(
            title="hyperparams_tuning",
            xaxis={"title": "trials"},
            yaxis={"title": f"valid_score ({self.valid_metric})"},
        )
        plot(go.Figure(data=[trace], layout=layout), filename=str(display_file), auto_open=False)


# ---- shared set-up ------------------------------------------------------------------------
@dataclass
class _Search:
    model: str
    params: list[Param]
    config: Config  # the fixed configuration, built once before any trial
    config_dict: dict[str, Any]
    config_file_list: list[str] | None


def _command_line_keys() -> dict[str, str]:
    """``--key=value`` arguments, which RecBole's ``Config`` reads with top priority."""
    pairs = (arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--") and "=" in arg)
    return dict(pairs)


def _prepare(
    params_file: str | os.PathLike,
    model: str | None,
    dataset: str,
    config_file_list: list[str] | None,
    config_dict: dict[str, Any] | None,
    algo: str,
) -> _Search:
    """Everything that can fail before the first trial: model, params file, fixed keys, algo,
    and the fixed configuration itself (built once, as every trial will build it)."""
    if algo not in ALGOS:
        raise ConfigError(f"algo={algo!r} is not supported; allowed: {', '.join(ALGOS)}")
    model = resolve_model(params_file, model)
    params = load_search_space(params_file, model)
    by_key = {p.key: p for p in params}
    config_dict = dict(config_dict or {})
    check_keys(config_dict, model, where=lambda key: f"config_dict/command line key {key!r}")
    command_line = _command_line_keys()
    for key, value in command_line.items():
        if key in by_key:
            # RecBole's Config gives the command line priority over a trial's parameters: the
            # tuned values would never be used. (config_dict and config files are defaults
            # that the tuned values override, in both tools.)
            raise ConfigError(
                f"--{key}={value} on the command line would override every trial's {key!r}, "
                f"which {params_file} tunes ({by_key[key].where}); allowed: one of the two"
            )
    if algo == "exhaustive":
        continuous = [p for p in params if p.grid() is None]
        if continuous:
            raise ConfigError(
                f"{params_file}: {continuous[0].where}: exhaustive search needs a finite grid; "
                f"allowed: choice or quniform lines, or algo random or bayes"
            )
    # Config files and data paths relative to this directory must still resolve from Ray's
    # per-trial working directories.
    config_file_list = [os.path.abspath(f) for f in config_file_list] if config_file_list else None
    # Config sets CUDA_VISIBLE_DEVICES to its gpu_id; Ray, started after, would then see (and
    # hand out) only that GPU. The driver's configuration must not choose the trials' devices.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        config = Config(
            model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict
        )
    finally:
        if visible is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible
    if dataset != "ml-100k":  # RecBole always reads ml-100k from its own package
        given = {**config.internal_config_dict, **config.external_config_dict}["data_path"]
        config_dict["data_path"] = os.path.abspath(given)
    return _Search(model, params, config, config_dict, config_file_list)


# ---- hyperopt -----------------------------------------------------------------------------
class ExhaustiveSearch:
    """A hyperopt ``algo`` that proposes every point of the grid exactly once, then stops.

    The order is a permutation drawn once from ``np.random.default_rng(seed)``, so that a search
    cut short (``max_evals``, ``early_stop``) samples the whole grid rather than varying the
    last lines only. Points already in ``trials`` are skipped.
    """

    def __init__(self, params: Sequence[Param], seed: int):
        grids = [p.grid() for p in params]
        if any(g is None for g in grids):
            raise ConfigError("exhaustive search needs choice or quniform lines only")
        self.labels = [p.key for p in params]
        # hyperopt stores a choice as the index of its value, a quniform as the value itself
        self.stored = [
            list(range(len(g))) if p.kind == "choice" else [float(v) for v in g]
            for p, g in zip(params, grids, strict=True)
        ]
        self.size = math.prod(len(s) for s in self.stored)
        self.order = np.random.default_rng(seed).permutation(self.size)

    def point(self, index: int) -> tuple:
        """The grid point with flat index ``index`` (mixed radix, last line fastest)."""
        values = []
        for stored in reversed(self.stored):
            index, digit = divmod(index, len(stored))
            values.append(stored[digit])
        return tuple(reversed(values))

    def __call__(self, new_ids, domain, trials, seed) -> list:
        from hyperopt.base import miscs_update_idxs_vals

        seen = {
            tuple(trial["misc"]["vals"][label][0] for label in self.labels)
            for trial in trials.trials
        }
        candidates = (p for p in map(self.point, self.order) if p not in seen)
        docs = []
        for new_id, point in zip(new_ids, candidates, strict=False):
            misc = {"tid": new_id, "cmd": domain.cmd, "workdir": domain.workdir}
            idxs = {label: [new_id] for label in self.labels}
            vals = {label: [value] for label, value in zip(self.labels, point, strict=True)}
            miscs_update_idxs_vals([misc], idxs, vals)
            docs.extend(trials.new_trial_docs([new_id], [None], [domain.new_result()], [misc]))
        return docs  # empty once the grid is exhausted: fmin stops


class _HyperTuning(HyperTuning):
    """RecBole's ``HyperTuning`` that records every trial in order and seeds fmin.

    Plotting is ``SearchResult.plot``: RecBole's ``plot_hyper`` fails on numpy >= 1.24."""

    def __init__(self, *args, seed: int, early_stop: int | None, **kwargs):
        super().__init__(*args, early_stop=early_stop or 1, **kwargs)
        if not early_stop:
            self.early_stop_fn = None
        self.seed = seed
        self.trials_run: list[TrialResult] = []

    def trial(self, params):
        status = super().trial(params)
        result = self.params2result[self.params2str(params)]  # this trial's (just written)
        self.trials_run.append(
            TrialResult(
                params=dict(params),
                valid_score=float(result["best_valid_score"]),
                valid_result=dict(result["best_valid_result"]),
                test_result=dict(result["test_result"]),
            )
        )
        return status

    def run(self):
        from hyperopt import fmin

        fmin(
            self.trial,
            self.space,
            algo=self.algo,
            max_evals=self.max_evals,
            early_stop_fn=self.early_stop_fn,
            rstate=np.random.default_rng(self.seed),
        )


def run_hyperopt(
    params_file: str | os.PathLike,
    model: str | None = None,
    dataset: str = "ml-100k",
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    algo: str = "exhaustive",
    max_evals: int | None = None,
    early_stop: int | None = DEFAULT_EARLY_STOP,
    output_file: str | os.PathLike | None = DEFAULT_OUTPUT_FILE,
    display_file: str | os.PathLike | None = None,
) -> SearchResult:
    """Tune with hyperopt through RecBole's ``HyperTuning``, one trial at a time.

    ``algo``: exhaustive (every grid point once, at most ``max_evals`` of them), random or bayes
    (TPE; ``max_evals`` trials, 100 by default). ``early_stop``: stop after that many trials
    without a better validation score (RecBole's ``no_progress_loss``); 0 or None never stops
    early. The search is seeded by the configuration's ``seed``. Writes ``output_file`` (every
    trial, then the best) and ``display_file`` (HTML plot), prints the best trial, returns all.
    """
    from hyperopt import rand, tpe

    search = _prepare(params_file, model, dataset, config_file_list, config_dict, algo)
    seed = search.config["seed"]
    if algo == "exhaustive":
        suggest = ExhaustiveSearch(search.params, seed)
        evals = suggest.size if max_evals is None else min(max_evals, suggest.size)
    else:
        suggest = rand.suggest if algo == "random" else tpe.suggest
        evals = DEFAULT_MAX_EVALS if max_evals is None else max_evals
    if evals < 1:
        raise ConfigError(f"max_evals={max_evals!r} must be a positive integer")
    if early_stop is not None and early_stop < 0:
        raise ConfigError(f"early_stop={early_stop!r} must be >= 0 (0: never stop early)")
    objective = functools.partial(
        objective_function, model=search.model, dataset=dataset, fixed_config=search.config_dict
    )
    tuner = _HyperTuning(
        objective,
        space={p.key: p.hyperopt() for p in search.params},
        fixed_config_file_list=search.config_file_list,
        algo=suggest,
        max_evals=evals,
        seed=seed,
        early_stop=early_stop,
    )
    tuner.run()
    result = SearchResult(
        model=search.model,
        dataset=dataset,
        tool="Hyperopt",
        algo=algo,
        valid_metric=search.config["valid_metric"],
        bigger=search.config["valid_metric_bigger"],
        trials=tuner.trials_run,
    )
    return _finish(result, output_file, display_file)


def _finish(result: SearchResult, output_file, display_file) -> SearchResult:
    if output_file is not None:
        result.write(output_file)
    if display_file is not None:
        result.plot(display_file)
    result.print_best()
    return result


# ---- Ray Tune -----------------------------------------------------------------------------
def _tune_trial(
    params: dict[str, Any],
    *,
    model: str,
    dataset: str,
    fixed_config: dict[str, Any],
    config_file_list: list[str] | None,
    threads: int,
) -> None:
    """One Ray Tune trial: reports after every validation, then once more with the best
    validation result and the test result (the report without ``validation``)."""
    import ray
    import torch
    from ray.air import session

    # Ray starts trial workers with OMP_NUM_THREADS=1 whatever cpus_per_trial is (measured with
    # ray 2.6.3): without this, a trial given 4 CPUs would train on one.
    torch.set_num_threads(threads)

    # RecBole sets CUDA_VISIBLE_DEVICES to gpu_id ("0" by default); the trial must use the GPUs
    # Ray gave it, and none ("": CPU) when it asked for none.
    gpu_id = ",".join(str(i) for i in ray.get_gpu_ids())
    # RecBole names a checkpoint by the second it was created: trials running side by side
    # with one (absolute) checkpoint_dir would overwrite, and test, each other's checkpoints.
    checkpoint_dir = os.path.join(fixed_config["checkpoint_dir"], session.get_trial_id())
    result = objective_function(
        params,
        config_file_list,
        model=model,
        dataset=dataset,
        fixed_config={**fixed_config, "gpu_id": gpu_id, "checkpoint_dir": checkpoint_dir},
        epoch_reporter=session.report,
    )
    session.report(
        _tune_metrics(
            result["best_valid_score"], result["best_valid_result"], result["test_result"]
        )
    )


def _strip(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


def run_ray(
    params_file: str | os.PathLike,
    model: str | None = None,
    dataset: str = "ml-100k",
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    algo: str = "exhaustive",
    num_samples: int | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    storage_path: str | os.PathLike = "ray_log",
    output_file: str | os.PathLike | None = DEFAULT_OUTPUT_FILE,
    display_file: str | os.PathLike | None = None,
) -> SearchResult:
    """Tune with Ray Tune, trials in parallel, on this machine or an existing Ray cluster.

    ``algo``: exhaustive (``tune.grid_search`` over every line: the whole grid once), random
    (``num_samples`` draws, 100 by default) or bayes (hyperopt's TPE through ``HyperOptSearch``,
    ``num_samples`` trials). Every trial reports its validation metrics after each validation
    and an ASHA scheduler (RecBole's settings: grace period 1, reduction factor 2) stops trials
    that fall behind. Each trial gets ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs.

    ``ray_address`` (``host:port`` or ``auto``) connects to a running cluster; otherwise a local
    Ray is started with ``num_cpus`` CPUs (all when None) and shut down at the end. Trial
    directories go under ``storage_path`` (made absolute). Writes ``output_file`` and
    ``display_file`` as ``run_hyperopt``, prints the best trial, returns all trials.
    """
    import ray
    from ray import air, tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    search = _prepare(params_file, model, dataset, config_file_list, config_dict, algo)
    config = search.config
    if algo == "exhaustive":
        if num_samples is not None:
            raise ConfigError(
                f"num_samples={num_samples!r} would repeat the whole grid of an exhaustive "
                f"search; allowed: no num_samples, or algo random or bayes"
            )
        samples = 1
    else:
        samples = DEFAULT_NUM_SAMPLES if num_samples is None else num_samples
    if samples < 1:
        raise ConfigError(f"num_samples={num_samples!r} must be a positive integer")
    mode = "max" if config["valid_metric_bigger"] else "min"
    seed = config["seed"]
    if algo == "bayes":
        from ray.tune.search.hyperopt import HyperOptSearch

        search_alg = HyperOptSearch(random_state_seed=seed)
    else:
        search_alg = BasicVariantGenerator(random_state=seed)
    # ASHA's clock is the number of validations: the final report carries no "validation", so
    # it never meets a rung, and max_t lies past the last validation, so ASHA's own stop at
    # max_t can never cut off the final (test) report.
    validations = config["epochs"] // max(config["eval_step"], 1)
    scheduler = ASHAScheduler(
        time_attr="validation", max_t=validations + 1, grace_period=1, reduction_factor=2
    )
    trainable = tune.with_resources(
        tune.with_parameters(
            _tune_trial,
            model=search.model,
            dataset=dataset,
            fixed_config={**search.config_dict, "checkpoint_dir": config["checkpoint_dir"]},
            config_file_list=search.config_file_list,
            threads=max(1, int(cpus_per_trial)),
        ),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
    )

    started = not ray.is_initialized()
    if not started and (ray_address or num_cpus):
        raise ConfigError(
            "Ray is already initialised in this process, so ray_address and num_cpus would be "
            "ignored; allowed: leave them out (the running Ray is used), or ray.shutdown() first"
        )
    if started and ray_address:
        ray.init(address=ray_address)
    elif started:
        # address="local": a plain ray.init() would join whatever cluster `ray start` last
        # started on this machine. The dashboard costs start-up time and a port; unused here.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={p.key: p.tune(grid=algo == "exhaustive") for p in search.params},
            tune_config=tune.TuneConfig(
                metric="valid_score",
                mode=mode,
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=samples,
            ),
            run_config=air.RunConfig(
                name=f"{search.model}_{dataset}_{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=os.path.abspath(storage_path),
                verbose=1,
            ),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()

    trials, errors = [], []
    keys = [p.key for p in search.params]
    for trial in grid:
        metrics = trial.metrics or {}
        if trial.error is not None or "valid_score" not in metrics:
            errors.append(f"{trial.config}: {trial.error}")
            continue
        test = _strip(metrics, "test_") or None
        valid = _strip(metrics, "valid_")
        valid.pop("score")
        status = (
            "completed"
            if test is not None
            else f"stopped early by ASHA after {metrics['validation']} validation(s)"
        )
        trials.append(
            TrialResult(
                params={k: trial.config[k] for k in keys},
                valid_score=float(metrics["valid_score"]),
                valid_result=valid,
                test_result=test,
                status=status,
            )
        )
    result = SearchResult(
        model=search.model,
        dataset=dataset,
        tool="Ray",
        algo=algo,
        valid_metric=config["valid_metric"],
        bigger=config["valid_metric_bigger"],
        trials=trials,
    )
    if errors:
        # Report what did complete, then fail loudly: a failed trial is never a silent gap.
        if any(t.test_result is not None for t in trials):
            _finish(result, output_file, display_file)
        raise RuntimeError(f"{len(errors)} Ray Tune trial(s) failed:\n" + "\n".join(errors))
    return _finish(result, output_file, display_file)


__all__ = [
    "ExhaustiveSearch",
    "Param",
    "SearchResult",
    "TrialResult",
    "check_keys",
    "infer_model",
    "load_search_space",
    "objective_function",
    "parse_params_file",
    "reporting_trainer",
    "resolve_model",
    "run_hyperopt",
    "run_ray",
]
