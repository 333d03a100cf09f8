"""Top-k recommendations and attention maps from a saved model, in the data set's own tokens.

Users and items are given and returned as the tokens of the data files (``"196"``, ``"242"``),
never as RecBole's internal ids.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .checks import ConfigError
from .data import ranks
from .files import atomic_open
from .quick_start import load_model

OUTPUT_FORMATS = (".csv", ".parquet")


@dataclass
class Recommendation:
    """One recommended item: its token, score and title (when the data set has titles)."""

    rank: int
    item: str
    score: float
    title: str | None = None


class Recommender:
    """A loaded checkpoint that answers recommendation and attention queries.

    ``Recommender(model_file)`` loads once; ``recommend``, ``recommend_all`` and ``attention``
    can then be called many times. Long inputs are cut to their most recent
    MAX_ITEM_LIST_LENGTH items, as training does. ``data_path`` reads the data from another
    folder than the one the checkpoint was trained from; ``allow_pickle`` also loads a file that
    needs full unpickling (which runs code the file holds: only for a file you trust).
    """

    def __init__(self, model_file: str, data_path: str | None = None, allow_pickle: bool = False):
        self.model_file = model_file
        self.config, self.model, self.dataset = load_model(model_file, data_path, allow_pickle)
        self.uid_field, self.iid_field = self.dataset.uid_field, self.dataset.iid_field
        self.max_len = self.config["MAX_ITEM_LIST_LENGTH"]
        self._item_token_id = self.dataset.field2token_id[self.iid_field]
        self._item_tokens = self.dataset.field2id_token[self.iid_field]
        self._user_tokens = self.dataset.field2id_token[self.uid_field]
        self._csr = None
        self._titles = None

    # ---- inputs ---------------------------------------------------------------------------
    def _histories(self) -> tuple[np.ndarray, np.ndarray]:
        """Every user's history, oldest first, as CSR arrays over internal user ids:
        ``items[offsets[u]:offsets[u + 1]]``."""
        if self._csr is None:
            feat = self.dataset.inter_feat  # filtered and remapped, one row per interaction
            users = feat[self.uid_field].to_numpy()
            order = np.lexsort((feat[self.dataset.time_field].to_numpy(), users))
            counts = np.bincount(users, minlength=len(self._user_tokens))
            offsets = np.concatenate([[0], np.cumsum(counts)])
            self._csr = offsets, feat[self.iid_field].to_numpy()[order]
        return self._csr

    def user_ids(self, users: Sequence[str]) -> np.ndarray:
        """User tokens -> internal ids of users with a history; an error names the unknown."""
        token_id = self.dataset.field2token_id[self.uid_field]
        offsets, _ = self._histories()
        ids = np.array([token_id.get(str(u), 0) for u in users], dtype=np.int64)
        unknown = [
            str(u)
            for u, i in zip(users, ids, strict=True)
            if i == 0 or offsets[i + 1] == offsets[i]
        ]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            who = f"user={unknown[0]!r} is" if len(unknown) == 1 else f"{len(unknown)} users are"
            raise ValueError(
                f"{who} not a user of data set {self.config['dataset']!r}"
                + (f" ({shown})" if len(unknown) > 1 else "")
                + f" (tokens as in its .inter file, e.g. {self._user_tokens[1]!r})"
            )
        return ids

    def history(self, user: str) -> list[int]:
        """A known user's whole interaction history, oldest first, as internal item ids."""
        offsets, items = self._histories()
        (uid,) = self.user_ids([user])
        return items[offsets[uid] : offsets[uid + 1]].tolist()

    def item_ids(self, items: Sequence[str]) -> list[int]:
        """Item tokens -> internal ids; an error names every unknown token."""
        if len(items) == 0:
            raise ValueError("items is empty: give at least one item token")
        unknown = [i for i in items if str(i) not in self._item_token_id]
        if unknown:
            raise ValueError(
                f"items {unknown} are not items of data set {self.config['dataset']!r}"
            )
        return [self._item_token_id[str(i)] for i in items]

    def _batch(self, sequences: list[list[int]]) -> dict[str, torch.Tensor]:
        recent = [s[-self.max_len :] for s in sequences]
        seq = torch.zeros(len(recent), self.max_len, dtype=torch.long)
        for row, s in enumerate(recent):
            seq[row, : len(s)] = torch.tensor(s)
        lengths = torch.tensor([len(s) for s in recent])
        device = self.config["device"]
        return {self.model.ITEM_SEQ: seq.to(device), self.model.ITEM_SEQ_LEN: lengths.to(device)}

    # ---- outputs --------------------------------------------------------------------------
    def title(self, item: str) -> str | None:
        if self._titles is None:
            self._titles = read_titles(self.config["data_path"], self.config["dataset"])
        return self._titles.get(item)

    def _check_k(self, k: int, seen: int = 0, who: str = "") -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r} must be a positive integer")
        n_items = self.model.n_items - 1  # item id 0 is padding
        if k > n_items - seen:
            unseen = f", {n_items - seen} of them not in the history of {who}" if seen else ""
            raise ValueError(
                f"k={k} is larger than the number of items that can be recommended: the data "
                f"set has {n_items} items{unseen}; allowed: k <= {n_items - seen}"
            )

    @torch.no_grad()
    def _top(self, batch: dict, seen_rows, seen_items, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.model.full_sort_predict(batch).cpu()  # [B, n_items]
        scores[:, 0] = -torch.inf
        scores[torch.as_tensor(seen_rows), torch.as_tensor(seen_items)] = -torch.inf
        return scores.topk(k, dim=1)

    def recommend(
        self,
        users: Sequence[str] | None = None,
        item_sequences: Sequence[Sequence[str]] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
    ) -> list[list[Recommendation]]:
        """Top-k items for each user (their history) or each item sequence, best first."""
        if (users is None) == (item_sequences is None):
            raise ValueError("give exactly one of users=[...] or item_sequences=[[...], ...]")
        if users is not None:
            sequences = [self.history(u) for u in users]
            names = [f"user {u!r}" for u in users]
        else:
            sequences = [self.item_ids(list(s)) for s in item_sequences]
            names = [f"sequence {i + 1}" for i in range(len(sequences))]
        for seq, who in zip(sequences, names, strict=True):
            self._check_k(k, len(set(seq)) if exclude_seen else 0, who)
        rows = [np.full(len(s), r) for r, s in enumerate(sequences)] if exclude_seen else [[]]
        cols = sequences if exclude_seen else [[]]
        top = self._top(
            self._batch(sequences),
            np.concatenate(rows).astype(np.int64),
            np.concatenate([np.asarray(c, dtype=np.int64) for c in cols]),
            k,
        )
        return [
            [
                Recommendation(rank + 1, item, float(score), self.title(item))
                for rank, (item, score) in enumerate(
                    zip(self._item_tokens[ids.numpy()].tolist(), values.tolist(), strict=True)
                )
            ]
            for ids, values in zip(top.indices, top.values, strict=True)
        ]

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
        through a users x items matrix."""
        offsets, items = self._histories()
        if users is None:
            ids = np.flatnonzero(np.diff(offsets) > 0)
        else:
            ids = self.user_ids(list(users))
        counts = np.diff(offsets)[ids]
        if len(ids):
            worst = int(np.argmax(counts))
            seen = len(set(items[offsets[ids[worst]] : offsets[ids[worst] + 1]].tolist()))
            self._check_k(k, seen if exclude_seen else 0, f"user {self._user_tokens[ids[worst]]!r}")
        L, device = self.max_len, self.config["device"]
        for lo in range(0, len(ids), batch_size):
            batch_ids = ids[lo : lo + batch_size]
            start, end = offsets[batch_ids], offsets[batch_ids + 1]
            length = np.minimum(end - start, L)
            steps = np.arange(L)
            index = np.where(steps < length[:, None], (end - length)[:, None] + steps, 0)
            seq = torch.from_numpy(np.where(steps < length[:, None], items[index], 0))
            batch = {
                self.model.ITEM_SEQ: seq.to(device),
                self.model.ITEM_SEQ_LEN: torch.from_numpy(length).to(device),
            }
            if exclude_seen:
                sizes = end - start
                seen_rows = np.repeat(np.arange(len(batch_ids)), sizes)
                seen_items = items[np.repeat(start, sizes) + ranks(sizes)]
            else:
                seen_rows = seen_items = np.zeros(0, dtype=np.int64)
            top = self._top(batch, seen_rows, seen_items, k)
            yield pd.DataFrame(
                {
                    "user": np.repeat(self._user_tokens[batch_ids], k),
                    "rank": np.tile(np.arange(1, k + 1), len(batch_ids)),
                    "item": self._item_tokens[top.indices.numpy().reshape(-1)],
                    "score": top.values.numpy().reshape(-1),
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
    ) -> int:
        """Write ``iter_recommendations`` batch by batch to ``out``: CSV or Parquet, chosen by
        its extension; the file appears only when complete. Returns the number of users."""
        suffix = Path(out).suffix.lower()
        if suffix not in OUTPUT_FORMATS:
            raise ValueError(
                f"out={str(out)!r}: unknown output format {suffix!r}; allowed: "
                f"{', '.join(OUTPUT_FORMATS)}"
            )
        written = 0
        batches = self.iter_recommendations(users, k, exclude_seen, batch_size)
        if suffix == ".csv":
            with atomic_open(out, "w", encoding="utf-8", newline="") as f:
                for i, frame in enumerate(batches):
                    frame.to_csv(f, index=False, header=i == 0)
                    written += len(frame) // k
                if written == 0:
                    f.write("user,rank,item,score\n")
            return written
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_open(out, "wb") as f:
            writer = None
            for frame in batches:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(f, table.schema)
                writer.write_table(table)
                written += len(frame) // k
            if writer is not None:
                writer.close()
        return written

    @torch.no_grad()
    def attention(self, user: str | None = None, items: Sequence[str] | None = None):
        """Attention weights of every block for one user's most recent sequence (or an item
        sequence): ``(item tokens of the sequence, [dict name -> [h, T, ...] per block])``."""
        if not hasattr(self.model, "attention_maps"):
            raise ConfigError(
                f"model_file={self.model_file!r} is a {self.config['model']} checkpoint, which "
                f"has no attention maps; allowed: checkpoints of SASRec or LightSANs"
            )
        ids = self.history(user) if user is not None else self.item_ids(list(items or []))
        ids = ids[-self.max_len :]
        seq = torch.tensor([ids], device=self.config["device"])
        maps = self.model.attention_maps(seq)
        tokens = self._item_tokens[np.asarray(ids)].tolist()
        return tokens, [{name: w[0].cpu() for name, w in block.items()} for block in maps]


def recommend(
    model_file: str,
    users: Sequence[str] | None = None,
    item_sequences: Sequence[Sequence[str]] | None = None,
    k: int = 10,
    exclude_seen: bool = True,
) -> list[list[Recommendation]]:
    """Top-k items, as the data set's item tokens with scores, for each of ``users`` (from their
    whole history) or each of ``item_sequences`` (item tokens, oldest first). Items already in
    the input history are left out unless ``exclude_seen=False``."""
    return Recommender(model_file).recommend(users, item_sequences, k, exclude_seen)


def read_titles(data_path: str, dataset: str) -> dict[str, str]:
    """item token -> title from ``<dataset>.item`` when it has a title column (ml-100k does)."""
    path = Path(data_path) / f"{dataset}.item"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.split(":")[0] for h in next(rows, [])]
        if "item_id" not in header:
            return {}
        title = next((i for i, h in enumerate(header) if "title" in h or h == "name"), None)
        if title is None:
            return {}
        item = header.index("item_id")
        return {r[item]: r[title] for r in rows if len(r) > max(item, title)}


def plot_attention(
    tokens: list[str], maps: list[dict[str, torch.Tensor]], out: str, labels=None, title=""
) -> int:
    """Heatmaps of every block's attention (rows: query position, columns: key position or
    interest) for every head; returns the number of panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or tokens
    names = list(maps[0])
    n_heads = maps[0][names[0]].shape[0]
    rows, cols = len(maps), len(names) * n_heads
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1, 3.2 * rows + 1), squeeze=False)
    T = len(tokens)
    tick = max(1, T // 12)
    for layer, block in enumerate(maps):
        for n, name in enumerate(names):
            for h in range(n_heads):
                ax = axes[layer][n * n_heads + h]
                w = block[name][h].numpy()
                image = ax.imshow(w, cmap="viridis", aspect="auto", vmin=0)
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
                ax.set_title(f"block {layer + 1}, head {h + 1}\n{name}", fontsize=8)
                ax.set_yticks(range(0, T, tick), [labels[i][:18] for i in range(0, T, tick)])
                ax.tick_params(labelsize=6)
                if w.shape[1] == T:
                    ax.set_xticks(
                        range(0, T, tick), [labels[i][:18] for i in range(0, T, tick)], rotation=90
                    )
                else:
                    ax.set_xticks(
                        range(w.shape[1]),
                        [f"interest {j + 1}" for j in range(w.shape[1])],
                        rotation=90,
                    )
    fig.suptitle(title or "attention (rows: query position; columns: key)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return rows * cols
