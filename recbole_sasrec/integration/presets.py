"""Settings chosen from the data when the user chose none (``preset: 'auto'``, the default).

No one set of settings is best on every shape measured (docs/results.md, "Defaults chosen from
the data"): on the Amazon logs (a median history of 6 interactions) the short-histories preset
leads the property files' defaults on validation for both models, and on ml-100k (a median of
65, at least 20 each) the defaults lead it. So, once the data is loaded and before the model
and the batches are built, a log whose median history is at most ``SHORT_MEDIAN``
interactions gets ``presets/short-histories.yaml``'s keys (``SHORT_HISTORIES``, kept equal to
the file by a test); any other log keeps the defaults. One line in the log says which and why.

What a user gave always wins: a key set in a config file, ``config_dict`` or on the command
line keeps its value, and so does what it implies (a ``train_batch_size`` given keeps batches
sized in windows, so ``train_batch_positions`` is then not set). ``preset: 'none'`` turns the
choice off; the files in ``presets/`` say ``preset: 'none'`` themselves, so that each means
exactly what it says.

In several processes, each reading its share of a prepared log, rank 0's choice is every
process's (their medians may differ).
"""

from __future__ import annotations

from logging import getLogger

import numpy as np
import torch

from ..core.keys import choice

KEY = "preset"
KEYS = (
    choice(
        KEY,
        "auto",
        ("auto", "none"),
        "'auto': the short-histories preset's keys when the loaded log's median history is at "
        "most 20 interactions (keys the user gave win); 'none': the defaults whatever the data",
    ),
)
SHORT_MEDIAN = 20  # between the shapes measured: the Amazon logs' 6, ml-100k's 65
SHORT_HISTORIES = {  # presets/short-histories.yaml's keys (tested equal)
    "inner_size": 64,
    "positions_from_end": True,
    "train_batch_positions": 4096,
    "learning_rate": 0.001,
}
IMPLIED_BY = {"train_batch_positions": ("train_batch_size",)}  # given keys a value would undo


def median_history(dataset) -> float:
    """Median interactions of the loaded users (before the split; a process's own users when it
    reads its share of a prepared log)."""
    users = dataset.inter_feat[dataset.uid_field]
    counts = torch.bincount(torch.as_tensor(users)).numpy()
    counts = counts[counts > 0]
    return float(np.median(counts)) if len(counts) else 0.0


def choose_preset(config, dataset) -> str | None:
    """Apply the data's preset to ``config`` (``preset: 'auto'``); its name, or None when the
    defaults stay. Called between loading the data and building batches and model."""
    if config[KEY] != "auto":
        return None
    median = _agreed(median_history(dataset))
    if median > SHORT_MEDIAN:
        getLogger().info(
            f"{KEY}: the defaults (median history {median:g} interactions > {SHORT_MEDIAN}; "
            f"{KEY}: 'none' turns the choice off)"
        )
        return None
    given = config.external_config_dict
    kept = [
        key
        for key in SHORT_HISTORIES
        if key in given or any(other in given for other in IMPLIED_BY.get(key, ()))
    ]
    applied = {key: value for key, value in SHORT_HISTORIES.items() if key not in kept}
    for key, value in applied.items():
        config[key] = value
    keys = ", ".join(f"{k}={v!r}" for k, v in applied.items()) or "none"
    getLogger().info(
        f"{KEY}: short-histories (median history {median:g} interactions <= {SHORT_MEDIAN}): "
        f"{keys}" + (f"; kept as given: {', '.join(kept)}" if kept else "")
    )
    return "short-histories"


def _agreed(value: float) -> float:
    """Rank 0's value in every process of a group (each may hold other users)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]
    return value
