"""Top-k recommendations and attention maps from a saved model, in the data set's own tokens.

Users and items are given and returned as the tokens of the data files (``"196"``, ``"242"``),
never as RecBole's internal ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.keys import ConfigError
from ..data.arrays import gather_windows
from ..integration.quick_start import load_model
from ..integration.registry import is_ours
from . import checks, new_items, topk
from .all_users import AllUsers
from .output import read_titles

# sequences ``recommend`` encodes and ranks at once: its activations and blocks of scores grow
# with it, so a long list of sessions does not need memory in proportion; the answers do not
# depend on it beyond float rounding
RECOMMEND_BATCH = 1024


@dataclass
class Recommendation:
    """One recommended item: its token, score and title (when the data set has titles)."""

    rank: int
    item: str
    score: float
    title: str | None = None


class Recommender(AllUsers):
    """A loaded checkpoint that answers recommendation and attention queries.

    ``Recommender(model_file)`` loads once; ``recommend``, ``recommend_all`` and ``attention``
    can then be called many times. Long inputs are cut to their most recent
    MAX_ITEM_LIST_LENGTH items, as training does. ``data_path`` reads the data from another
    folder than the one the checkpoint was trained from; ``allow_pickle`` also loads a file that
    needs full unpickling (which runs code the file holds: only for a file you trust). A model
    whose item table is all zeros (or not finite) is refused: every score would be the same.
    Users, items and sequences are lists of tokens: a string in a list's place is refused.
    ``add_items`` adds items never seen in training, from their attributes alone.
    """

    def __init__(self, model_file: str, data_path: str | None = None, allow_pickle: bool = False):
        self.model_file = model_file
        self.config, self.model, self.dataset = load_model(model_file, data_path, allow_pickle)
        self._table = table = _item_table(self.model)  # fixed while the model is not trained
        if table is not None and (problem := checks.item_table_problem(table)):
            raise ConfigError(
                f"model_file={model_file!r}: {problem}; allowed: a trained checkpoint"
            )
        self.uid_field, self.iid_field = self.dataset.uid_field, self.dataset.iid_field
        self.max_len = self.config["MAX_ITEM_LIST_LENGTH"]
        self._item_token_id = self.dataset.field2token_id[self.iid_field]
        self._item_tokens = self.dataset.field2id_token[self.iid_field]
        self._vectors = None  # the item table as the encoder's input, on the model's device
        self._bias = None  # [N] added to the items' scores (items added with a boost), or None
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
        users = checks.tokens("users", users)
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
        """Item tokens -> internal ids; an error names every unknown token (the pad's too)."""
        items = checks.tokens("items", items)
        if len(items) == 0:
            raise ValueError("items is empty: give at least one item token")
        unknown = [i for i in items if self._item_token_id.get(str(i), 0) == 0]
        if unknown:
            raise ValueError(
                f"items {unknown} are not items of data set {self.config['dataset']!r}"
            )
        return [self._item_token_id[str(i)] for i in items]

    def add_items(
        self, path: str | os.PathLike, format: str | None = None, boost: float = 0.0
    ) -> list[str]:
        """Add the items of ``path`` to the catalogue, each with its attributes' vector alone
        (no trained id row): from then on they are ranked for every user and may appear in
        item sequences. ``path``: a RecBole ``.item`` file holding the model's selected fields
        (others ignored), or the attribute JSON (item -> list of tokens, for a model whose one
        selected field is a token field); ``format`` 'item' or 'json', None: ``.json`` by its
        suffix. An attribute value never seen in training is left out of its item's vector
        (one warning counts them). ``boost``: added to these items' scores when ranking (the
        model's logits), how far new items are pushed up beside known ones (0: by their
        vectors alone; ``inference/new_items.py`` says why). Refused, before anything is added: a model without
        attributes, an empty file, a selected field missing, an item listed twice or already
        in the catalogue, an item with no value the model knows, a boost that is not a finite
        number. Returns the added tokens."""
        boost = checks.score("boost", boost)
        new = new_items.read_for_model(
            self.model_file,
            self.config,
            self.model,
            self.dataset,
            path,
            self._item_token_id,
            format,
        )
        vectors = new_items.vectors_for_model(self.model, new)  # [n, D]
        first = len(self._item_tokens)
        token_id = dict(self._item_token_id)  # the data set's own map stays as it was
        token_id.update((t, first + i) for i, t in enumerate(new.tokens))
        self._bias = topk.grown_bias(self._bias, len(self._table), len(vectors), boost)
        self._table = np.concatenate([self._table, vectors])
        self._item_tokens = np.concatenate([self._item_tokens, np.asarray(new.tokens)])
        self._item_token_id, self._vectors = token_id, None
        return new.tokens

    def _batch(self, items: np.ndarray, start: np.ndarray, end: np.ndarray) -> dict:
        """The model's input for sequences ``items[start_b:end_b]``, each cut to its most recent
        MAX_ITEM_LIST_LENGTH items: [B, L] item ids (0-padded on the right) and lengths [B]."""
        length = np.minimum(end - start, self.max_len)
        seq, _ = gather_windows(torch.from_numpy(items), end - length, length, self.max_len)
        device = self.config["device"]
        return {
            self.model.ITEM_SEQ: seq.to(device),
            self.model.ITEM_SEQ_LEN: torch.from_numpy(length).to(device),
        }

    def _sequences(self, sequences: list[list[int]]) -> dict:
        ends = np.cumsum([len(s) for s in sequences])
        flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
        return self._batch(flat, ends - [len(s) for s in sequences], ends)

    # ---- outputs --------------------------------------------------------------------------
    def title(self, item: str) -> str | None:
        if self._titles is None:
            self._titles = read_titles(self.config["data_path"], self.config["dataset"])
        return self._titles.get(item)

    def _check_k(self, k: int, seen: int = 0, who: str = "") -> None:
        n_items = len(self._item_tokens) - 1  # item id 0 is padding; added items count
        if k > n_items - seen:
            unseen = f", {n_items - seen} of them not in the history of {who}" if seen else ""
            raise ValueError(
                f"k={k} is larger than the number of items that can be recommended: the data "
                f"set has {n_items} items{unseen}; allowed: k <= {n_items - seen}"
            )

    def _input(self, seq: torch.Tensor) -> torch.Tensor:
        """Item ids [B, T] -> their rows of the item table [B, T, D], the encoder's input (the
        same vectors the model looks up itself, and rows of items added since training)."""
        if self._vectors is None:
            self._vectors = torch.from_numpy(self._table).to(self.config["device"])
        return self._vectors[seq.to(self._vectors.device)]

    @torch.no_grad()
    def _top(self, batch: dict, seen_rows, seen_items, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ids [B, k] and scores [B, k], best first. Our models: the user vectors against
        the item table in blocks (``topk.exact``, as an exported artifact ranks); RecBole's:
        its dense ``full_sort_predict`` [B, n_items]."""
        excluded = (np.asarray(seen_rows, np.int64), np.asarray(seen_items, np.int64))
        if is_ours(type(self.model)):
            users = self.model(
                self._input(batch[self.model.ITEM_SEQ]), batch[self.model.ITEM_SEQ_LEN]
            )
            users = users.float().cpu().numpy()
            return topk.exact(users, self._table, k, excluded, bias=self._bias)
        scores = self.model.full_sort_predict(batch).float().cpu()  # [B, n_items]
        scores[:, 0] = -torch.inf
        scores[torch.from_numpy(excluded[0]), torch.from_numpy(excluded[1])] = -torch.inf
        top = scores.topk(k, dim=1)
        return top.indices.numpy(), top.values.numpy()

    def recommend(
        self,
        users: Sequence[str] | None = None,
        item_sequences: Sequence[Sequence[str]] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
    ) -> list[list[Recommendation]]:
        """Top-k items for each user (their history) or each item sequence, best first; no
        users (or sequences), no lists: ``[]``."""
        if (users is None) == (item_sequences is None):
            raise ValueError("give exactly one of users=[...] or item_sequences=[[...], ...]")
        k = checks.count("k", k)
        exclude_seen = checks.flag("exclude_seen", exclude_seen)
        if users is not None:
            users = checks.tokens("users", users)
            sequences = [self.history(u) for u in users]
            names = [f"user {u!r}" for u in users]
        else:
            sequences = [
                self.item_ids(s) for s in checks.token_lists("item_sequences", item_sequences)
            ]
            names = [f"sequence {i + 1}" for i in range(len(sequences))]
        if not sequences:
            return []
        for seq, who in zip(sequences, names, strict=True):
            self._check_k(k, len(set(seq)) if exclude_seen else 0, who)
        out = []
        for lo in range(0, len(sequences), RECOMMEND_BATCH):  # memory bounded by the batch
            part = sequences[lo : lo + RECOMMEND_BATCH]
            rows = [np.full(len(s), r) for r, s in enumerate(part)] if exclude_seen else [[]]
            cols = part if exclude_seen else [[]]
            top = self._top(
                self._sequences(part),
                np.concatenate(rows).astype(np.int64),
                np.concatenate([np.asarray(c, dtype=np.int64) for c in cols]),
                k,
            )
            out += [
                [
                    Recommendation(rank + 1, item, float(score), self.title(item))
                    for rank, (item, score) in enumerate(
                        zip(self._item_tokens[ids].tolist(), values.tolist(), strict=True)
                    )
                ]
                for ids, values in zip(*top, strict=True)
            ]
        return out

    @torch.no_grad()
    def attention(self, user: str | None = None, items: Sequence[str] | None = None):
        """Attention weights of every block for one user's most recent sequence (or an item
        sequence, a list of tokens): ``(item tokens of the sequence, [dict name -> [h, T, ...]
        per block])``."""
        if (user is None) == (items is None):
            raise ValueError("give exactly one of user='...' or items=[...]")
        if user is not None and (
            isinstance(user, bool) or not isinstance(user, (str, int, np.integer))
        ):
            raise ValueError(f"user={user!r} must be one user token")
        if not hasattr(self.model, "attention_maps"):
            raise ConfigError(
                f"model_file={self.model_file!r} is a {self.config['model']} checkpoint, which "
                f"has no attention maps; allowed: checkpoints of SASRec or LightSANs"
            )
        ids = self.history(user) if user is not None else self.item_ids(items)
        ids = ids[-self.max_len :]
        maps = self.model.attention_maps(self._input(torch.tensor([ids])))
        tokens = self._item_tokens[np.asarray(ids)].tolist()
        return tokens, [{name: w[0].cpu() for name, w in block.items()} for block in maps]


@torch.no_grad()
def _item_table(model) -> np.ndarray | None:
    """The item vectors [N, D] that scores are inner products with (ours, with item attributes
    if it reads them, or RecBole's ``item_embedding``), None for a model without one."""
    if is_ours(type(model)):
        table = model.item_vectors()
    elif isinstance(getattr(model, "item_embedding", None), torch.nn.Embedding):
        table = model.item_embedding.weight
    else:
        return None
    return table.detach().float().cpu().numpy()


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
