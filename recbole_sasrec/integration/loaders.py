"""RecBole's ``data_preparation``, with our loaders for our models: training windows batched by
``train_batching``, full ranking bounded by its scores, sampled evaluation from one encoding;
with several processes, each process's share. Other models get RecBole's own."""

from __future__ import annotations

from logging import getLogger

import recbole.data
from recbole.data.dataloader import NegSampleEvalDataLoader, TrainDataLoader
from recbole.data.utils import create_samplers, load_split_dataloaders, save_split_dataloaders
from recbole.utils import set_color

from ..core.keys import ConfigError
from ..core.processes import world_and_rank
from ..data.batching import WindowTrainDataLoader
from ..data.full_sort import BoundedFullSortEvalDataLoader
from ..data.sampled_eval import CandidateEvalDataLoader
from .distributed import own_rows, shared_steps, single_process_view
from .registry import is_ours


def sampled(config, phase: str) -> bool:
    args = config[f"{phase}_neg_sample_args"]
    return args["distribution"] != "none" and args["sample_num"] != "none"


def eval_loader(config, phase: str, part, sampler, owners):
    """The evaluation loader of one phase, over this process's share of the rows."""
    world, rank = world_and_rank(config)
    by_user = sampled(config, phase)
    if world > 1:  # a loader of this process's share, built as a single process builds one
        part, config = own_rows(part, owners, rank), single_process_view(config)
    if not by_user:
        return BoundedFullSortEvalDataLoader(config, part, sampler, shuffle=False)
    if config["transform"] is None:
        return CandidateEvalDataLoader(config, part, sampler, shuffle=False)
    # a transform may draw per row: RecBole's own loader, rows repeated per candidate
    return NegSampleEvalDataLoader(config, part, sampler, shuffle=False)


def data_preparation(config, dataset):
    """``(train, valid, test)`` loaders for ``dataset``, as RecBole's ``data_preparation``."""
    if not is_ours(config.model_class):
        return recbole.data.data_preparation(config, dataset)
    dataloaders = load_split_dataloaders(config)
    if dataloaders is not None:
        dataset._change_feat_format()
        return dataloaders
    built = dataset.build()
    train_dataset, valid_dataset, test_dataset = built
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    shuffle = config["shuffle"]
    world, rank = world_and_rank(config)
    owners = dataset.user_owners(world) if world > 1 else None
    if world > 1 and owners is None and not config["train_all_positions"]:
        raise ConfigError(
            "train_all_positions=False with a prepared log in several processes: RecBole's "
            "loader shares rows it assumes every process holds; allowed: train_all_positions: "
            "True (the default)"
        )
    if config["train_all_positions"]:
        steps = 0
        if world > 1:  # each process its users' windows, in as many steps as the others
            train_dataset = own_rows(train_dataset, owners, rank)
            lengths = train_dataset.inter_feat[train_dataset.item_list_length_field].numpy()
            steps = shared_steps(lengths, config)
        train = WindowTrainDataLoader(config, train_dataset, train_sampler, shuffle, steps)
    else:
        train = TrainDataLoader(config, train_dataset, train_sampler, shuffle=shuffle)
    loaders = (
        train,
        eval_loader(config, "valid", valid_dataset, valid_sampler, owners),
        eval_loader(config, "test", test_dataset, test_sampler, owners),
    )
    if config["save_dataloaders"]:
        save_split_dataloaders(config, dataloaders=loaders)
    batching = config["train_batching"] if config["train_all_positions"] else "random"
    getLogger().info(
        set_color("[Training]: ", "pink")
        + set_color("train_batch_size", "cyan")
        + f" = [{config['train_batch_size']}], "
        + set_color("train_batching", "cyan")
        + f" = [{batching}]"
    )
    return loaders
