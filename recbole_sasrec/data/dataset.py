"""Feeding RecBole so that each training interaction is encoded about once per epoch, with data
preparation linear in the number of interactions.

RecBole's ``SequentialDataset`` turns every interaction into its own padded prefix sample (an
[N, L] matrix per field, built by a Python loop), and SASRec scores only the last position: a
user with n interactions is encoded n times per epoch. The paper encodes a sequence once and
predicts the next item at every position. With ``train_all_positions: True``,
``AllPositionDataset`` never builds per-prefix rows; from the interactions sorted by user and
time it computes, with array operations only, RecBole's split of the would-be samples
(``split.py``), the validation and test rows as RecBole builds them, and the training split as
windows of each user's training history:

    item_id_list       [L]  inputs  s_1 .. s_L          (0-padded on the right, as RecBole pads)
    next_item_id_list  [L]  targets s_2 .. s_{L+1}      (0 where a position is not a target)
    item_length        []   number of real inputs in the window
    item_id            []   the window's last target    (for RecBole's own negative sampler)

cut from the most recent end backwards, so that every training interaction is a target exactly
once per epoch and long histories are trained in full. ``window_context`` C: a window of a
history longer than L begins C items before its first target (inputs only), so every target
sees at least its C + 1 most recent items; n targets then take about n / (L - C) windows.
``train_prefixes``: every target a window of its own, its L most recent items scored at the
newest position only: RecBole's per-prefix rows (and the papers' code: S3-Rec, BSARec train
every prefix as a sample), built here so that they batch packed and evaluate with
``eval_exclude_history``. With ``positions_from_end`` the scored item then always takes the
position the newest item takes at test time.

The data set itself keeps one scalar row per would-be sample, in RecBole's order (RecBole's
samplers read its item column; ``dataset[index]`` builds the list fields of the rows asked for).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from ..core.fields import target_list_field
from .arrays import gather_windows, group_starts, ranks, take
from .features import ItemFeatureReader
from .full_sort import mark_histories
from .partitioned import PartitionedReader
from .reader import TypedReader
from .split import split_labels


class AllPositionDataset(PartitionedReader, ItemFeatureReader, TypedReader, SequentialDataset):
    """A ``SequentialDataset`` whose training split has one row per window of a user's history,
    prepared without per-prefix rows; with ``train_all_positions: False``, RecBole's."""

    @property
    def all_positions(self) -> bool:
        return bool(self.config["train_all_positions"])

    def _change_feat_format(self):
        if not self.all_positions:
            super()._change_feat_format()  # RecBole's: DataFrames to Interaction, then augment
            return
        Dataset._change_feat_format(self)
        self._aug_presets()  # declare the list fields exactly as RecBole's augmentation does

    # ---- the split, without per-prefix rows ----------------------------------------------------
    def build(self) -> list:
        if not self.all_positions:
            return super().build()
        if self.config["eval_args"]["order"] != "TO":
            raise ValueError("The ordering args for sequential recommendation has to be 'TO'")
        self._change_feat_format()
        self._check_field("uid_field", "time_field")
        inter = self.inter_feat
        # RecBole's augmentation sorts by (user, time), stably; so do we.
        order = np.lexsort((inter[self.time_field].numpy(), inter[self.uid_field].numpy()))
        self.inter_feat = inter = take(inter, order)
        uid = inter[self.uid_field].numpy()
        start, pos = group_starts(uid)  # per row: its user's first row, its place in the user
        # The would-be samples: every row but a user's first, in augmentation order; RecBole
        # then sorts them by their target's time, stably.
        targets = np.flatnonzero(pos >= 1)
        time = inter[self.time_field].numpy()
        samples = targets[np.argsort(time[targets], kind="stable")]
        split = split_labels(self.config["eval_args"], samples, uid, time)

        L = self.max_item_list_len
        valid = self._sample_rows(split.rows(1), start, L)
        test = self._sample_rows(split.rows(2), start, L)
        train = self._window_rows(split.rows(0), uid, start, pos, L)
        if self.config["eval_exclude_history"]:
            items = inter[self.iid_field].numpy()
            for name, part, rows in (
                ("valid", valid, split.rows(1)),
                ("test", test, split.rows(2)),
            ):
                mark_histories(part, rows, start, items, f"{name} targets", self.logger)
        self.inter_feat = take(inter, samples)  # the samples' scalar fields
        # ... and their list fields on demand (dataset[index], as get_flops reads one sample)
        self._sorted, self._start, self._samples = inter, start, samples
        # RecBole drops unused columns after augmenting: their list fields stay in the samples.
        before = set(self.inter_feat.interaction)
        self._drop_unused_col()
        for dropped in before - set(self.inter_feat.interaction):
            for part in (valid, test):
                part.drop(column=dropped)
        return [self.copy(train), self.copy(valid), self.copy(test)]

    def _sample_rows(self, rows: np.ndarray, start: np.ndarray, L: int) -> Interaction:
        """RecBole's per-prefix samples for the target rows ``rows`` only: every scalar field of
        the target, ``item_length``, and a list of the L items (and other inter fields) before
        it, 0-padded on the right (``SequentialDataset.data_augmentation``, vectorised)."""
        inter = self.inter_feat
        begin = np.maximum(start[rows], rows - L)
        length = rows - begin
        index = torch.from_numpy(rows)
        fields = {field: inter[field][index] for field in inter.interaction}
        fields[self.item_list_length_field] = torch.from_numpy(length.astype(np.int64))
        for field in inter.interaction:
            if field != self.uid_field:
                fields[getattr(self, f"{field}_list_field")] = gather_windows(
                    inter[field], begin, length, L
                )[0]
        return Interaction(fields)

    def _window_rows(self, rows, uid, start, pos, L: int) -> Interaction:
        """Windows of each user's training history; ``rows`` are the training targets, a prefix
        of each user's interactions after the first (true of every split RecBole makes)."""
        C = self.config["window_context"]
        stride = L - C
        items = self.inter_feat[self.iid_field]
        prefixes = self.config["train_prefixes"]
        users, first_target = np.unique(uid[rows], return_index=True)
        per_user = uid.max() + 1 if len(uid) else 0
        k = np.bincount(uid[rows], minlength=per_user)[users]  # training targets per user
        # distinct positions >= 1 are exactly 1..k when they sum to k (k + 1) / 2
        if not np.array_equal(
            np.bincount(uid[rows], weights=pos[rows], minlength=per_user)[users], k * (k + 1) / 2
        ):
            raise RuntimeError("training targets are not a prefix of each user's history")
        user_begin = start[rows[first_target]]  # each user's first interaction (sorted row)
        if prefixes:  # one window per target, ending at it: its input positions 0 .. end - 1
            windows = k
        else:
            windows = np.where(k <= L, 1, 1 + -(-(k - L) // stride))  # ceil
        user_of = np.repeat(np.arange(len(users)), windows)
        j = ranks(windows)
        end = k[user_of] - j * (1 if prefixes else stride)  # one past the last input (in user)
        begin = np.maximum(0, end - L)
        if prefixes:  # only the newest input's next item is a target
            first_target_pos = end - 1
        else:
            first_target_pos = np.where(end > L, end - stride, 0)
        length = end - begin
        base = user_begin[user_of] + begin  # sorted row of the window's first input
        item_seq, real = gather_windows(items, base, length, L)
        next_items, _ = gather_windows(items, base + 1, length, L)
        steps = np.arange(L)[None, :]
        is_target = real & (begin[:, None] + steps >= first_target_pos[:, None])
        next_items[torch.from_numpy(~is_target)] = 0
        last_target = next_items[torch.arange(len(end)), torch.from_numpy(length - 1)]

        field = target_list_field(self.config)
        self.set_field_property(field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, L)
        self.logger.info(
            f"all-position training: {len(rows)} targets in {len(end)} windows of <= {L} items"
            + (f" ({C} of them context)" if C else "")
            + (", one target each (train_prefixes)" if prefixes else "")
        )
        return Interaction(
            {
                self.uid_field: torch.from_numpy(users[user_of].astype(np.int64)),
                self.iid_field: last_target,
                self.item_id_list_field: item_seq,
                field: next_items,
                self.item_list_length_field: torch.from_numpy(length.astype(np.int64)),
            }
        )

    def __getitem__(self, index, join=True):
        """RecBole's ``dataset[index]``; on the data set itself (the samples, kept without their
        list fields) the list fields of the samples asked for are built for them alone."""
        if self.item_id_list_field in self.inter_feat or not hasattr(self, "_samples"):
            return super().__getitem__(index, join)
        rows = np.atleast_1d(self._samples[np.asarray(index)])
        saved, self.inter_feat = self.inter_feat, self._sorted
        try:
            df = self._sample_rows(rows, self._start, self.max_item_list_len)
        finally:
            self.inter_feat = saved
        for field in set(df.interaction) - set(saved.interaction) - set(self.field2type):
            df.drop(column=field)  # dropped as unused after the lists were built
        return self.join(df) if join else df

    # ---- what the models and checks read ---------------------------------------------------
    def training_targets(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(users, items) of every training target, once built; None before."""
        field = target_list_field(self.config)
        if not hasattr(self.inter_feat, "interaction"):  # not built: a DataFrame
            return None
        if field not in self.inter_feat:  # RecBole's per-prefix rows: each row's target
            return self.inter_feat[self.uid_field].numpy(), self.inter_feat[self.iid_field].numpy()
        targets = self.inter_feat[field]
        is_target = targets > 0
        users = self.inter_feat[self.uid_field].unsqueeze(1).expand_as(targets)[is_target]
        return users.numpy(), targets[is_target].numpy()

    def training_history(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(users, items) of every item in the training windows, inputs and targets."""
        field = target_list_field(self.config)
        if not hasattr(self.inter_feat, "interaction") or field not in self.inter_feat:
            return None
        items = torch.cat([self.inter_feat[self.item_id_list_field], self.inter_feat[field]], 1)
        users = self.inter_feat[self.uid_field].unsqueeze(1).expand_as(items)
        real = items > 0
        return users[real].numpy(), items[real].numpy()

    def interactions_per_user(self) -> np.ndarray | None:
        """Interactions of each user id, once built by ``build()`` (None before or with
        RecBole's rows)."""
        if not hasattr(self, "_sorted"):
            return None
        return np.bincount(self._sorted[self.uid_field].numpy())

    @property
    def item_counter(self) -> Counter:
        """Interactions per item; for a training split of windows, per training target (what
        RecBole's per-prefix rows count, for metrics such as AveragePopularity)."""
        if target_list_field(self.config) not in getattr(self.inter_feat, "interaction", {}):
            return super().item_counter
        return Counter(self.training_targets()[1])

    @property
    def user_counter(self) -> Counter:
        if target_list_field(self.config) not in getattr(self.inter_feat, "interaction", {}):
            return super().user_counter
        return Counter(self.training_targets()[0])
