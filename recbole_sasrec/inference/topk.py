"""Top-k items by inner product, exact in blocks of the catalogue or approximate (faiss HNSW).

Scores are never a dense [users, items] matrix: the exact search scores one block of items at a
time ([B, block]), keeps each row's best k and merges them with the best so far, so memory is
bounded by the block whatever the catalogue. Item 0 is the pad and never returned. NumPy only:
the exported artifact, ``Recommender`` and batch files rank with this one code.
"""

from __future__ import annotations

import numpy as np

BLOCK = 65536  # items scored at once


def _exclusions(excluded, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row item ids to leave out -> (row [n], item [n])."""
    if excluded is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if isinstance(excluded, tuple):  # already (rows, items)
        return np.asarray(excluded[0], dtype=np.int64), np.asarray(excluded[1], dtype=np.int64)
    sizes = [len(e) for e in excluded]
    if len(sizes) != rows:
        raise ValueError(f"{len(sizes)} exclusion lists for {rows} queries")
    items = np.concatenate([np.asarray(e, dtype=np.int64) for e in excluded] or [[]])
    return np.repeat(np.arange(rows), sizes), items.astype(np.int64)


def _best(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k highest of scores [B, m] (ids [B, m] or [m]), highest first, ties by id."""
    if scores.shape[1] > k:
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores = np.take_along_axis(scores, keep, 1)
        ids = np.take_along_axis(np.broadcast_to(ids, (len(scores), ids.shape[-1])), keep, 1)
    else:
        ids = np.broadcast_to(ids, scores.shape)
    order = np.lexsort((ids, -scores), axis=1)
    return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)


