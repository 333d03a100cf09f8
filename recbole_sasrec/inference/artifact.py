"""A trained model served from an exported folder, without RecBole, torch or the training data.

    from recbole_sasrec.inference.artifact import Artifact

    model = Artifact.load("model_dir/")
    model.recommend(["B0001", "B0042"], k=10)        # a new user's session, item tokens
    model.recommend_batch([["B0001"], ["B0007", "B0003"]], k=10, exclude=[["B0009"], []])

The folder (``export.py`` writes it): ``encoder.onnx`` (a window of item vectors [B, T, D],
looked up in ``items.npy``, and its lengths [B] in, the user vector [B, D] out), ``items.npy``
(the item table [N, D] that sessions are encoded from and scored against, row 0 the pad),
``item_tokens.json`` (token of each id), ``metadata.json`` (model, configuration,
``MAX_ITEM_LIST_LENGTH``, data fingerprint, version, file hashes), if exported with an index
``items.hnsw`` (faiss), and for a model with item attributes ``attributes.json`` and
``attributes.npz`` (``attribute_tables.py``: what ``add_items`` computes new items' vectors
with). Loading checks every file against ``metadata.json`` (``checks``). A session longer than
``MAX_ITEM_LIST_LENGTH`` keeps its most recent items, as training does; its items are left out
of its recommendations unless ``exclude_seen=False``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.keys import ConfigError
from ..data.new_items import read_new_items
from . import checks, topk
from .attribute_tables import AttributeTables
from .checks import FILES, ArtifactError  # noqa: F401  (part of this module's interface)

FORMAT = "recbole_sasrec-artifact/2"
EARLIER_FORMATS = ("recbole_sasrec-artifact/1",)  # its encoder held the table and read ids


class Artifact:
    """An exported model: ``encode`` sessions into user vectors, ``recommend`` top-k tokens."""

    def __init__(
        self,
        folder,
        session,
        items,
        token_id: dict[str, int],
        metadata,
        index=None,
        attributes=None,
    ):
        self.folder, self.session, self.items = Path(folder), session, items
        self.token_id, self.metadata, self.index = token_id, metadata, index
        self.attributes: AttributeTables | None = attributes
        self.tokens = list(token_id)  # the token of each id, in id order
        self.bias = None  # [N] added to the items' scores (items added with a boost), or None
        self.max_len = metadata["max_item_list_length"]

    @classmethod
    def load(
        cls, folder: str | os.PathLike, threads: int | None = None, approximate: bool = False
    ) -> Artifact:
        """Load an exported folder. ``threads``: ONNX Runtime's intra-op threads, None (its own
        choice, every core) or 1 to 4 per core; ``approximate``: rank with the folder's faiss
        index. Every file is checked first: its sha256 against ``metadata.json``, the table's
        shape against the tokens and ``hidden_size``, the window against the encoder's; an
        ``ArtifactError`` (a ``ValueError``) names the file, the expected and the found."""
        if threads is not None:
            threads = checks.count("threads", threads, checks.max_threads())
        approximate = checks.flag("approximate", approximate)
        import onnxruntime as ort

        folder = Path(folder)
        metadata = checks.read_metadata(folder, FORMAT)
        checked = (checks.ENCODER, checks.ITEMS, checks.TOKENS)
        if approximate:
            if not (folder / checks.INDEX).is_file():
                raise ArtifactError(f"{folder} has no items.hnsw: export it with an index (--ann)")
            checked += (checks.INDEX,)
        checks.check_hashes(folder, metadata, checked)
        token_id = checks.read_tokens(folder)
        items = checks.read_items(folder, len(token_id), metadata["hidden_size"])
        options = ort.SessionOptions()
        # ONNX Runtime's threads spin between calls by default, taking the cores from numpy's
        # scoring that follows every call
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(folder / checks.ENCODER), options, providers=["CPUExecutionProvider"]
        )
        checks.check_encoder(folder, session, metadata)
        index = None
        if approximate:
            index = topk.ApproximateIndex.read(folder / checks.INDEX, items)
            checks.check_index(folder, index.index, items)
        artifact = cls(
            folder, session, items, token_id, metadata, index, _attributes(folder, metadata)
        )
        if boost := metadata.get("new_items_boost", 0.0):  # exported with items and a boost
            known = len(items) - metadata["new_items"]
            artifact.bias = topk.grown_bias(None, known, metadata["new_items"], boost)
        return artifact

    def add_items(
        self, path: str | os.PathLike, format: str | None = None, boost: float = 0.0
    ) -> list[str]:
        """Add the items of ``path`` to the catalogue with their attributes' vectors alone (no
        trained id row), as ``Recommender.add_items`` does, in NumPy: they are ranked for every
        session and may appear in sessions. ``path``: a RecBole ``.item`` file with the model's
        selected fields, or the attribute JSON; ``format`` 'item' or 'json' (None: by suffix).
        ``boost``: added to these items' scores when ranking, as ``Recommender.add_items``
        adds it (exact ranking only). The approximate index, if loaded, takes them too. In
        memory only (the folder is left as it is); not while other threads use this
        ``Artifact``. Refused, before anything is added, as ``Recommender.add_items`` refuses,
        and a boost other than 0 with an approximate index. Returns the added tokens."""
        boost = checks.score("boost", boost)
        if boost != 0.0 and self.index is not None:
            raise ConfigError(
                f"boost={boost!r}: {self.folder} ranks with an approximate index "
                f"({checks.INDEX}), which scores by inner product alone and cannot add a "
                f"score offset; allowed: boost=0, or the artifact loaded without its index "
                f"(exact ranking)"
            )
        if self.attributes is None:
            raise ConfigError(
                f"{path}: {self.folder} has no attribute tables ({checks.ATTRIBUTES}, "
                f"{checks.ATTRIBUTE_TABLES}), so a new item has nothing to compute its vector "
                f"from; allowed: a folder exported from a model trained with selected_features "
                f"(and, for float fields, saved with their training mean and std)"
            )
        a = self.attributes
        new = read_new_items(
            path,
            a.item_field,
            a.fields,
            self.token_id,
            format,
            a.field_separator,
            a.seq_separator,
            a.encoding,
        )
        vectors = a.vectors(new.values)  # [n, D]
        items = np.concatenate([self.items, vectors])
        bias = topk.grown_bias(self.bias, len(self.items), len(vectors), boost)
        if self.index is not None:
            self.index.add(vectors, items)
        first = len(self.tokens)
        self.tokens += new.tokens  # tokens first: no id without its token
        self.items, self.bias = items, bias
        self.token_id.update((t, first + i) for i, t in enumerate(new.tokens))
        return new.tokens

    # ---- inputs ----------------------------------------------------------------------------
    def item_ids(self, tokens: Sequence[str]) -> np.ndarray:
        """Item tokens -> ids; a ``ValueError`` names every token the model does not know."""
        tokens = checks.tokens("tokens", tokens)
        unknown = [t for t in tokens if str(t) not in self.token_id or str(t) == self.tokens[0]]
        if unknown:
            shown = ", ".join(repr(str(t)) for t in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise ValueError(
                f"items {shown}{more} are not items of this model "
                f"({self.metadata['dataset']!r}, {len(self.tokens) - 1} items)"
            )
        return np.array([self.token_id[str(t)] for t in tokens], dtype=np.int64)

    def windows(self, sessions: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Sessions of tokens -> the encoder's input: ids [B, T] (each session's most recent
        MAX_ITEM_LIST_LENGTH items, 0-padded on the right) and lengths [B]."""
        sessions = checks.token_lists("sessions", sessions)
        if not sessions or any(len(s) == 0 for s in sessions):
            raise ValueError("every session needs at least one item token")
        recent = [self.item_ids(s)[-self.max_len :] for s in sessions]
        lengths = np.array([len(r) for r in recent], dtype=np.int64)
        ids = np.zeros((len(recent), int(lengths.max())), dtype=np.int64)
        for row, r in enumerate(recent):
            ids[row, : len(r)] = r
        return ids, lengths

    # ---- outputs ---------------------------------------------------------------------------
    def encode(self, sessions: Sequence[Sequence[str]]) -> np.ndarray:
        """User vectors [B, D] of sessions (item tokens, oldest first); [0, D] of none."""
        if len(checks.token_lists("sessions", sessions)) == 0:
            return np.zeros((0, self.items.shape[1]), dtype=np.float32)
        ids, lengths = self.windows(sessions)
        vectors = self.items[ids]  # [B, T, D]
        return self.session.run(None, {"item_vectors": vectors, "lengths": lengths})[0]

    def recommend_batch(
        self,
        sessions: Sequence[Sequence[str]],
        k: int = 10,
        exclude: Sequence[Sequence[str]] | None = None,
        exclude_seen: bool = True,
    ) -> list[list[tuple[str, float]]]:
        """Top-k (token, score) of each session, best first; a session's own items and its
        ``exclude`` tokens (None, or one list per session) are left out. No sessions, no lists:
        ``recommend_batch([])`` is ``[]``. Each session is a list of tokens: a string in its
        place is refused, never read letter by letter."""
        sessions = checks.token_lists("sessions", sessions)
        k = checks.count("k", k)
        exclude_seen = checks.flag("exclude_seen", exclude_seen)
        if exclude is not None:
            exclude = checks.token_lists("exclude", exclude)
            if len(exclude) != len(sessions):
                raise ValueError(
                    f"exclude has {len(exclude)} lists for {len(sessions)} sessions; allowed: "
                    f"None, or one list of item tokens per session"
                )
        if not sessions:
            return []
        left_out = [list(s) if exclude_seen else [] for s in sessions]
        for row, tokens in enumerate(exclude or []):
            left_out[row] += tokens
        excluded = [np.unique(self.item_ids(t)) for t in left_out]
        if k > len(self.tokens) - 1 - max(len(e) for e in excluded):
            raise ValueError(f"k={k} is larger than the items left to recommend")
        users = self.encode(sessions)
        if self.index is not None:
            ids, scores = self.index.search(users, k, excluded)
        else:
            ids, scores = topk.exact(users, self.items, k, excluded, bias=self.bias)
        return [
            [(self.tokens[i], float(s)) for i, s in zip(row_ids, row_scores, strict=True)]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def recommend(
        self,
        session: Sequence[str],
        k: int = 10,
        exclude: Sequence[str] = (),
        exclude_seen: bool = True,
    ) -> list[tuple[str, float]]:
        """Top-k (token, score) for one session of item tokens (a list, oldest first)."""
        session = checks.tokens("session", session)
        exclude = checks.tokens("exclude", exclude)
        return self.recommend_batch([session], k, [exclude], exclude_seen)[0]


def _attributes(folder: Path, metadata: dict) -> AttributeTables | None:
    """The folder's attribute tables, checked, if it was exported with them."""
    names = (checks.ATTRIBUTES, checks.ATTRIBUTE_TABLES)
    listed = [name for name in names if name in metadata["files"]]
    if not listed:
        return None
    present = [name for name in names if (folder / name).is_file()]
    if len(listed) < len(names) or len(present) < len(names):
        raise ArtifactError(
            f"{folder}: expected both {' and '.join(names)}, listed in metadata.json and "
            f"present; found listed: {', '.join(listed)}; present: {', '.join(present) or 'none'}"
        )
    checks.check_hashes(folder, metadata, names)
    return AttributeTables.read(folder, metadata["hidden_size"])
