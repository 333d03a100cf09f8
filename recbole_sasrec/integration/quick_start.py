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
from recbole.data.dataloader import AbstractDataLoader
from recbole.data.dataset import Dataset
from recbole.data.transform import construct_transform
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import get_environment, get_flops, init_seed, set_color

from ..core.keys import ConfigError
from ..data.download import dataset_url, download_dataset
from . import distributed, warm_start
from .allocator import apply_allocator_setting
from .checkpoint import config_from_plain, load_checkpoint, load_weights
from .config import Config
from .data_checks import check_catalogue, check_evaluation_rows
from .fingerprint import check_fingerprint
from .loaders import data_preparation
from .logs import quiet_recbole, run_logging
from .memory import check_model_memory
from .presets import choose_preset
from .registry import dataset_class
from .trainer import get_trainer


def create_dataset(config: Config) -> Dataset:
    """The model's own dataset class when it declares one (ours do), else RecBole's choice.

    A data set RecBole knows by name (ml-1m, amazon-beauty, yelp, ...) is downloaded on first
    use (``download.py``); any other missing interaction file fails at once, naming the path."""
    inter_file = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    prepared = os.path.join(config["data_path"], "partitions.json")  # data.partitions
    if (
        not config["benchmark_filename"]
        and not os.path.isfile(inter_file)
        and not (os.path.isfile(prepared))
    ):
        if dataset_url(config["dataset"]) is None:
            raise ConfigError(
                f"dataset={config['dataset']!r}: no interaction file {inter_file}, and it is "
                f"not a data set RecBole downloads; allowed: ml-100k, a RecBole data set name "
                f"(e.g. ml-1m, amazon-beauty, yelp: recbole/properties/dataset/url.yaml), or "
                f"data_path pointing at a folder holding {config['dataset']}/"
                f"{config['dataset']}.inter (python -m recbole_sasrec convert makes one)"
            )
        download_dataset(config["dataset"], config["data_path"])
    own = dataset_class(config.model_class)
    if own is None:
        return recbole.data.create_dataset(config)
    dataset = own(config)
    if config["save_dataset"]:
        dataset.save()
    return dataset


