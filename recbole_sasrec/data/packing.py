"""Which windows go into which training batch, and where each lands in a packed row: index
arithmetic on window lengths only (no tensors of the data, no RecBole), so that the same seed
draws the same batches (``batching.py`` turns them into RecBole batches)."""

from __future__ import annotations

import numpy as np
import torch

BATCHINGS = ("packed", "length", "random")
ORDERED = "ordered"  # no shuffling (RecBole's shuffle=False): windows in order


class WindowBatchSampler(torch.utils.data.Sampler):
    """The batches of one epoch of training windows (lists of row indices).

    ``lengths`` [R]: each window's real length. ``batching``: ``random`` (RecBole's: consecutive
    runs of ``batch_size`` in a random permutation) or ``length`` (see the module docstring).
    ``positions``: when > 0, the ``packed`` and ``length`` batches' size in real positions
    (else ``batch_size`` windows' worth). ``steps`` > 0: one process of several, holding the
    windows of its own users (``integration.distributed``): its windows are cut, in the same
    way, into exactly ``steps`` batches of about equal positions, so that every process takes
    the same number of steps; each window is still trained once per epoch.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        max_len: int,
        batching: str,
        generator: torch.Generator,
        steps: int = 0,
        positions: int = 0,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.max_len, self.batching = batch_size, max_len, batching
        self.generator, self.steps, self.positions = generator, steps, positions
        if steps > len(self.lengths):
            raise ValueError(f"{len(self.lengths)} training windows cannot fill {steps} steps")

    def epoch_batches(self) -> list[np.ndarray]:
        """Every batch of the next epoch (draws from the generator)."""
        n, steps = len(self.lengths), self.steps
        if self.batching == ORDERED:
            order = np.arange(n)
            if steps:
                return np.array_split(order, steps)
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.batching not in BATCHINGS:
            raise ValueError(f"batching={self.batching!r}; allowed: {BATCHINGS + (ORDERED,)}")
        order = torch.randperm(n, generator=self.generator).numpy()
        if self.batching == "random":
            # torch's RandomSampler draws a second permutation for the remainder (n % n rows);
            # drawn and dropped here too, so this reproduces RecBole's loader batch for batch.
            torch.randperm(n, generator=self.generator)
            if steps:
                return np.array_split(order, steps)
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        if self.batching == "length":
            order = order[np.argsort(-self.lengths[order], kind="stable")]  # longest first
            if steps:
                batches = _cut_into(order, self.lengths, steps)
            else:
                budget = self.positions or self.batch_size * self.max_len  # positions a batch
                batches = _cut_by_budget(order, self.lengths[order], budget)
            shuffle = torch.randperm(len(batches), generator=self.generator).numpy()
            return [batches[i] for i in shuffle]
        if steps:  # packed
            return _cut_into(order, self.lengths, steps)
        # as many real positions as a random batch holds on average: the same number of
        # steps per epoch and, in expectation, the same batch as random batching
        budget = self.positions or (self.batch_size * float(self.lengths.mean()) if n else 1.0)
        return _packed_batches(order, self.lengths, budget)

    def __iter__(self):
        for batch in self.epoch_batches():
            yield batch.tolist()

    def __len__(self) -> int:
        if self.steps:
            return self.steps
        if self.batching in ("random", ORDERED):
            return -(-len(self.lengths) // self.batch_size)
        # data-dependent: count without drawing from the real generator
        state = self.generator.get_state()
        try:
            return len(self.epoch_batches())
        finally:
            self.generator.set_state(state)


def steps_per_epoch(
    windows: int, positions: int, batch_size: int, max_len: int, batching: str, budget: int = 0
) -> int:
    """About the steps one process takes per epoch over ``windows`` windows holding ``positions``
    real positions (``budget``: ``train_batch_positions``): what several processes, each
    holding a share, agree to take together."""
    if batching in ("random", ORDERED) or windows == 0:
        return -(-windows // batch_size)
    if batching == "packed":
        budget = budget or batch_size * positions / windows
    else:
        budget = budget or batch_size * max_len
    return max(1, int(np.ceil(positions / budget)))


def _cut_into(order: np.ndarray, lengths: np.ndarray, steps: int) -> list[np.ndarray]:
    """Windows in ``order`` cut into exactly ``steps`` consecutive batches of about equal real
    positions, each with at least one window."""
    n = len(order)
    total = np.cumsum(lengths[order])
    k = np.arange(1, steps)
    ends = np.searchsorted(total, total[-1] * k / steps, side="right") if n else k
    ends = np.clip(ends, k, n - steps + k)
    ends = np.maximum.accumulate(ends - k) + k  # strictly increasing: no batch empty
    return np.split(order, ends)


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
