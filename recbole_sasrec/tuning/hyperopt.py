"""The hyperopt driver: RecBole's ``HyperTuning``, one trial at a time, seeded, every trial kept.

What differs from RecBole's ``run_hyper.py``: trials build our ``Config``, dataset, model and
trainer (RecBole's ``objective_function`` resolves ``SASRec``/``LightSANs`` to its own models);
the exhaustive search is ``ExhaustiveSearch``; fmin is seeded by the configuration's ``seed``
(RecBole's draws an unseeded one), so the same command proposes the same trials; every trial is
recorded as it finishes, and a trial whose configuration is invalid is recorded as failed while
the search goes on; a point random or bayes search draws again (likely in a small discrete
space) is not trained again: a trial trains with the configuration's seed, so it would end as
the earlier one did, and it is listed with the earlier result (RecBole trains it again and keeps
one entry); when every trial failed, ``ConfigError`` names the first one's error (in
place of hyperopt's ``AllTrialsFailed``).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np
from recbole.trainer.hyper_tuning import HyperTuning

from ..core.keys import ConfigError
from .exhaustive import ExhaustiveSearch
from .objective import objective_function
from .results import COMPLETED, SearchResult, TrialResult
from .search import DEFAULT_OUTPUT_FILE, finish, prepare_search

DEFAULT_MAX_EVALS = 100  # RecBole's run_hyper.py: hyperopt random/bayes budget
DEFAULT_EARLY_STOP = 10  # RecBole's run_hyper.py: stop after 10 trials without improvement
REPEAT = "completed: drawn before, the earlier trial's result (not trained again)"


def print_validation(metrics: dict[str, Any]) -> None:
    """A line after each validation of a trial: trials train without RecBole's epoch logs
    (``verbose=False``), and one trial can take many minutes."""
    line = f"  validation {metrics['validation']}: valid_score {metrics['valid_score']:.6f}"
    print(line, flush=True)


class _HyperTuning(HyperTuning):
    """RecBole's ``HyperTuning`` that records every trial in ``record`` and seeds fmin.

    Plotting is ``SearchResult.plot``: RecBole's ``plot_hyper`` fails on numpy >= 1.24."""

    def __init__(self, *args, seed: int, early_stop: int | None, record: SearchResult, **kwargs):
        super().__init__(*args, early_stop=early_stop or 1, **kwargs)
        if not early_stop:
            self.early_stop_fn = None
        self.seed = seed
        self.record = record

    def trial(self, params):
        from hyperopt import STATUS_FAIL, STATUS_OK

        if (earlier := self.params2result.get(self.params2str(params))) is not None:
            self.record.add(_trial(params, earlier, REPEAT))
            print(f"trial {self.params2str(params)}: {REPEAT}", flush=True)
            score = earlier["best_valid_score"]
            return {"loss": -score if earlier["valid_score_bigger"] else score, "status": STATUS_OK}
        try:
            status = super().trial(params)
        except ConfigError as error:  # an invalid point of the space: the search goes on
            self.record.add(TrialResult.failed(params, error))
            print(f"trial failed: {error}")
            return {"loss": math.inf, "status": STATUS_FAIL}  # inf: no progress for early_stop
        except Exception as error:
            self.record.add(TrialResult.failed(params, error))
            raise
        # this trial's result (just written)
        self.record.add(_trial(params, self.params2result[self.params2str(params)]))
        return status

    def run(self):
        from hyperopt import fmin
        from hyperopt.exceptions import AllTrialsFailed

        try:
            fmin(
                self.trial,
                self.space,
                algo=self.algo,
                max_evals=self.max_evals,
                early_stop_fn=self.early_stop_fn,
                rstate=np.random.default_rng(self.seed),
            )
        except AllTrialsFailed:
            trials = self.record.trials
            first = trials[0]  # fmin ran at least one trial
            raise ConfigError(
                f"all {len(trials)} trial(s) failed, so there is no best; the first "
                f"({first.params_str}) {first.status}"
            ) from None


def _trial(params, result: dict, status: str = COMPLETED) -> TrialResult:
    """A trial's record from RecBole's result of its parameters."""
    return TrialResult(
        params=dict(params),
        valid_score=float(result["best_valid_score"]),
        valid_result=dict(result["best_valid_result"]),
        test_result=dict(result["test_result"]),
        status=status,
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
    early. ``config_dict`` is fixed for every trial (a key the params file tunes cannot also be
    fixed); the command line is not read. The search is seeded by the configuration's ``seed``.
    Rewrites ``output_file`` after every trial (every trial so far, then the best), writes
    ``display_file`` (HTML plot) at the end, prints each trial's validations as they end and the
    best trial, returns all of them.
    """
    from hyperopt import rand, tpe

    search = prepare_search(params_file, model, dataset, config_file_list, config_dict, algo)
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
        objective_function,
        model=search.model,
        dataset=dataset,
        fixed_config=search.config_dict,
        epoch_reporter=print_validation,
    )
    record = search.result("Hyperopt", output_file)
    tuner = _HyperTuning(
        objective,
        space={p.key: p.hyperopt() for p in search.params},
        fixed_config_file_list=search.config_file_list,
        algo=suggest,
        max_evals=evals,
        seed=seed,
        early_stop=early_stop,
        record=record,
    )
    tuner.run()
    return finish(record, display_file)
