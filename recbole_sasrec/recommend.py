"""Top-k recommendations and attention maps from a saved model, in the data set's own tokens.

Users and items are given and returned as the tokens of the data files (``"196"``, ``"242"``),
never as RecBole's internal ids.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .quick_start import load_model


@dataclass
class Recommendation:
    """One recommended item: its token, score and title (when the data set has titles)."""

    rank: int
    item: str
    score: float
    title: str | None = None


class Recommender:
    """A loaded checkpoint that answers recommendation and attention queries.

    ``Recommender(model_file)`` loads once; ``recommend`` and ``attention`` can then be called
    many times. Long inputs are cut to their most recent MAX_ITEM_LIST_LENGTH items, as training
    does.
    """

    def __init__(self, model_file: str):
        self.config, self.model, self.dataset = load_model(model_file)
        self.uid_field, self.iid_field = self.dataset.uid_field, self.dataset.iid_field
        self.max_len = self.config["MAX_ITEM_LIST_LENGTH"]
        self._item_token_id = self.dataset.field2token_id[self.iid_field]
        self._item_tokens = self.dataset.field2id_token[self.iid_field]
        self._histories = None
        self._titles = None

    # ---- inputs ---------------------------------------------------------------------------
    def history(self, user: str) -> list[int]:
        """A known user's whole interaction history, oldest first, as internal item ids."""
        if self._histories is None:
            feat = self.dataset.inter_feat  # filtered and remapped, one row per interaction
            order = np.lexsort((feat[self.dataset.time_field].to_numpy(), feat[self.uid_field]))
            users = feat[self.uid_field].to_numpy()[order]
            items = feat[self.iid_field].to_numpy()[order]
            starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
            ends = np.r_[starts[1:], len(users)]
            self._histories = {
                int(users[s]): items[s:e].tolist() for s, e in zip(starts, ends, strict=True)
            }
        uid = self.dataset.field2token_id[self.uid_field].get(str(user))
        if uid is None or uid not in self._histories:
            raise ValueError(
                f"user={user!r} is not a user of data set {self.config['dataset']!r} "
                f"(tokens as in its .inter file, e.g. {self.dataset.field2id_token[self.uid_field][1]!r})"
            )
        return self._histories[uid]

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

    @torch.no_grad()
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
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r} must be a positive integer")
        if users is not None:
            sequences = [self.history(u) for u in users]
        else:
            sequences = [self.item_ids(list(s)) for s in item_sequences]
        n_items = self.model.n_items - 1  # item id 0 is padding
        if k > n_items:
            raise ValueError(f"k={k} is larger than the number of items ({n_items})")
        scores = self.model.full_sort_predict(self._batch(sequences)).cpu()  # [N, n_items]
        scores[:, 0] = -torch.inf
        if exclude_seen:
            for row, s in enumerate(sequences):
                scores[row, s] = -torch.inf
        top = scores.topk(k, dim=1)
        return [
            [
                Recommendation(rank + 1, item, float(score), self.title(item))
                for rank, (item, score) in enumerate(
                    zip(self._item_tokens[ids.numpy()].tolist(), values.tolist(), strict=True)
                )
                if score > -torch.inf
            ]
            for ids, values in zip(top.indices, top.values, strict=True)
        ]

    @torch.no_grad()
    def attention(self, user: str | None = None, items: Sequence[str] | None = None):
        """Attention weights of every block for one user's most recent sequence (or an item
        sequence): ``(item tokens of the sequence, [dict name -> [h, T, ...] per block])``."""
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
