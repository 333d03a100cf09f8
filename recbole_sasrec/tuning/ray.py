"""The Ray Tune driver: trials in parallel, on this machine or an existing Ray cluster.

What differs from RecBole's Ray search: every trial reports its validation metrics after each
validation, so that ASHA can stop bad trials early (RecBole's objective reports once, after
training: RecBole issue 1819); resources per trial come from the caller (RecBole hard-codes one
GPU per trial); a trial uses the GPUs Ray gave it and its own checkpoint folder.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..core.keys import ConfigError
from ..integration.allocator import apply_allocator_setting
from .objective import objective_function, tune_metrics
from .results import COMPLETED, SearchResult, TrialResult
from .search import DEFAULT_OUTPUT_FILE, finish, prepare_search

DEFAULT_NUM_SAMPLES = 100  # Ray random/bayes: the same budget as hyperopt's max_evals


def _tune_trial(
    params: dict[str, Any],
    *,
    model: str,
    dataset: str,
    fixed_config: dict[str, Any],
    config_file_list: list[str] | None,
    threads: int,
) -> None:
    """One Ray Tune trial, in a Ray worker process: reports after every validation, then once
    more with the best validation result and the test result (the report without
    ``validation``). The worker is Ray's, so process-wide settings are made here."""
    import ray
    import torch
    from ray.air import session

    # Ray starts trial workers with OMP_NUM_THREADS=1 whatever cpus_per_trial is (measured with
    # ray 2.6.3): without this, a trial given 4 CPUs would train on one.
    torch.set_num_threads(threads)
    # Ray makes only the trial's GPUs visible to the worker (CUDA_VISIBLE_DEVICES), numbered
    # from 0 there; none ("": CPU) when the trial asked for none.
    gpu_id = ",".join(str(i) for i in range(len(ray.get_gpu_ids())))
    # RecBole names a checkpoint by the second it was created: trials running side by side
    # with one (absolute) checkpoint_dir would overwrite, and test, each other's checkpoints.
    checkpoint_dir = os.path.join(fixed_config["checkpoint_dir"], session.get_trial_id())
    fixed = {**fixed_config, "gpu_id": gpu_id, "checkpoint_dir": checkpoint_dir}
    apply_allocator_setting({**fixed, **params})
    result = objective_function(
        params,
        config_file_list,
        model=model,
        dataset=dataset,
        fixed_config=fixed,
        epoch_reporter=session.report,
    )
    session.report(
        tune_metrics(result["best_valid_score"], result["best_valid_result"], result["test_result"])
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

    search = prepare_search(params_file, model, dataset, config_file_list, config_dict, algo)
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

    result = search.result("Ray", output_file)
    keys = [p.key for p in search.params]
    failed = 0
    for trial in grid:
        metrics = trial.metrics or {}
        params = {k: trial.config[k] for k in keys}
        if trial.error is not None or "valid_score" not in metrics:
            result.add(TrialResult.failed(params, trial.error or RuntimeError("no report")))
            failed += 1
            continue
        test = _strip(metrics, "test_") or None
        valid = _strip(metrics, "valid_")
        valid.pop("score")
        status = (
            COMPLETED
            if test is not None
            else f"stopped early by ASHA after {metrics['validation']} validation(s)"
        )
        result.add(
            TrialResult(
                params=params,
                valid_score=float(metrics["valid_score"]),
                valid_result=valid,
                test_result=test,
                status=status,
            )
        )
    if failed:
        print(
            f"{failed} of {len(result.trials)} Ray Tune trials failed; their errors are listed "
            f"in {output_file or 'the returned trials'}"
        )
    return finish(result, display_file)
