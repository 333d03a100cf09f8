"""RecBole's train/valid/test split of the would-be per-prefix samples, as labels, with array
operations only: the same rows in the same order as ``recbole.data.Dataset.build`` (LS, RS and
TS; ``tests`` compare every field with RecBole's own)."""

from __future__ import annotations

import numpy as np

from .arrays import group_starts, run_sizes

LEAVE = {"valid_and_test": 2, "valid_only": 1, "test_only": 1}  # samples held out per user


def min_interactions(leave_one: str, part: str) -> int:
    """Interactions a user needs for a ``part`` ("valid", "test") row under leave-one-out: the
    first is never a target, one sample stays for training, and with ``valid_and_test`` the
    validation row is the second held out."""
    return 2 + (2 if leave_one == "valid_and_test" and part == "valid" else 1)


class Split:
    """Samples (sorted row of each target) in the order RecBole lists them, each labelled
    0 train, 1 valid, 2 test."""

    def __init__(self, samples: np.ndarray, labels: np.ndarray):
        self.samples, self.labels = samples, labels

    def rows(self, label: int) -> np.ndarray:
        return self.samples[self.labels == label]


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


def split_labels(eval_args: dict, samples: np.ndarray, uid: np.ndarray, time: np.ndarray) -> Split:
    """RecBole's train/valid/test split (``Dataset.build``) of the would-be samples, as a
    label per sample in the order RecBole lists each part."""
    split_args = eval_args["split"]
    if not isinstance(split_args, dict) or len(split_args) != 1:
        raise ValueError(f"The split_args [{split_args}] should be a dict.")
    mode, value = next(iter(split_args.items()))
    group_by = eval_args["group_by"]
    if mode == "RS" and (group_by is None or str(group_by).lower() == "none"):
        ratios = [r / sum(value) for r in value]
        sizes = calcu_split_sizes(len(samples), ratios)
        labels = np.repeat(np.arange(len(sizes)), sizes)
        return Split(samples, labels)
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
        leave = LEAVE.get(value)
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
    return Split(grouped, labels)
