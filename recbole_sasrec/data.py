"""Feeding RecBole so that each training interaction is encoded about once per epoch, with data
preparation linear in the number of interactions.

RecBole's ``SequentialDataset.data_augmentation`` turns every interaction into its own padded
prefix sample (an [N, L] matrix per inter field, built by a Python loop over all N
interactions), splits those samples into train, valid and test, and SASRec then scores only the
last position: a user with n interactions is encoded n times per epoch.

The paper instead encodes a user's sequence once and predicts the next item at every position.
With ``train_all_positions: True``, ``AllPositionDataset`` never builds the per-prefix rows:
from the interaction table sorted by user and time it computes, with array operations only,

* RecBole's split of the (would-be) per-prefix samples, exactly: the same rows in the same
  order for the LS (``valid_and_test``, ``valid_only``, ``test_only``), RS (grouped by user or
  not) and TS splits (``tests/test_data.py`` compares every field with RecBole's own);
* the validation and test rows as RecBole builds them (every list field, ``item_length``, every
  scalar field of the target), for those rows only;
* the training split as windows of a user's training history, each row

    item_id_list       [L]  inputs  s_1 .. s_L          (0-padded on the right, as RecBole pads)
    next_item_id_list  [L]  targets s_2 .. s_{L+1}      (0 where a position is not a target)
    item_length        []   number of real inputs in the window
    item_id            []   the window's last target    (for RecBole's own negative sampler)

cut from the most recent end backwards, so that every training interaction is a target exactly
once per epoch and long histories are trained in full, not only their last L items.

``window_context`` (C) sets how much of the earlier history a window carries: a window of a
history longer than L begins C items before its first target, and those C positions are inputs
only (no target), so every target sees at least its C + 1 most recent items (all of them when it
has fewer). With C = 0 windows do not overlap and a window's first positions see only the items
inside their window; with C > 0 a history of n targets takes about n / (L - C) windows instead of
n / L. ``benchmarks.overlap`` measures what that buys.

The dataset object itself keeps one scalar row per would-be sample (no list fields), in RecBole's
order: RecBole's samplers read its item column (``pop<N>`` evaluation draws from it).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import torch
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

# Fields of packed training rows (``train_batching: packed``, ``dataloader.pack_windows``):
SEGMENTS = "window_segment"  # [B, L] the window (1, 2, ...) of each position, 0 for padding
SEGMENT_USERS = "window_user_id"  # [B, L] the user of each position's window
# Fields of validation and test rows with ``eval_exclude_history: True``: the user's earlier
# interactions are the sorted rows [HISTORY_BEGIN, HISTORY_END) of the data set's ``_sorted``.
HISTORY_BEGIN = "history_begin"
HISTORY_END = "history_end"


def target_list_field(config) -> str:
    """Name of the per-position target field, e.g. ``next_item_id_list``."""
    return "next_" + config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]


# ---- array helpers ----------------------------------------------------------------------------
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


def calcu_split_sizes(total: int, ratios: list[float]) -> list[int]:
    """RecBole's ``Dataset._calcu_split_ids`` as part sizes (the first part takes the rest)."""
    cnt = [int(ratios[i] * total) for i in range(len(ratios))]
    cnt[0] = total - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


