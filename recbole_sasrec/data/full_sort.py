"""Full ranking for our models: batches bounded by their scores, and the literature's protocol.

``eval_exclude_history: True`` removes the items of the user's whole earlier sequence from the
ranking, as S3-Rec, ICLRec, BSARec and their successors evaluate (RecBole's sequential full
ranking keeps them). A target that repeats an earlier item is removed with it and counts as a
miss, as in the papers' code: keeping it alone would tell the ranking which seen item is the
answer. The build logs how many targets that makes.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.interaction import Interaction

from ..core.keys import boolean
from .arrays import ranks

FULL_SORT_SCORES = 2**26  # scores a batch holds at most
# Fields of evaluation rows with eval_exclude_history: the user's earlier interactions are the
# sorted rows [HISTORY_BEGIN, HISTORY_END) of the data set's ``_sorted`` interactions.
HISTORY_BEGIN = "history_begin"
HISTORY_END = "history_end"


def _full_ranking_of_our_rows(config) -> str | None:
    if not config["eval_exclude_history"]:
        return None
    mode = config["eval_args"]["mode"]
    sampled = {p: m for p, m in mode.items() if m != "full"} if isinstance(mode, dict) else mode
    if sampled and sampled != "full":
        return (
            f"eval_exclude_history=True removes the user's earlier items from a full ranking, "
            f"but eval_args mode is {sampled}; allowed: mode 'full', or eval_exclude_history=False"
        )
    if not config["train_all_positions"]:
        return (
            "eval_exclude_history=True reads each user's whole history from all-position "
            "training's data set; allowed: train_all_positions=True (with train_prefixes=True "
            "for RecBole's per-prefix training), or eval_exclude_history=False"
        )
    return None


KEYS = (
    boolean(
        "eval_exclude_history",
        False,
        "full ranking without the user's earlier items (the literature's protocol); "
        "False: RecBole's",
        relation=_full_ranking_of_our_rows,
    ),
)


def mark_histories(part, rows, start, items, name: str, logger) -> None:
    """Give the evaluation rows ``part`` (targets at sorted rows ``rows``, users starting at
    ``start``) where their earlier interactions lie, and log the targets that repeat one."""
    begin, sizes = start[rows], rows - start[rows]
    bounds = {HISTORY_BEGIN: torch.from_numpy(begin), HISTORY_END: torch.from_numpy(rows)}
    part.update(Interaction(bounds))
    owner = np.repeat(np.arange(len(rows)), sizes)
    earlier = items[np.repeat(begin, sizes) + ranks(sizes)]
    repeats = np.unique(owner[earlier == items[rows][owner]])
    logger.info(
        f"eval_exclude_history: {len(repeats)} of {len(rows)} {name} repeat an earlier item of "
        f"their user; it is removed from their ranking, so they count as misses"
    )


class BoundedFullSortEvalDataLoader(FullSortEvalDataLoader):
    """RecBole's full-ranking loader with a batch of at most FULL_SORT_SCORES scores (for
    sequential models RecBole's batch is ``eval_batch_size`` rows over every item: 16 GB at 1M
    items), and the rows' earlier items as RecBole's history index when they are marked.
    ``exclude_history = False`` ranks the same rows as RecBole does."""

    exclude_history = True

    def _init_batch_size_and_step(self):
        super()._init_batch_size_and_step()
        if self.is_sequential:
            rows = min(self.step, max(1, FULL_SORT_SCORES // self._dataset.item_num))
            self.step = rows
            self.set_batch_size(rows)

    def collate_fn(self, index):
        """RecBole's batch; its history index (rows [n], items [n]) the rows' earlier items,
        which RecBole's trainer scores -inf."""
        interaction, history, positive_u, positive_i = super().collate_fn(index)
        if self.is_sequential and self.exclude_history and HISTORY_BEGIN in interaction:
            begin = interaction[HISTORY_BEGIN].numpy()
            sizes = interaction[HISTORY_END].numpy() - begin
            items = self._dataset._sorted[self._dataset.iid_field]
            rows = torch.from_numpy(np.repeat(np.arange(len(begin)), sizes))
            history = rows, items[torch.from_numpy(np.repeat(begin, sizes) + ranks(sizes))]
        return interaction, history, positive_u, positive_i
