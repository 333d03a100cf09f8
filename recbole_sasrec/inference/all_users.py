"""Recommendations for many users at once, batch by batch: the part of ``Recommender`` that
reads every user's history from the training data (CSR arrays, never a users x items matrix)
and writes the answers to a file.

``AllUsers`` is mixed into ``Recommender``, whose methods it calls: ``_histories()`` (offsets,
items), ``user_ids``, ``_check_k``, ``_batch`` and ``_top``, and its ``_user_tokens`` and
``_item_tokens``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from ..data.arrays import ranks
from . import checks
from .output import check_output, write_frames


class AllUsers:
    def iter_recommendations(
        self,
        users: Sequence[str] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 1024,
    ) -> Iterator[pd.DataFrame]:
        """Top-k of many users (all users with a history when ``users`` is None), a DataFrame
        per batch of ``batch_size`` users: columns user, rank, item, score. Each user's history
        is encoded once; seen items are masked per batch from the histories' CSR arrays, never
        through a users x items matrix. The arguments and users are checked at the call, before
        the first batch is asked for."""
        k = checks.count("k", k)
        exclude_seen = checks.flag("exclude_seen", exclude_seen)
        batch_size = checks.count("batch_size", batch_size)
        offsets, items = self._histories()
        if users is None:
            ids = np.flatnonzero(np.diff(offsets) > 0)
        else:
            users = checks.tokens("users", users)
            ids = self.user_ids(list(dict.fromkeys(str(u) for u in users)))  # each user once
        counts = np.diff(offsets)[ids]
        if len(ids):
            worst = int(np.argmax(counts))
            seen = len(set(items[offsets[ids[worst]] : offsets[ids[worst] + 1]].tolist()))
            self._check_k(k, seen if exclude_seen else 0, f"user {self._user_tokens[ids[worst]]!r}")
        return self._batches(ids, k, exclude_seen, batch_size)

    def _batches(
        self, ids: np.ndarray, k: int, exclude_seen: bool, batch_size: int
    ) -> Iterator[pd.DataFrame]:
        offsets, items = self._histories()
        for lo in range(0, len(ids), batch_size):
            batch_ids = ids[lo : lo + batch_size]
            start, end = offsets[batch_ids], offsets[batch_ids + 1]
            batch = self._batch(items, start, end)
            if exclude_seen:
                sizes = end - start
                seen_rows = np.repeat(np.arange(len(batch_ids)), sizes)
                seen_items = items[np.repeat(start, sizes) + ranks(sizes)]
            else:
                seen_rows = seen_items = np.zeros(0, dtype=np.int64)
            top_ids, top_scores = self._top(batch, seen_rows, seen_items, k)
            yield pd.DataFrame(
                {
                    "user": np.repeat(self._user_tokens[batch_ids], k),
                    "rank": np.tile(np.arange(1, k + 1), len(batch_ids)),
                    "item": self._item_tokens[top_ids.reshape(-1)],
                    "score": top_scores.reshape(-1),
                }
            )

    def recommend_all(
        self,
        users: Sequence[str] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 1024,
    ) -> pd.DataFrame:
        """``iter_recommendations`` in one DataFrame (user, rank, item, score)."""
        parts = list(self.iter_recommendations(users, k, exclude_seen, batch_size))
        if not parts:
            return pd.DataFrame({"user": [], "rank": [], "item": [], "score": []})
        return pd.concat(parts, ignore_index=True)

    def write_recommendations(
        self,
        out: str | os.PathLike,
        users: Sequence[str] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        batch_size: int = 1024,
        replace: bool = False,
    ) -> int:
        """Write ``iter_recommendations`` batch by batch to ``out`` (.csv or .parquet); the file
        appears only when complete, and an existing one is replaced only with ``replace``; a full
        disk is a ``DiskFullError`` naming ``out`` (the previous file kept). Returns the number
        of users."""
        check_output(out, checks.flag("replace", replace))
        batches = self.iter_recommendations(users, k, exclude_seen, batch_size)
        return write_frames(out, batches, k, replace)
