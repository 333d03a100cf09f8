"""Feeding RecBole so that each training interaction is encoded about once per epoch.

RecBole's ``SequentialDataset.data_augmentation`` turns every interaction into its own padded
prefix sample, and SASRec then scores only the last position: a user with n interactions is
encoded n times per epoch, each time up to MAX_ITEM_LIST_LENGTH (L) tokens long.

The paper instead encodes a user's sequence once and predicts the next item at every position.
``AllPositionDataset`` lets RecBole build and split its per-prefix samples as usual (so the
valid and test samples, the samplers and the evaluators are exactly RecBole's), then rewrites
the *training* split only: each user's training targets are re-joined into their sequence and
cut into windows of L inputs from the most recent end backwards, each window a row

    item_id_list       [L]  inputs  s_1 .. s_L          (0-padded on the right, as RecBole pads)
    next_item_id_list  [L]  targets s_2 .. s_{L+1}      (0 where a position is not a target)
    item_length        []   number of real inputs in the window
    item_id            []   the window's last target    (for RecBole's own negative sampler)

so every training interaction is a target exactly once per epoch, and long histories are trained
in full, not only their last L items. A window's first positions see only the items inside the
window (the earlier window is not carried over); that is the price of encoding each item once.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType


def target_list_field(config) -> str:
    """Name of the per-position target field, e.g. ``next_item_id_list``."""
    return "next_" + config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]


class AllPositionDataset(SequentialDataset):
    """A ``SequentialDataset`` whose training split has one row per window of a user's history.

    With ``train_all_positions: False`` it is RecBole's ``SequentialDataset`` unchanged.
    """

    def build(self) -> list:
        datasets = super().build()
        if self.config["train_all_positions"]:
            datasets[0] = self._all_position_split(datasets[0])
        return datasets

    def _all_position_split(self, train: SequentialDataset) -> SequentialDataset:
        inter = train.inter_feat
        L = self.max_item_list_len
        uid = inter[self.uid_field].numpy()
        prefix = inter[self.item_id_list_field].numpy()  # [N, L]
        prefix_len = inter[self.item_list_length_field].numpy()  # [N]
        target = inter[self.iid_field].numpy()  # [N]

        # Rows arrive grouped by the split, in time order within a user; a stable sort by user
        # keeps that order. A user's sequence is the first row's prefix, then every target.
        order = np.argsort(uid, kind="stable")
        users, starts, counts = np.unique(uid[order], return_index=True, return_counts=True)
        rows_uid, rows_x, rows_y = [], [], []
        for u, start, count in zip(users, starts, counts, strict=True):
            idx = order[start : start + count]
            first = idx[0]
            head = prefix[first, : prefix_len[first]]
            seq = np.concatenate([head, target[idx]])
            x, y = seq[:-1], seq[1:].copy()
            y[: len(head) - 1] = 0  # the prefix's own next items are not training targets here
            for end in range(len(x), 0, -L):
                begin = max(0, end - L)
                if y[begin:end].any():
                    rows_uid.append(u)
                    rows_x.append(x[begin:end])
                    rows_y.append(y[begin:end])

        R = len(rows_x)
        item_seq = np.zeros((R, L), dtype=np.int64)
        next_items = np.zeros((R, L), dtype=np.int64)
        lengths = np.fromiter((len(x) for x in rows_x), dtype=np.int64, count=R)
        for r, (x, y) in enumerate(zip(rows_x, rows_y, strict=True)):
            item_seq[r, : len(x)] = x
            next_items[r, : len(y)] = y
        last_target = next_items[np.arange(R), lengths - 1]

        field = target_list_field(self.config)
        self.set_field_property(field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, L)
        new_inter = Interaction(
            {
                self.uid_field: torch.from_numpy(np.asarray(rows_uid, dtype=np.int64)),
                self.iid_field: torch.from_numpy(last_target),
                self.item_id_list_field: torch.from_numpy(item_seq),
                field: torch.from_numpy(next_items),
                self.item_list_length_field: torch.from_numpy(lengths),
            }
        )
        self.logger.info(
            f"all-position training: {len(inter)} targets in {R} windows of <= {L} items"
        )
        return train.copy(new_inter)
