"""The optimiser: Adam's betas and fused kernel, and lazy Adam on the rows a batch used."""

from __future__ import annotations

import pytest
import torch
from conftest import build

from recbole_sasrec import ConfigError, run_recbole
from recbole_sasrec.integration.trainer import get_trainer


def test_adam_betas_reach_the_optimiser(tiny):
    config, net, *_ = build("SASRec", "cycle", dict(tiny, adam_betas=[0.9, 0.98]))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    assert trainer.optimizer.param_groups[0]["betas"] == (0.9, 0.98)


def test_adam_fused_is_the_default_and_steps_as_torch_s_default_adam(tiny):
    steps = {}
    for fused in (True, False):
        config, net, *_ = build("SASRec", "cycle", dict(tiny, adam_fused=fused))
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        assert trainer.optimizer.param_groups[0]["fused"] is (True if fused else None)
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            for p in net.parameters():
                p.grad = torch.randn(p.shape, generator=generator)
            trainer.optimizer.step()
        steps[fused] = [p.detach().clone() for p in net.parameters()]
    for a, b in zip(steps[True], steps[False], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


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
        net.criterion(
            h, torch.tensor([1, 2, 3]), net.embedding.item, None, torch.tensor([4, 5, 6])
        ).backward()
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
    test = result["test_result"]  # learned as with Adam: NDCG@10 0.9486-1.0 over 5 seeds
    assert test["hit@10"] == 1.0 and test["ndcg@10"] >= 0.9, test
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
