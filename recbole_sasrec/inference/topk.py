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
    queries: np.ndarray, items: np.ndarray, k: int, excluded=None, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """queries [B, D] against items [N, D] (row 0 the pad) -> ids [B, k], scores [B, k],
    best first. ``excluded``: per-row lists of item ids, or (rows, items) arrays."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    B, N = len(queries), len(items)
    rows, cols = _exclusions(excluded, B)
    best_ids = np.zeros((B, 0), dtype=np.int64)
    best_scores = np.zeros((B, 0), dtype=np.float32)
    for lo in range(0, N, block):
        hi = min(N, lo + block)
        scores = (items[lo:hi] @ queries.T).T  # [B, m]
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


class ApproximateIndex:
    """faiss HNSW over the items by inner product (``pip install faiss-cpu``); ``search`` asks
    for k plus each row's exclusions and drops those, so every row gets k items."""

    def __init__(self, index, ef_search: int = 128):
        self.index = index
        self.index.hnsw.efSearch = ef_search

    @classmethod
    def build(cls, items: np.ndarray, m: int = 32, ef_construction: int = 200):
        faiss = _faiss()
        index = faiss.IndexHNSWFlat(items.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(np.ascontiguousarray(items[1:], dtype=np.float32))  # without the pad
        return cls(index)

    @classmethod
    def read(cls, path) -> ApproximateIndex:
        return cls(_faiss().read_index(str(path)))

    def write(self, path) -> None:
        _faiss().write_index(self.index, str(path))

    def search(self, queries: np.ndarray, k: int, excluded=None):
        rows, cols = _exclusions(excluded, len(queries))
        extra = int(np.bincount(rows, minlength=len(queries)).max()) if len(rows) else 0
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k + extra)
        ids = ids.astype(np.int64) + 1  # the index holds items 1..N-1
        if len(rows):
            drop = np.zeros(ids.shape, dtype=bool)
            for r in np.unique(rows):
                drop[r] = np.isin(ids[r], cols[rows == r])
            scores = np.where(drop | (ids == 0), -np.inf, scores)
        return _best(scores, ids, k)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "approximate top-k needs faiss: pip install faiss-cpu (or the package's [ann] extra)"
        ) from None
    return faiss
