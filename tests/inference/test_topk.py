"""Top-k: exact in blocks equal to a dense top-k; approximate never returns the pad, an excluded
item or an item twice, falling back to exact rows when the index runs short."""

from __future__ import annotations

import numpy as np
import pytest

from recbole_sasrec.inference import topk


def test_block_top_k_equals_a_dense_top_k():
    rng = np.random.default_rng(0)
    items, queries = rng.normal(size=(1000, 8)).astype(np.float32), rng.normal(size=(7, 8))
    excluded = [
        rng.choice(np.arange(1, 1000), size=n, replace=False) for n in (0, 3, 50, 1, 0, 9, 2)
    ]
    ids, scores = topk.exact(queries, items, 20, excluded, block=64)
    dense = queries.astype(np.float32) @ items.T
    dense[:, 0] = -np.inf
    for row, e in enumerate(excluded):
        dense[row, e] = -np.inf
    expected = np.argsort(-dense, axis=1, kind="stable")[:, :20]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(dense, expected, 1), rtol=1e-6)


def test_a_bias_is_added_to_every_query_s_score_of_its_item_in_every_block():
    rng = np.random.default_rng(1)
    items, queries = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(5, 8))
    bias = np.zeros(300, np.float32)
    bias[250:] = 3.0  # the last 50 items, in the last block
    ids, scores = topk.exact(queries, items, 10, [[251]] * 5, block=64, bias=bias)
    dense = queries.astype(np.float32) @ items.T + bias
    dense[:, [0, 251]] = -np.inf
    expected = np.argsort(-dense, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(dense, expected, 1), rtol=1e-6)
    assert (ids >= 250).mean() > 0.5  # the boost moved them up
    assert topk.grown_bias(None, 4, 2, 0.0) is None  # nothing to add: no bias array
    np.testing.assert_array_equal(topk.grown_bias(None, 2, 1, 1.5), [0, 0, 1.5])
    np.testing.assert_array_equal(topk.grown_bias(np.array([0, 1.5]), 2, 1, 0.0), [0, 1.5, 0])


def test_approximate_top_k_finds_the_exact_one_on_a_small_catalogue():
    rng = np.random.default_rng(1)
    items, queries = rng.normal(size=(500, 16)).astype(np.float32), rng.normal(size=(20, 16))
    index = topk.ApproximateIndex.build(items)
    excluded = [[int(i)] for i in topk.exact(queries, items, 1)[0][:, 0]]  # each row's best
    approx, _ = index.search(queries, 10, excluded)
    exact, _ = topk.exact(queries, items, 10, excluded)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95 and not any(e[0] in a for a, e in zip(approx, excluded, strict=True))


@pytest.fixture(scope="module")
def catalogue():
    """1000 items (row 0 the pad) of 8 dimensions, 6 queries, and an index of them."""
    rng = np.random.default_rng(2)
    items = rng.normal(size=(1001, 8)).astype(np.float32)
    items[0] = 0
    return items, rng.normal(size=(6, 8)), topk.ApproximateIndex.build(items)


@pytest.mark.parametrize("k", [500, 800, 997])
def test_approximate_top_k_close_to_the_catalogue_size(catalogue, tmp_path, k):
    """k distinct items a row, never the pad or an excluded one, with their true scores, best
    first (faiss alone gives id -1, the pad after the shift, excluded items and repeats from
    k = 800 on)."""
    items, queries, index = catalogue
    excluded = [[1, 2, 3], [], [1000], [5, 6], [7], [8, 9, 10]]
    index.write(tmp_path / "items.hnsw")
    read = topk.ApproximateIndex.read(tmp_path / "items.hnsw")  # no table: its own vectors
    for ids, scores in (index.search(queries, k, excluded), read.search(queries, k, excluded)):
        assert ids.shape == (6, k) and not (ids == 0).any()
        for row, left_out in enumerate(excluded):
            assert len(set(ids[row].tolist())) == k and not set(left_out) & set(ids[row])
        true = np.einsum("bkd,bd->bk", items[ids], queries.astype(np.float32))
        np.testing.assert_allclose(scores, true, rtol=1e-4, atol=1e-5)
        assert (np.diff(scores, axis=1) <= 0).all()


def test_only_the_rows_the_index_cannot_fill_are_ranked_exactly(catalogue, monkeypatch):
    items, queries, index = catalogue
    calls = []
    exact = topk.exact
    monkeypatch.setattr(topk, "exact", lambda q, *a: calls.append(len(q)) or exact(q, *a))
    # row 0 leaves out 990 items: 10 remain, k of them asked for; the others are easy
    excluded = [list(range(1, 991))] + [[]] * 5
    ids, _ = index.search(queries, 10, excluded)
    assert calls == [1]
    assert sorted(ids[0].tolist()) == list(range(991, 1001))
    assert all(len(set(row.tolist())) == 10 and 0 not in row for row in ids)
