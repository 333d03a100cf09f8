"""Losses for large catalogues: values on hand-computed cases, chunked CE equal to one-shot CE
with bounded saved memory, and learning end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import N_ITEMS, build

from recbole_sasrec import ConfigError, run_recbole
from recbole_sasrec.losses import cross_entropy, gbce, sampled_softmax
from recbole_sasrec.trainer import get_trainer


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_sampled_softmax_by_hand():
    h = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    emb = {1: [1.0, 1.0], 2: [0.5, -1.0], 3: [2.0, 0.0]}
    pos, neg = torch.tensor([1, 2]), torch.tensor([2, 3])
    E = lambda ids: torch.tensor([emb[int(i)] for i in ids])  # noqa: E731
    log_q_pos, log_q_neg = torch.tensor([0.1, 0.2]), torch.tensor([0.3, -0.4])
    loss = sampled_softmax(h, E(pos), E(neg), pos, neg, log_q_pos, log_q_neg)
    # target 1: scores pos 1, negatives 0.5 and 2, each minus its log(kQ)
    a = [1 - 0.1, 0.5 - 0.3, 2 + 0.4]
    # target 2 (item 2): the negative equal to it (item 2) is masked out
    b = [-2 - 0.2, 0 + 0.4]
    expected = [math.log(sum(map(math.exp, z))) - z[0] for z in (a, b)]
    assert loss.item() == pytest.approx(sum(expected) / 2, rel=1e-6)


def test_gbce_by_hand():
    h = torch.tensor([[1.0, 0.0]])
    pos, neg = torch.tensor([1]), torch.tensor([[2, 3]])
    pos_emb, neg_emb = torch.tensor([[2.0, 0.0]]), torch.tensor([[[0.5, 0.0], [-1.0, 0.0]]])
    n_items, t = 11, 0.75  # 10 real items, k = 2: alpha = 0.2
    alpha = 2 / 10
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    expected = -(
        beta * math.log(sigmoid(2.0)) + math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-1.0))
    )
    assert gbce(h, pos_emb, neg_emb, pos, neg, n_items, t).item() == pytest.approx(expected)
    # t = 0 is BCE with k negatives (beta = 1)
    plain = -(math.log(sigmoid(2.0)) + math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-1.0)))
    assert gbce(h, pos_emb, neg_emb, pos, neg, n_items, 0.0).item() == pytest.approx(plain)
    # a negative that is the target itself does not count
    hit = gbce(h, pos_emb, neg_emb, pos, torch.tensor([[1, 3]]), n_items, 0.0).item()
    assert hit == pytest.approx(-(math.log(sigmoid(2.0)) + math.log(1 - sigmoid(-1.0))))


def test_chunked_cross_entropy_equals_one_shot_and_saves_no_logits():
    g = torch.Generator().manual_seed(0)
    N, n_items, D = 300, 500, 16
    h = torch.randn(N, D, generator=g, requires_grad=True)
    W = torch.randn(n_items, D, generator=g, requires_grad=True)
    target = torch.randint(0, n_items, (N,), generator=g)
    full = F.cross_entropy(h @ W.T, target)
    grads = torch.autograd.grad(full, (h, W))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        chunked = cross_entropy(h, W, target, max_logits=7 * n_items)  # chunks of 7 targets
    chunked_grads = torch.autograd.grad(chunked, (h, W))
    torch.testing.assert_close(chunked, full)
    for a, b in zip(chunked_grads, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert max(saved) < N * n_items / 10  # inputs and per-target log-sum-exps, never the logits
    assert "ChunkedCrossEntropy" in type(chunked.grad_fn).__name__


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
@pytest.mark.parametrize(
    "loss_type, sampler",
    [("SSM", "uniform"), ("SSM", "popularity"), ("SSM", "in_batch"), ("gBCE", "uniform")],
)
@pytest.mark.parametrize("all_positions", [True, False])
def test_sampled_losses_fall(tiny, name, loss_type, sampler, all_positions):
    cfg = dict(tiny, hidden_dropout_prob=0.0, attn_dropout_prob=0.0, loss_type=loss_type)
    cfg.update(negative_sampler=sampler, loss_negatives=8, train_all_positions=all_positions)
    _, net, train, *_ = build(name, "cycle", cfg)
    batch = next(iter(train))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        torch.manual_seed(0)  # the same negatives each step: the fall is learning, not luck
        loss = net.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("loss_type, k", [("SSM", 8), ("gBCE", 2)])
def test_sampled_losses_learn_end_to_end(tiny, loss_type, k):
    # gBCE with 8 of the 30 items as negatives per target learns too, but takes 60 epochs
    cfg = dict(tiny, loss_type=loss_type, loss_negatives=k)
    result = run_recbole("SASRec", "cycle", config_dict=cfg, saved=False)
    assert result["test_result"]["hit@10"] > 0.9 > 2 * 10 / N_ITEMS


@pytest.mark.parametrize("loss_type", ["BPR", "BCE", "SSM", "gBCE"])
def test_item_gradients_are_the_same_run_after_run(tiny, loss_type):
    """Embedding lookups add gradients in a fixed order (``weight[ids]`` would add them in a
    thread-dependent order on CPU, and runs with one seed drifted apart)."""
    _, net, *_ = build("SASRec", "cycle", dict(tiny, loss_type=loss_type, loss_negatives=16))
    g = torch.Generator().manual_seed(0)
    h = torch.randn(60_000, net.embedding.item.weight.size(1), generator=g)
    pos = torch.randint(1, net.n_items, (60_000,), generator=g)
    neg = torch.randint(1, net.n_items, (60_000,), generator=g)
    grads = []
    for _ in range(4):
        torch.manual_seed(1)
        net.zero_grad()
        net.loss(h, pos, neg).backward()
        grads.append(net.embedding.item.weight.grad.clone())
    assert all(torch.equal(grads[0], other) for other in grads[1:])


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
@pytest.mark.parametrize("loss_type", ["BCE", "SSM", "gBCE"])
def test_sparse_item_updates_touch_only_the_rows_a_batch_used(tiny, name, loss_type):
    """The item table's gradient is sparse (input and output lookups); lazy Adam moves the rows
    a step used and leaves the others as they were; and its first step is dense Adam's (both
    start from zero moments)."""
    cfg = dict(tiny, hidden_dropout_prob=0.0, attn_dropout_prob=0.0, loss_type=loss_type)
    cfg.update(loss_negatives=4)
    runs = {}
    for sparse in (True, False):
        config, net, train, *_ = build(name, "cycle", dict(cfg, sparse_item_updates=sparse))
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        net.calculate_loss(next(iter(train))).backward()
        assert net.embedding.item.weight.grad.is_sparse is sparse
        trainer.optimizer.zero_grad()
        # three targets and their negatives: a few rows of the table
        before = net.embedding.item.weight.detach().clone()
        h = torch.randn(3, before.size(1), generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        net.loss(h, torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])).backward()
        grad = net.embedding.item.weight.grad
        used = grad.coalesce().indices()[0] if sparse else None
        trainer.optimizer.step()
        runs[sparse] = net.embedding.item.weight.detach().clone(), before, used
    (after, before, used), (dense_after, *_) = runs[True], runs[False]
    moved = torch.nonzero((after != before).any(1)).squeeze(1)
    assert len(moved) and set(moved.tolist()) <= set(used.tolist())
    assert len(set(used.tolist())) < len(before) // 2  # a few rows, not the table
    # SparseAdam adds eps before the bias correction: a little larger where a gradient is
    # tiny; a first step moves an entry by about the learning rate (0.004)
    torch.testing.assert_close(after, dense_after, rtol=0, atol=5e-4)
    assert not torch.equal(dense_after[moved], before[moved])


def test_sparse_item_updates_train_and_resume(tiny, tmp_path):
    cfg = dict(tiny, loss_type="SSM", loss_negatives=8, sparse_item_updates=True)
    result = run_recbole("SASRec", "cycle", config_dict=cfg)
    assert result["test_result"]["hit@10"] > 0.9 > 2 * 10 / N_ITEMS
    state = torch.load(result["model_file"], weights_only=True)["optimizer"]
    assert set(state) == {"dense", "sparse"} and state["sparse"]["state"]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"loss_type": "CE"}, "loss_type='CE' scores every item"),
        ({"loss_type": "BCE", "weight_decay": 0.01}, "weight_decay=0.01: lazy Adam"),
        ({"loss_type": "BCE", "learner": "sgd"}, "learner='sgd'"),
    ],
)
def test_sparse_item_updates_refused_where_they_cannot_train(tiny, overrides, expected):
    with pytest.raises(
        ConfigError, match=f"sparse_item_updates=True cannot train here: {expected}"
    ):
        build("SASRec", "cycle", dict(tiny, sparse_item_updates=True, **overrides))


def test_cross_entropy_without_earlier_items_by_hand_and_in_chunks():
    torch.manual_seed(0)
    h, W = torch.randn(7, 4, requires_grad=True), torch.randn(11, 4, requires_grad=True)
    target = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    # target 1 has seen its own target (a repeat): it stays in its softmax
    earlier = torch.tensor([0, 0, 1, 3, 3, 6]), torch.tensor([2, 5, 1, 4, 7, 1])
    logits = (h @ W.T).detach()
    for n, item in [(0, 2), (0, 5), (3, 4), (3, 7), (6, 1)]:
        logits[n, item] = float("-inf")
    expected = F.cross_entropy(logits, target)
    one_shot = cross_entropy(h, W, target, 10**9, earlier)
    grads = torch.autograd.grad(one_shot, (h, W))
    chunked = cross_entropy(h, W, target, 20, earlier)  # 1 target a chunk
    assert one_shot.item() == pytest.approx(expected.item(), rel=1e-6)
    assert chunked.item() == pytest.approx(expected.item(), rel=1e-6)
    for a, b in zip(grads, torch.autograd.grad(chunked, (h, W)), strict=True):
        torch.testing.assert_close(a, b)


def test_earlier_items_of_packed_windows_stay_in_their_window():
    from recbole_sasrec.base import earlier_items
    from recbole_sasrec.layers import Packed

    seq = torch.tensor([[5, 6, 7, 8, 9]])  # two windows: [5, 6] and [7, 8, 9]
    targets = torch.tensor([[6, 0, 8, 9, 2]])  # position 1 is no target
    packed = Packed.from_segments(torch.tensor([[1, 1, 2, 2, 2]]))
    n, items = earlier_items(seq, targets > 0, packed.visible[:, 0])
    pairs = sorted(zip(n.tolist(), items.tolist(), strict=True))
    assert pairs == [(0, 5), (1, 7), (2, 7), (2, 8), (3, 7), (3, 8), (3, 9)]


def test_excluding_earlier_items_trains(tiny):
    result = run_recbole("SASRec", "cycle", config_dict=dict(tiny, loss_exclude_earlier=True))
    assert result["test_result"]["hit@10"] > 0.5
