"""Array helpers of the data path: runs of grouped rows, row selection, padded windows."""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.interaction import Interaction


def group_starts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For keys grouped into runs (equal keys adjacent): each row's run start and its rank
    within the run, both [N]."""
    n = len(keys)
    new = np.ones(n, dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    first = np.flatnonzero(new)
    sizes = np.diff(np.append(first, n))
    start = np.repeat(first, sizes)
    return start, np.arange(n) - start


def run_sizes(start: np.ndarray) -> np.ndarray:
    """The size of each row's run, from ``group_starts``' starts: [N]."""
    n = len(start)
    first = np.flatnonzero(np.r_[True, start[1:] != start[:-1]])
    sizes = np.diff(np.append(first, n))
    return np.repeat(sizes, sizes)


def take(inter: Interaction, rows: np.ndarray) -> Interaction:
    """``inter[rows]`` without ``Interaction.__getitem__``'s conversion of the index to a list."""
    index = torch.from_numpy(rows)
    return Interaction({field: value[index] for field, value in inter.interaction.items()})


def gather_windows(values: torch.Tensor, begin: np.ndarray, length: np.ndarray, L: int):
    """Rows ``values[begin_r : begin_r + length_r]`` 0-padded to L: values [N, ...] ->
    [R, L, ...], and the [R, L] mask of real positions."""
    steps = np.arange(L)
    real = steps[None, :] < length[:, None]  # [R, L]
    index = np.where(real, begin[:, None] + steps[None, :], 0)
    rows = values[torch.from_numpy(index)]
    rows[torch.from_numpy(~real)] = 0
    return rows, real


def ranks(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size - 1 for each size, concatenated: [sum(sizes)]."""
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(int(sizes.sum())) - offsets
