"""One trial: train and test one point of the search space, reporting after every validation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..integration.config import Config
from ..integration.logs import run_logging
from ..integration.quick_start import prepare
from ..integration.trainer import get_trainer

Reporter = Callable[[dict[str, Any]], None]


class EpochReportingMixin:
    """Calls ``epoch_reporter`` with each validation's metrics, so that a scheduler (Ray Tune's
    ASHA) can stop a bad trial after any epoch instead of only seeing its final result
    (RecBole's objective reports once, after training: RecBole issue 1819)."""

    epoch_reporter: Reporter | None = None
    validations = 0

    def _valid_epoch(self, valid_data, *args, **kwargs):
        valid_score, valid_result = super()._valid_epoch(valid_data, *args, **kwargs)
        if self.epoch_reporter is not None:
            self.validations += 1
            self.epoch_reporter(
                # "validation" is ASHA's clock; the final report leaves it out (see ray.py)
                {"validation": self.validations, **tune_metrics(valid_score, valid_result)}
            )
        return valid_score, valid_result


@functools.cache
def reporting_trainer(model_type, model_name: str) -> type:
    """Our ``get_trainer`` class for the model, reporting after every validation."""
    base = get_trainer(model_type, model_name)
    return type(base.__name__, (EpochReportingMixin, base), {"__module__": __name__})


def tune_metrics(valid_score: float, valid_result: dict, test_result: dict | None = None) -> dict:
    """Flat metrics for a report: ``valid_score``, ``valid_<metric>``, ``test_<metric>``."""
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
    epoch_reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Train and test one trial: RecBole's ``objective_function`` with our model resolution.

    ``config_dict`` (the trial's parameters) overrides ``fixed_config``, which overrides
    ``config_file_list``; the command line is not read. ``epoch_reporter`` receives the
    validation metrics after every validation. The trial logs to a file of its own (RecBole's
    ``init_logger``), and the caller's logging is as it was afterwards. Returns RecBole's
    dictionary: ``model``, ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
    ``test_result``.
    """
    config = Config(
        model=model,
        dataset=dataset,
        config_file_list=config_file_list,
        config_dict={**(fixed_config or {}), **(config_dict or {})},
    )
    with run_logging(config):
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