class AllPositionDataset(SequentialDataset):
    """A ``SequentialDataset`` whose training split has one row per window of a user's history,
    prepared without per-prefix rows (see the module docstring).

    With ``train_all_positions: False`` it is RecBole's ``SequentialDataset`` unchanged.
    """

    @property
    def all_positions(self) -> bool:
        return bool(self.config["train_all_positions"])

    # ---- reading the atomic files -------------------------------------------------------------
    def _load_feat(self, filepath, source):
        """RecBole's ``_load_feat`` read with pandas' C parser, token columns as categories.

        RecBole reads with ``engine="python"`` and every token as its own Python string: the
        slowest and largest part of preparing a big log. The frame is the same (same columns,
        values and order; ``tests/test_data.py`` compares RecBole's processed frames, id maps
        included), so everything after reading is RecBole's own. Files with sequence fields or
        a separator of more than one character are read by RecBole's code."""
        separator, encoding = self.config["field_separator"], self.config["encoding"]
        with open(filepath, encoding=encoding) as f:
            head = f.readline()[:-1]
        typed = [field_type.split(":") for field_type in head.split(separator)]
        if len(separator) != 1 or any(len(t) != 2 or t[1].endswith("seq") for t in typed):
            return super()._load_feat(filepath, source)
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        columns, usecols, dtype = [], [], {}
        for field_type, (field, ftype) in zip(head.split(separator), typed, strict=True):
            try:
                ftype = FeatureType(ftype)
            except ValueError:
                raise ValueError(f"Type {ftype} from field {field} is not supported.") from None
            if (load_col is not None and field not in load_col) or (
                unload_col is not None and field in unload_col
            ):
                continue
            if isinstance(source, FeatureSource) or source != "link":
                self.field2source[field] = source
                self.field2type[field] = ftype
                self.field2seqlen[field] = 1
                if ftype == FeatureType.FLOAT:
                    self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(field_type)
            dtype[field_type] = np.float64 if ftype == FeatureType.FLOAT else "category"
        if not columns:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None
        frame = pd.read_csv(
            filepath, delimiter=separator, usecols=usecols, dtype=dtype, encoding=encoding
        )
        frame.columns = columns
        return frame

    def _filter_by_inter_num(self):
        """RecBole's, without counting every interaction's user and item in Python when both
        intervals admit any count (RecBole's default ``[0,inf)``): nothing would be removed."""
        everything = [("[", 0.0, float("inf"), ")")]
        intervals = (self.config["user_inter_num_interval"], self.config["item_inter_num_interval"])
        if all(self._parse_intervals_str(i) in (None, everything) for i in intervals):
            return
        super()._filter_by_inter_num()

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
        split = self._split_labels(samples, uid, time)

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
                self._mark_histories(name, part, rows, start, items)
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

    def _split_labels(self, samples: np.ndarray, uid: np.ndarray, time: np.ndarray) -> _Split:
        """RecBole's train/valid/test split (``Dataset.build``) of the would-be samples, as a
        label per sample in the order RecBole lists each part."""
        args = self.config["eval_args"]
        split_args = args["split"]
        if not isinstance(split_args, dict) or len(split_args) != 1:
            raise ValueError(f"The split_args [{split_args}] should be a dict.")
        mode, value = next(iter(split_args.items()))
        group_by = args["group_by"]
        if mode == "RS" and (group_by is None or str(group_by).lower() == "none"):
            ratios = [r / sum(value) for r in value]
            sizes = calcu_split_sizes(len(samples), ratios)
            labels = np.repeat(np.arange(len(sizes)), sizes)
            return _Split(samples, labels)
        if mode == "RS" and group_by != "user":
            raise NotImplementedError(f"The grouping method [{group_by}] has not been implemented.")
        # Grouped by user, groups in order of each user's first sample (RecBole's
        # _grouped_index: a dict filled in sample order), samples in order within a group.
        first = np.unique(uid[samples], return_index=True)
        rank_of_user = np.empty(uid.max() + 1 if len(uid) else 0, dtype=np.int64)
        rank_of_user[first[0]] = first[1]
        grouped = samples[np.argsort(rank_of_user[uid[samples]], kind="stable")]
        user_start, rank = group_starts(uid[grouped])
        size = run_sizes(user_start)
        labels = np.zeros(len(grouped), dtype=np.int64)
        if mode == "LS":
            leave = {"valid_and_test": 2, "valid_only": 1, "test_only": 1}.get(value)
            if leave is None:
                raise NotImplementedError(f"The leave_one_mode [{value}] has not been implemented.")
            legal = np.minimum(leave, size - 1)  # RecBole's legal_leave_one_num
            tail = rank - (size - legal)  # 0, 1 for the last `legal` samples of a group
            held = tail >= 0
            if value == "valid_and_test":  # the last to test; the one before to valid if any
                labels[held] = np.where(tail[held] == legal[held] - 1, 2, 1)
            else:
                labels[held] = 1 if value == "valid_only" else 2
        elif mode == "RS":
            ratios = [r / sum(value) for r in value]
            parts = {int(c): calcu_split_sizes(int(c), ratios) for c in np.unique(size)}
            first_end = np.array([parts[int(c)][0] for c in size])
            second_end = first_end + np.array([parts[int(c)][1] for c in size])
            labels = np.where(rank < first_end, 0, np.where(rank < second_end, 1, 2))
        elif mode == "TS":
            ratios = [r / sum(value) for r in value]
            boundary = np.percentile(time[samples], 100 * (1 - ratios[-1]))
            early = time[grouped] <= boundary
            # a group's samples are in time order: its early ones come first
            n_early = np.bincount(user_start, weights=early, minlength=len(grouped))[user_start]
            split_point = (n_early * (ratios[0] / (1 - ratios[2]))).astype(np.int64)
            labels = np.where(~early, 2, np.where(rank < split_point, 0, 1))
        else:
            raise NotImplementedError(f"The splitting_method [{mode}] has not been implemented.")
        return _Split(grouped, labels)

    # ---- rows ---------------------------------------------------------------------------------
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

    def _mark_histories(self, name, part, rows, start, items) -> None:
        """Where each evaluation row's earlier interactions lie (``eval_exclude_history``), and
        a log line counting the targets that repeat one of them (the ranking removes them)."""
        begin, sizes = start[rows], rows - start[rows]
        part.update(
            Interaction(
                {HISTORY_BEGIN: torch.from_numpy(begin), HISTORY_END: torch.from_numpy(rows)}
            )
        )
        owner = np.repeat(np.arange(len(rows)), sizes)
        earlier = items[np.repeat(begin, sizes) + ranks(sizes)]
        repeats = np.unique(owner[earlier == items[rows][owner]])
        self.logger.info(
            f"eval_exclude_history: {len(repeats)} of {len(rows)} {name} targets repeat an "
            f"earlier item of their user; it is removed from their ranking, so they count as misses"
        )

    def _window_rows(self, rows, uid, start, pos, L: int) -> Interaction:
        """Windows of each user's training history; ``rows`` are the training targets, a prefix
        of each user's interactions after the first (true of every split RecBole makes)."""
        C = self.config["window_context"] or 0
        stride = L - C
        items = self.inter_feat[self.iid_field]
        users, first_target = np.unique(uid[rows], return_index=True)
        per_user = uid.max() + 1 if len(uid) else 0
        k = np.bincount(uid[rows], minlength=per_user)[users]  # training targets per user
        # distinct positions >= 1 are exactly 1..k when they sum to k (k + 1) / 2
        if not np.array_equal(
            np.bincount(uid[rows], weights=pos[rows], minlength=per_user)[users], k * (k + 1) / 2
        ):
            raise RuntimeError("training targets are not a prefix of each user's history")
        user_begin = start[rows[first_target]]  # each user's first interaction (sorted row)
        windows = np.where(k <= L, 1, 1 + -(-(k - L) // stride))  # ceil
        user_of = np.repeat(np.arange(len(users)), windows)
        j = ranks(windows)
        end = k[user_of] - j * stride  # one past the window's last input, within the user
        begin = np.maximum(0, end - L)
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

    # ---- counts over training targets, not windows ----------------------------------------
    def _training_targets(self) -> tuple[np.ndarray, np.ndarray] | None:
        field = target_list_field(self.config)
        if field not in self.inter_feat:
            return None
        targets = self.inter_feat[field]
        is_target = targets > 0
        users = self.inter_feat[self.uid_field].unsqueeze(1).expand_as(targets)[is_target]
        return users.numpy(), targets[is_target].numpy()

    @property
    def item_counter(self) -> Counter:
        """Interactions per item; for a training split of windows, per training target (what
        RecBole's per-prefix training rows count, for metrics such as AveragePopularity)."""
        found = self._training_targets()
        return super().item_counter if found is None else Counter(found[1])

    @property
    def user_counter(self) -> Counter:
        found = self._training_targets()
        return super().user_counter if found is None else Counter(found[0])


class _Split:
    """Samples (sorted row of each target) in the order RecBole lists them, each labelled
    0 train, 1 valid, 2 test."""

    def __init__(self, samples: np.ndarray, labels: np.ndarray):
        self.samples, self.labels = samples, labels

    def rows(self, label: int) -> np.ndarray:
        return self.samples[self.labels == label]


def ranks(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size - 1 for each size, concatenated: [sum(sizes)]."""
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(int(sizes.sum())) - offsets
