"""Which windows go into which training batch, and where each lands in a packed row: index
arithmetic on window lengths only (no tensors of the data, no RecBole), so that every process
draws the same batches from the same seed (``batching.py`` turns them into RecBole batches)."""

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
