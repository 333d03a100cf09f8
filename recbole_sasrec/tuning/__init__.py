"""Hyper-parameter tuning with hyperopt (RecBole's ``HyperTuning``) or Ray Tune.

One module per job:

* ``space``: the params file (RecBole's format), parsed and checked line by line;
* ``search``: the set-up every search shares (model, fixed keys, fixed configuration);
* ``objective``: one trial, and the trainer that reports after every validation;
* ``results``: the trials as they finish, the output file, the plot;
* ``exhaustive``: the grid search hyperopt 0.2.7 needs (RecBole's fails on it);
* ``hyperopt`` and ``ray``: the two drivers, ``run_hyperopt`` and ``run_ray``.

Library calls leave the caller's process as it was: the command line is not read (``run_hyper.py``
passes its ``--key=value`` arguments as ``config_dict``), each trial logs to its own file and the
caller's logging is restored after it, and ``CUDA_VISIBLE_DEVICES`` is never set.
"""

from .exhaustive import ExhaustiveSearch
from .hyperopt import DEFAULT_EARLY_STOP, DEFAULT_MAX_EVALS, run_hyperopt
from .objective import objective_function, reporting_trainer
from .ray import DEFAULT_NUM_SAMPLES, run_ray
from .results import SearchResult, TrialResult
from .search import ALGOS, DEFAULT_OUTPUT_FILE, infer_model, resolve_model
from .space import KINDS, Param, load_search_space, parse_params_file

__all__ = [
    "ALGOS",
    "DEFAULT_EARLY_STOP",
    "DEFAULT_MAX_EVALS",
    "DEFAULT_NUM_SAMPLES",
    "DEFAULT_OUTPUT_FILE",
    "KINDS",
    "ExhaustiveSearch",
    "Param",
    "SearchResult",
    "TrialResult",
    "infer_model",
    "load_search_space",
    "objective_function",
    "parse_params_file",
    "reporting_trainer",
    "resolve_model",
    "run_hyperopt",
    "run_ray",
]
