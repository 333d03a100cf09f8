"""RecBole's quick-start functions, resolving models through this package.

Same signatures and return values as ``recbole.quick_start``; the differences are the model
lookup (ours first, then RecBole's), our ``Config``, the all-position dataset for our models, and
trainers whose checkpoints load on torch >= 2.6.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import recbole.data
import torch
from recbole.data.transform import construct_transform
from recbole.utils import get_environment, get_flops, init_seed, set_color

from .allocator import apply_allocator_setting
from .checks import ConfigError
from .config import Config, get_model
from .dataloader import data_preparation
from .logs import run_logging
from .trainer import get_trainer, load_checkpoint


def create_dataset(config: Config):
    """The model's own dataset class when it declares one (ours do), else RecBole's choice.

    Fails at once, naming the path, when the interaction file is missing (RecBole would try to
    download the data set, and there is nothing to download for a user's own data)."""
    inter_file = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    if not config["benchmark_filename"] and not os.path.isfile(inter_file):
        raise ConfigError(
            f"dataset={config['dataset']!r}: no interaction file {inter_file}; allowed: ml-100k, "
            f"or data_path pointing at a folder holding {config['dataset']}/"
            f"{config['dataset']}.inter (python -m recbole_sasrec convert makes one)"
        )
    dataset_class = getattr(get_model(config["model"]), "dataset_class", None)
    if dataset_class is None:
        return recbole.data.create_dataset(config)
    dataset = dataset_class(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


def prepare(config: Config):
    """What every entry point builds from a configuration, seeded as RecBole seeds it:
    ``(dataset, train_data, valid_data, test_data, model)``, the model fresh on its device."""
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    return dataset, train_data, valid_data, test_data, model


def run_recbole(
    model: str | type | None = None,
    dataset: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    queue=None,
    *,
    command_line: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and test ``model`` on ``dataset``, as ``recbole.quick_start.run_recbole``.

    ``command_line``: ``--key=value`` strings with the command line's top priority (``run.py``
    passes its own; ``sys.argv`` is never read here). The run logs as RecBole's does (a file
    under ``./log/`` and the console) and leaves the caller's logging as it was; with
    ``keep_freed_memory: True`` (our models' default) it sets the process's allocator
    (``allocator.py``). Returns ``best_valid_score``, ``valid_score_bigger``,
    ``best_valid_result``, ``test_result`` (RecBole's keys) and ``model_file``, the best
    checkpoint (None when ``saved`` is False).
    """
    config = Config(
        model=model,
        dataset=dataset,
        config_file_list=config_file_list,
        config_dict=config_dict,
        command_line=command_line,
    )
    apply_allocator_setting(config)
    with run_logging(config) as logger:
        result = _train_and_test(config, saved, logger)
    if queue is not None:
        queue.put(result)
    return result


def _train_and_test(config: Config, saved: bool, logger) -> dict[str, Any]:
    logger.info(config)
    dataset, train_data, valid_data, test_data, model = prepare(config)
    logger.info(dataset)
    logger.info(model)
    flops = get_flops(model, dataset, config["device"], logger, construct_transform(config))
    logger.info(set_color("FLOPs", "blue") + f": {flops}")

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )

    logger.info(
        "The running environment of this training is as follows:\n" + get_environment(config).draw()
    )
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "model_file": trainer.saved_model_file if saved else None,
    }


def _checkpoint_and_config(model_file: str) -> tuple[dict, Config]:
    """Read a checkpoint of this package; its Config with the device set to one that exists."""
    if not os.path.isfile(model_file):
        raise ConfigError(f"model_file={model_file!r} does not exist")
    try:
        checkpoint = load_checkpoint(model_file)
    except Exception as error:  # not a torch file at all
        raise ConfigError(f"model_file={model_file!r} is not a checkpoint: {error}") from None
    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    if not isinstance(config, Config) or "state_dict" not in checkpoint:
        raise ConfigError(
            f"model_file={model_file!r} is not a checkpoint written by recbole_sasrec "
            f"(expected a dict with a recbole_sasrec Config and a state_dict)"
        )
    if not torch.cuda.is_available():  # a model trained on GPU loads on CPU
        config["device"] = torch.device("cpu")
    return checkpoint, config


def _restore(checkpoint: dict, config: Config, dataset):
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return model.eval()


def load_model(model_file: str):
    """``(config, model, dataset)`` from a checkpoint: the trained model in eval mode and the
    filtered dataset it was trained on (not split; that is ``load_data_and_model``)."""
    checkpoint, config = _checkpoint_and_config(model_file)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return config, _restore(checkpoint, config, dataset), dataset


def load_data_and_model(model_file: str):
    """Load a checkpoint written by ``run_recbole``: ``(config, model, dataset, train_data,
    valid_data, test_data)``, the model with its trained weights, on CPU when CUDA is absent."""
    checkpoint, config = _checkpoint_and_config(model_file)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = _restore(checkpoint, config, train_data._dataset)
    return config, model, dataset, train_data, valid_data, test_data