def exact(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    excluded=None,
    block: int = BLOCK,
    bias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """queries [B, D] against items [N, D] (row 0 the pad) -> ids [B, k], scores [B, k],
    best first. ``excluded``: per-row lists of item ids, or (rows, items) arrays. ``bias``
    [N] (None: none): added to every query's score of each item (items added with a boost)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    B, N = len(queries), len(items)
    rows, cols = _exclusions(excluded, B)
    best_ids = np.zeros((B, 0), dtype=np.int64)
    best_scores = np.zeros((B, 0), dtype=np.float32)
    for lo in range(0, N, block):
        hi = min(N, lo + block)
        scores = (items[lo:hi] @ queries.T).T  # [B, m]
        if bias is not None:
            scores += bias[lo:hi]
        if lo == 0:
            scores[:, 0] = -np.inf  # the pad
        inside = (cols >= lo) & (cols < hi)
        scores[rows[inside], cols[inside] - lo] = -np.inf
        ids = np.arange(lo, hi, dtype=np.int64)
        if best_ids.shape[1] == k:  # only items above some row's k-th best so far can enter
            # (an equal score loses: ties go to the lower id, and earlier blocks hold lower ids)
            keep = np.flatnonzero((scores > best_scores[:, -1:]).any(axis=0))
            scores, ids = scores[:, keep], ids[keep]
        block_ids, block_scores = _best(scores, ids, min(k, scores.shape[1]))
        merged_ids = np.concatenate([best_ids, block_ids], 1)
        merged_scores = np.concatenate([best_scores, block_scores], 1)
        best_ids, best_scores = _best(merged_scores, merged_ids, k)
    return best_ids, best_scores


def grown_bias(bias: np.ndarray | None, known: int, added: int, boost: float):
    """The per-item score offsets [known + added] after adding ``added`` items with ``boost``
    (None while every offset is 0: ranking then adds nothing)."""
    if bias is None and boost == 0.0:
        return None
    before = np.zeros(known, np.float32) if bias is None else bias
    return np.concatenate([before, np.full(added, boost, np.float32)])


class ApproximateIndex:
    """faiss HNSW over the items by inner product (``pip install faiss-cpu``).

    ``search`` asks the index for k plus each row's exclusions and drops what is no answer:
    faiss's missing results (id -1, when the graph reaches fewer items than asked), excluded
    items and repeats. A row left with fewer than k items is ranked exactly instead
    (``exact`` over ``items``), so every row gets k distinct items, never the pad or an excluded
    one; close to the catalogue's size that is most rows, at exact search's cost."""

    def __init__(self, index, items: np.ndarray | None = None, ef_search: int = 128):
        self.index = index
        self.index.hnsw.efSearch = ef_search
        self._items = items  # [N, D], row 0 the pad; read back from the index when None

    @classmethod
    def build(cls, items: np.ndarray, m: int = 32, ef_construction: int = 200):
        """An index of items [N, D] (row 0, the pad, left out)."""
        faiss = _faiss()
        index = faiss.IndexHNSWFlat(items.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(np.ascontiguousarray(items[1:], dtype=np.float32))  # without the pad
        return cls(index, items)

    @classmethod
    def read(cls, path, items: np.ndarray | None = None) -> ApproximateIndex:
        """The index written at ``path``; ``items``: the table it was built from, for the
        exact fallback (else the index's own copy of the vectors is read back when needed)."""
        faiss = _faiss()
        try:
            index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
        except RuntimeError as error:
            raise ValueError(f"{path}: not a faiss index faiss can read ({error})") from None
        if not hasattr(index, "hnsw"):
            raise ValueError(f"{path}: expected a faiss HNSW index; found {type(index).__name__}")
        return cls(index, items)

    def add(self, rows: np.ndarray, items: np.ndarray) -> None:
        """Rows [n, D] of items appended to the catalogue, whose table is now ``items`` [N, D]
        (the rows its last n): HNSW inserts them into the graph as it built it."""
        self.index.add(np.ascontiguousarray(rows, dtype=np.float32))
        self._items = items

    def write(self, path) -> None:
        # through Python's file writes, so that a full disk is an OSError (faiss's own writer
        # raises RuntimeError)
        with open(path, "wb") as f:
            f.write(_faiss().serialize_index(self.index).tobytes())

    @property
    def items(self) -> np.ndarray:
        """The item table [N, D], row 0 the pad, that the exact fallback ranks."""
        if self._items is None:
            vectors = self.index.reconstruct_n(0, self.index.ntotal)  # [N - 1, D]
            self._items = np.concatenate([np.zeros((1, self.index.d), np.float32), vectors])
        return self._items

    def search(self, queries: np.ndarray, k: int, excluded=None) -> tuple[np.ndarray, np.ndarray]:
        """queries [B, D] -> ids [B, k], scores [B, k], best first; ``excluded`` as in
        ``exact``. Rows the index cannot fill with k valid items are ranked by ``exact``."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        B, n = len(queries), self.index.ntotal + 1
        rows, cols = _exclusions(excluded, B)
        extra = int(np.bincount(rows, minlength=B).max()) if len(rows) else 0
        scores, ids = self.index.search(queries, min(k + extra, n - 1))
        ids = ids.astype(np.int64) + 1  # [B, m]: the index holds items 1..N-1; missing -1 -> 0
        invalid = (ids == 0) | np.isin(np.arange(B)[:, None] * n + ids, rows * n + cols)
        order = np.argsort(ids, axis=1, kind="stable")
        ranked = np.take_along_axis(ids, order, 1)
        repeat = np.zeros_like(invalid)  # every place of an id but its first
        np.put_along_axis(repeat, order[:, 1:], ranked[:, 1:] == ranked[:, :-1], 1)
        invalid |= repeat
        scores = np.where(invalid, -np.inf, scores)
        full = (~invalid).sum(1) >= k
        best_ids = np.zeros((B, k), dtype=np.int64)
        best_scores = np.zeros((B, k), dtype=np.float32)
        if full.any():
            best_ids[full], best_scores[full] = _best(scores[full], ids[full], k)
        if not full.all():
            short = np.flatnonzero(~full)
            position = np.full(B, -1)
            position[short] = np.arange(len(short))
            keep = position[rows] >= 0
            best_ids[short], best_scores[short] = exact(
                queries[short], self.items, k, (position[rows[keep]], cols[keep])
            )
        return best_ids, best_scores


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "approximate top-k needs faiss: pip install faiss-cpu (or the package's [ann] extra)"
        ) from None
    return faiss
