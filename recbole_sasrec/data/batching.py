"""Training batches of windows with little padding (``train_batching``).

A batch is trimmed to its longest window, so a random batch of a long-tailed log costs what its
longest member costs, and most of what it encodes is padding. Three ways to batch:

* ``packed`` (default): windows in random order, cut into batches of as many real positions as
  a random batch of ``train_batch_size`` windows holds on average, each packed into rows of L
  that hold several windows (``pack_windows``; ``layers.Packed`` keeps each window's attention
  to itself): the same steps per epoch as random batches and, in expectation, the same batches.
* ``length``: windows sorted by length, batches of up to ``train_batch_size x L`` positions: no
  masks, but each batch holds one length only, and such batches train worse (docs/results.md).
* ``random``: RecBole's, batch for batch.

``train_batch_positions`` sizes ``packed`` and ``length`` batches by real positions instead,
whatever the windows' lengths: on short histories 128 windows hold a few times fewer targets
than on ml-100k, and what a step costs whatever it holds then weighs more per target
(docs/design.md). Fewer steps an epoch need a larger ``learning_rate``.

Every window is in exactly one batch per epoch, and the same seed gives the same batches. With
several processes each process batches the windows of its own users (a hash of the user picks
the process, as it picks a prepared log's partition: ``partitions.py``) into as many batches as
every other process, about a single process's steps per epoch: a step of N processes trains
about one single-process batch, a share from each process's users. This is the one way of
sharing that a process holding only its users can follow, so a prepared log trains as the same
log read whole.
"""

from __future__ import annotations

from logging import getLogger

import numpy as np
import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction
from recbole.data.transform import construct_transform

from ..core.fields import SEGMENT_USERS, SEGMENTS, target_list_field
from ..core.keys import choice, integer
from .packing import BATCHINGS, ORDERED, WindowBatchSampler, pack_rows


def _positions_need_budget(config) -> str | None:
    positions, batching = config["train_batch_positions"], config["train_batching"]
    if positions and batching == "random":
        return (
            f"train_batch_positions={positions} with train_batching='random': RecBole's random "
            f"batches hold train_batch_size windows whatever their lengths; allowed: "
            f"train_batching 'packed' or 'length', or train_batch_positions: 0"
        )
    if positions and positions < config["MAX_ITEM_LIST_LENGTH"]:
        return (
            f"train_batch_positions={positions} is smaller than one full window "
            f"(MAX_ITEM_LIST_LENGTH={config['MAX_ITEM_LIST_LENGTH']}); allowed: 0 or an integer "
            f">= {config['MAX_ITEM_LIST_LENGTH']}"
        )
    return None


KEYS = (
    choice(
        "train_batching",
        "packed",
        BATCHINGS,
        "random batches packed several windows a row (little padding); windows of one length a "
        "batch; RecBole's random batches",
    ),
    integer(
        "train_batch_size",
        128,
        "windows per batch (`packed`: their positions on average; `length`: those of this many "
        "full windows)",
    ),
    integer(
        "train_batch_positions",
        0,
        "`packed`, `length`: batches of about this many real positions instead (0: sized by "
        "`train_batch_size`)",
        low=0,
        relation=_positions_need_budget,
    ),
)


class WindowTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` over training windows, its batches from a
    ``WindowBatchSampler`` (``train_batching``); RecBole's negative sampling and transforms
    apply unchanged."""

    def __init__(self, config, dataset, sampler, shuffle=True, steps: int = 0):
        self.logger = getLogger()
        self._set_neg_sample_args(
            config, dataset, config["MODEL_INPUT_TYPE"], config["train_neg_sample_args"]
        )
        self.sample_size = len(dataset)
        # AbstractDataLoader.__init__, with a batch sampler in place of RecBole's index sampler.
        # With several processes (steps > 0) RecBole's trainer calls sampler.set_epoch() when
        # shuffle is set; the batch sampler reshuffles from its own generator instead.
        self.shuffle = shuffle and not steps
        self.config, self._dataset, self._sampler = config, dataset, sampler
        self._batch_size = self.step = self.model = None
        self._init_batch_size_and_step()
        self.generator = torch.Generator()
        self.generator.manual_seed(config["seed"])
        self.transform = construct_transform(config)
        self.is_sequential = True
        lengths = dataset.inter_feat[dataset.item_list_length_field].numpy()
        self.batches = WindowBatchSampler(
            lengths,
            self.step,
            config["MAX_ITEM_LIST_LENGTH"],
            config["train_batching"] if shuffle else ORDERED,
            self.generator,
            steps,
            config["train_batch_positions"],
        )
        torch.utils.data.DataLoader.__init__(
            self,
            dataset=list(range(self.sample_size)),
            batch_sampler=self.batches,
            collate_fn=self.collate_fn,
            num_workers=config["worker"],
            generator=self.generator,
        )

    def collate_fn(self, index):
        data = super().collate_fn(index)
        if self.batches.batching != "packed":
            return data
        return pack_windows(data, self._dataset, self.config)


def pack_windows(windows, dataset, config):
    """A batch of windows [n, L] repacked into rows that hold several each, one after another
    (``pack_rows``): item lists, target lists, the window and the user of every position
    (``data.SEGMENTS``, ``data.SEGMENT_USERS``), and each row's used length. A row's user and
    item fields are those of its first window."""
    seq_field, len_field = dataset.item_id_list_field, dataset.item_list_length_field
    target_field, capacity = target_list_field(config), config["MAX_ITEM_LIST_LENGTH"]
    lengths = windows[len_field].numpy()
    row, offset = pack_rows(lengths, capacity)
    R = int(row.max()) + 1 if len(row) else 0
    real = np.arange(capacity)[None, :] < lengths[:, None]  # [n, L] real positions of windows
    window_of, step = np.nonzero(real)
    dest_row, dest_col = row[window_of], offset[window_of] + step
    out = {}
    src = torch.from_numpy(window_of), torch.from_numpy(step)
    dest = torch.from_numpy(dest_row), torch.from_numpy(dest_col)
    for field in (seq_field, target_field):
        packed = torch.zeros((R, capacity), dtype=windows[field].dtype)
        packed[dest] = windows[field][src]
        out[field] = packed
    segment = torch.zeros((R, capacity), dtype=torch.long)
    # windows numbered 1, 2, ... within their row, in order of offset
    by_row = np.lexsort((offset, row))
    rank = np.empty(len(row), dtype=np.int64)
    first = np.r_[0, np.flatnonzero(np.diff(row[by_row])) + 1]
    rank[by_row] = np.arange(len(row)) - np.repeat(first, np.diff(np.r_[first, len(row)]))
    segment[dest] = torch.from_numpy(rank[window_of] + 1)
    users = torch.zeros((R, capacity), dtype=torch.long)
    users[dest] = windows[dataset.uid_field][src[0]]
    used = np.bincount(row, weights=lengths, minlength=R).astype(np.int64)
    head = torch.from_numpy(by_row[first])  # each row's first window
    out.update(
        {
            SEGMENTS: segment,
            SEGMENT_USERS: users,
            len_field: torch.from_numpy(used),
            dataset.uid_field: windows[dataset.uid_field][head],
            dataset.iid_field: windows[dataset.iid_field][head],
        }
    )
    return Interaction(out)