def prepare(config: Config):
    """What every entry point builds from a configuration, seeded as RecBole seeds it:
    ``(dataset, train_data, valid_data, test_data, model)``, the model fresh on its device, or
    started from the checkpoint ``init_from`` names (``warm_start.py``)."""
    distributed.join(config)
    start = warm_start.read(config)  # init_from's checkpoint, checked before the data loads
    init_seed(config["seed"], config["reproducibility"])
    # every process its share (a prepared log: its partitions); a failure named in all
    dataset = distributed.together(config, lambda: create_dataset(config))
    choose_preset(config, dataset)  # preset: 'auto': settings for the data's shape
    train_data, valid_data, test_data = data_preparation(config, dataset)
    check_evaluation_rows(config, dataset, valid_data, test_data)
    check_catalogue(config, dataset)
    check_model_memory(config, train_data._dataset.item_num)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    if start is not None:
        warm_start.apply(start, model, train_data._dataset, config)
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
    ``keep_freed_memory: True`` (our models' default) it sets the process's allocator once the
    data is loaded (``allocator.py``). Returns ``best_valid_score``, ``valid_score_bigger``,
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
    was_joined = torch.distributed.is_available() and torch.distributed.is_initialized()
    finished = False
    try:
        with run_logging(config) as logger:
            result = _train_and_test(config, saved, logger)
        finished = True
    finally:
        distributed.leave(was_joined, finished)  # the process as the caller had it
    if queue is not None and config["local_rank"] == 0:
        queue.put(result)  # run(): the spawning process reads rank 0's result
    return result


def run(
    model: str | type,
    dataset: str,
    config_file_list: list[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    nproc: int = 1,
    world_size: int = -1,
    ip: str = "localhost",
    port: str | int = "5678",
    group_offset: int = 0,
) -> dict[str, Any] | None:
    """``recbole.quick_start.run``: ``run_recbole`` here, or ``nproc`` processes (ranks
    ``group_offset``.. of ``world_size``, default ``nproc``) meeting at ``tcp://ip:port`` to train
    one model (``distributed.py``); rank 0's result (None on machines without rank 0)."""
    if nproc == 1 and world_size <= 0:
        return run_recbole(model, dataset, config_file_list, config_dict, saved)
    import torch.multiprocessing as mp

    port = distributed.port_number(port)
    if group_offset == 0:  # rank 0 listens on this machine
        distributed.check_port(ip, port)
    world_size = nproc if world_size == -1 else world_size
    queue = mp.get_context("spawn").SimpleQueue()
    group = dict(world_size=world_size, ip=ip, port=port, nproc=nproc, offset=group_offset)
    kwargs = {"config_dict": {**(config_dict or {}), **group}, "queue": queue, "saved": saved}
    distributed.spawn(_spawned, nproc, (model, dataset, config_file_list, kwargs))
    return None if queue.empty() else queue.get()


def _spawned(local_rank: int, model, dataset, config_file_list, kwargs) -> None:
    """One process of ``run``: ``run_recbole`` with its ``local_rank``."""
    config_dict = {**kwargs["config_dict"], "local_rank": local_rank}
    run_recbole(model, dataset, config_file_list, config_dict, kwargs["saved"], kwargs["queue"])


def _train_and_test(config: Config, saved: bool, logger) -> dict[str, Any]:
    logger.info(config)
    dataset, train_data, valid_data, test_data, model = prepare(config)
    # after the data: what loading frees goes back to the system, not kept by the process for
    # training steps that never reuse it (docs/results.md, "A log larger than one machine's memory")
    apply_allocator_setting(config)
    logger.info(dataset)
    logger.info(model)
    flops = get_flops(model, dataset, config["device"], logger, construct_transform(config))
    logger.info(set_color("FLOPs", "blue") + f": {flops}")

    trainer = get_trainer(config["MODEL_TYPE"], config.model_class)(config, model)
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


def _checkpoint_and_config(
    model_file: str, data_path: str | None = None, allow_pickle: bool = False
) -> tuple[dict, Config]:
    """A checkpoint (loaded without unpickling code unless ``allow_pickle``) and the Config it
    was trained with, on a device that exists here (a model trained on GPU loads on CPU)."""
    checkpoint = load_checkpoint(model_file, allow_pickle=allow_pickle)
    plain = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    if not isinstance(plain, dict) or "state_dict" not in checkpoint or "model" not in plain:
        raise ConfigError(
            f"model_file={model_file!r} is not a checkpoint written by recbole_sasrec "
            f"(expected a dict with a configuration and a state_dict)"
        )
    config = config_from_plain(plain, data_path)
    if not torch.cuda.is_available():
        config["device"] = torch.device("cpu")
    return checkpoint, config


def _restore(checkpoint: dict, config: Config, dataset, model_file: str):
    check_model_memory(config, dataset.item_num)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, dataset).to(config["device"])
    load_weights(model, checkpoint["state_dict"], model_file)
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return model.eval()


def _dataset_for(checkpoint: dict, config: Config, model_file: str):
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    check_fingerprint(checkpoint.get("data"), dataset, config, model_file)
    return dataset


def load_model(
    model_file: str, data_path: str | None = None, allow_pickle: bool = False
) -> tuple[Config, AbstractRecommender, Dataset]:
    """``(config, model, dataset)`` from a checkpoint: the trained model in eval mode and the
    filtered dataset it was trained on (not split; that is ``load_data_and_model``).

    ``data_path``: read the data from there instead of where it was at training time (the
    checkpoint stores that folder, absolute). The data must map users and items to the ids the
    model was trained with (``fingerprint.check_fingerprint``). ``allow_pickle``: also load a
    file that needs full unpickling (RecBole's format), which runs code the file holds."""
    with quiet_recbole():
        checkpoint, config = _checkpoint_and_config(model_file, data_path, allow_pickle)
        dataset = _dataset_for(checkpoint, config, model_file)
        return config, _restore(checkpoint, config, dataset, model_file), dataset


def load_data_and_model(
    model_file: str, data_path: str | None = None, allow_pickle: bool = False
) -> tuple[
    Config, AbstractRecommender, Dataset, AbstractDataLoader, AbstractDataLoader, AbstractDataLoader
]:
    """Load a checkpoint written by ``run_recbole``: ``(config, model, dataset, train_data,
    valid_data, test_data)``, the model with its trained weights, on CPU when CUDA is absent,
    ready for ``get_trainer(...)(config, model).evaluate(test_data, load_best_model=False)``
    in a fresh process. ``data_path`` and ``allow_pickle`` as in ``load_model``."""
    with quiet_recbole():
        checkpoint, config = _checkpoint_and_config(model_file, data_path, allow_pickle)
        dataset = _dataset_for(checkpoint, config, model_file)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        model = _restore(checkpoint, config, train_data._dataset, model_file)
    return config, model, dataset, train_data, valid_data, test_data
