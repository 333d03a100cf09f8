"""Negative items for the sampled losses: one set per target, or one shared by a batch."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..core.keys import boolean, choice

SAMPLERS = ("uniform", "popularity", "in_batch")

KEYS = (
    choice(
        "negative_sampler",
        "uniform",
        SAMPLERS,
        "SSM's negatives: uniform, by training popularity, or the batch's own targets "
        "(log-Q corrected)",
    ),
    boolean(
        "negatives_exclude_history",
        False,
        "per-target negatives (BPR, BCE, gBCE) also outside the user's training history "
        "(the paper's code), not only unequal to the target",
    ),
)


class NegativeSampler(nn.Module):
    """Draws negatives from items 1..n_items-1 (0 is the pad).

    ``counts`` [n_items]: training targets per item (popularity and in-batch draws, and their
    log-Q correction); ``history`` (users [P], items [P]): the training history, for per-target
    negatives outside it. Both are rebuilt from the training data, never saved (non-persistent
    buffers): a model loaded for inference has empty ones and draws nothing.
    """

    def __init__(
        self,
        n_items: int,
        kind: str = "uniform",
        exclude_history: bool = False,
        counts: np.ndarray | None = None,
        history: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        super().__init__()
        self.n_items, self.kind, self.exclude_history = n_items, kind, exclude_history
        probability = torch.zeros(n_items)
        if counts is not None and kind != "uniform":
            probability = torch.as_tensor(counts, dtype=torch.float)
            probability[0] = 0
            probability /= probability.sum().clamp(min=1)
        self.register_buffer("item_probability", probability, False)
        keys = torch.zeros(0, dtype=torch.long)
        if history is not None and exclude_history:
            users, items = (torch.as_tensor(a, dtype=torch.long) for a in history)
            keys = torch.unique(users * n_items + items)  # sorted
        self.register_buffer("history_keys", keys, False)

    def per_target(self, pos: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """A uniform negative for each target pos [...], never the target and, with
        ``exclude_history``, never an item of the target's user's (users [...]) training
        history: [...]. Clashes are drawn again (a few rounds: a user who has seen nearly every
        item keeps what the last round drew)."""
        exclude = self.exclude_history and users is not None and len(self.history_keys) > 0

        def clashes(neg):
            hit = neg == pos
            if exclude:
                keys = users * self.n_items + neg
                at = torch.searchsorted(self.history_keys, keys)
                hit |= self.history_keys[at.clamp(max=len(self.history_keys) - 1)] == keys
            return hit

        neg = torch.randint(1, self.n_items, pos.shape, device=pos.device)
        clash = clashes(neg)
        for _ in range(100):
            if not clash.any():
                break
            neg[clash] = torch.randint(1, self.n_items, (int(clash.sum()),), device=pos.device)
            clash = clashes(neg)
        return neg

    def shared(self, pos: torch.Tensor, k: int):
        """k negatives for a whole batch of targets pos [N]: (neg [k], log(k Q) of the targets
        [N] and of the negatives [k]) for the log-Q correction."""
        device = pos.device
        if self.kind == "uniform":
            neg = torch.randint(1, self.n_items, (k,), device=device)
            log_q = math.log(k / (self.n_items - 1))
            full = lambda shape: torch.full(shape, log_q, device=device)  # noqa: E731
            return neg, full(pos.shape), full((k,))
        if self.kind == "popularity":
            neg = torch.multinomial(self.item_probability, k, replacement=True)
        else:  # in_batch: the batch's own targets, each drawn in proportion to its frequency
            neg = pos[torch.randint(0, pos.numel(), (k,), device=device)]
        q = self.item_probability
        return neg, torch.log(q[pos] * k), torch.log(q[neg] * k)
