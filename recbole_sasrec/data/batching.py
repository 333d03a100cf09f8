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
several processes every process draws the same batches and takes its rows of each.
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

BATCHINGS = ("packed", "length", "random")
ORDERED = "ordered"  # no shuffling (RecBole's shuffle=False): windows in order


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


class WindowBatchSampler(torch.utils.data.Sampler):
    """The batches of one epoch of training windows (lists of row indices).

    ``lengths`` [R]: each window's real length. ``batching``: ``random`` (RecBole's: consecutive
    runs of ``batch_size`` in a random permutation) or ``length`` (see the module docstring).
    ``positions``: when > 0, the ``packed`` and ``length`` batches' size in real positions
    (else ``batch_size`` windows' worth). ``world``/``rank``: the share of one of several
    processes. Every process draws the same
    batches from the same seed and takes rows ``rank::world`` of each, so a step of ``world``
    processes trains on one batch of the single-process run (a batch with fewer rows than
    processes is merged into the one before it); each window is trained once per epoch.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        max_len: int,
        batching: str,
        generator: torch.Generator,
        world: int = 1,
        rank: int = 0,
        positions: int = 0,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.max_len, self.batching = batch_size, max_len, batching
        self.generator, self.world, self.rank = generator, world, rank
        self.positions = positions

    def epoch_batches(self) -> list[np.ndarray]:
        """Every batch of the next epoch, for all processes (draws from the generator)."""
        n = len(self.lengths)
        if self.batching == ORDERED:
            order = np.arange(n)
            return _merge_small(
                [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)], self.world
            )
        order = torch.randperm(n, generator=self.generator).numpy()
        if self.batching == "random":
            # torch's RandomSampler draws a second permutation for the remainder (n % n rows);
            # drawn and dropped here too, so this reproduces RecBole's loader batch for batch.
            torch.randperm(n, generator=self.generator)
            batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        elif self.batching == "packed":
            # as many real positions as a random batch holds on average: the same number of
            # steps per epoch and, in expectation, the same batch as random batching
            budget = self.batch_size * float(self.lengths.mean()) if n else 1.0
            budget = self.positions or budget
            batches = _packed_batches(order, self.lengths, budget)
        elif self.batching == "length":
            budget = self.positions or self.batch_size * self.max_len  # positions per batch
            order = order[np.argsort(-self.lengths[order], kind="stable")]  # longest first
            batches = _cut_by_budget(order, self.lengths[order], budget)
            shuffle = torch.randperm(len(batches), generator=self.generator).numpy()
            batches = [batches[i] for i in shuffle]
        else:
            raise ValueError(f"batching={self.batching!r}; allowed: {BATCHINGS + (ORDERED,)}")
        return _merge_small(batches, self.world)

    def __iter__(self):
        for batch in self.epoch_batches():
            yield batch[self.rank :: self.world].tolist()

    def __len__(self) -> int:
        if self.batching == "random" and self.world == 1:
            return -(-len(self.lengths) // self.batch_size)
        # data-dependent: count without drawing from the real generator
        state = self.generator.get_state()
        try:
            return len(self.epoch_batches())
        finally:
            self.generator.set_state(state)


def pack_rows(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack windows into rows of ``capacity`` positions: each window's row and its offset in
    the row, both [n]. Longest first, each row topped up with the shortest windows that still
    fit (a two-pointer first-fit decreasing, linear in n): far less padding on long-tailed
    lengths than packing in arrival order."""
    n = len(lengths)
    order = np.argsort(-lengths, kind="stable")
    size = lengths[order].tolist()
    row, offset = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    i, j, r = 0, n - 1, 0
    while i <= j:
        row[order[i]], used = r, size[i]
        i += 1
        while j >= i and used + size[j] <= capacity:
            row[order[j]], offset[order[j]] = r, used
            used += size[j]
            j -= 1
        r += 1
    return row, offset


def _packed_batches(order, lengths, budget: float) -> list[np.ndarray]:
    """Windows in ``order``, cut into batches of about ``budget`` real positions."""
    batch = np.floor(np.cumsum(lengths[order]) / budget)
    return np.split(order, np.flatnonzero(np.diff(batch)) + 1)


def _cut_by_budget(rows: np.ndarray, lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive batches of rows sorted longest first, each with rows x its longest (first)
    length <= budget (at least one row per batch)."""
    batches, i, n = [], 0, len(rows)
    while i < n:
        size = max(1, budget // max(1, int(lengths[i])))
        batches.append(rows[i : i + size])
        i += size
    return batches


def _merge_small(batches: list[np.ndarray], world: int) -> list[np.ndarray]:
    """Merge each batch with fewer than ``world`` rows into the batch before it (after it, for
    the first), so that every process gets at least one row of every batch."""
    if world == 1:
        return batches
    merged: list[np.ndarray] = []
    for batch in batches:
        if merged and (len(batch) < world or len(merged[-1]) < world):
            merged[-1] = np.concatenate([merged[-1], batch])
        else:
            merged.append(batch)
    if sum(map(len, merged)) and len(merged[-1]) < world:
        raise ValueError(f"{sum(map(len, merged))} training windows cannot be shared by {world}")
    return merged


class WindowTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` over training windows, its batches from a
    ``WindowBatchSampler`` (``train_batching``); RecBole's negative sampling and transforms
    apply unchanged."""

    def __init__(self, config, dataset, sampler, shuffle=True, world: int = 1, rank: int = 0):
        self.logger = getLogger()
        self._set_neg_sample_args(
            config, dataset, config["MODEL_INPUT_TYPE"], config["train_neg_sample_args"]
        )
        self.sample_size = len(dataset)
        # AbstractDataLoader.__init__, with a batch sampler in place of RecBole's index sampler.
        # With several processes RecBole's trainer calls sampler.set_epoch() when shuffle is
        # set; the batch sampler reshuffles from its own generator, the same in every process.
        self.shuffle = shuffle and world == 1
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
            world,
            rank,
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
