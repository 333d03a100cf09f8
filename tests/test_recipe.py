"""Overlapping windows (context for every target) and the SASRec paper's recipe as keys."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from conftest import build, write_cycle_dataset

from recbole_sasrec import ConfigError
from recbole_sasrec.trainer import get_trainer

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


@pytest.fixture
def long_histories(tmp_path, tiny):
    """Users of 3 to 45 actions over 500 items (no item twice in a user's history), L = 10."""
    root = write_cycle_dataset(tmp_path / "long", n_users=40, n_items=500, min_len=3, max_len=45)
    return dict(tiny, data_path=str(root))


def targets_of(rows) -> Counter:
    t = rows["next_item_id_list"]
    users = rows["user_id"].unsqueeze(1).expand_as(t)[t > 0]
    return Counter(zip(users.tolist(), t[t > 0].tolist(), strict=True))


@pytest.mark.parametrize("context", [3, 6, 9])
def test_windows_with_context_keep_every_target_once_and_show_it_its_history(
    long_histories, context
):
    _, _, plain, *_ = build("SASRec", "cycle", long_histories)
    _, _, overlap, *_ = build("SASRec", "cycle", dict(long_histories, window_context=context))
    a, b = plain._dataset.inter_feat, overlap._dataset.inter_feat
    assert targets_of(b) == targets_of(a)  # the same (user, target) multiset: each once
    assert len(b) > len(a)  # histories longer than L take more windows
    # each user's training sequence, rebuilt from the plain windows (most recent first, not
    # overlapping): their inputs oldest first, then the last target
    windows = {}
    for u, x, y, n in zip(
        a["user_id"].tolist(),
        a["item_id_list"].tolist(),
        a["next_item_id_list"].tolist(),
        a["item_length"].tolist(),
        strict=True,
    ):
        windows.setdefault(u, []).append((x[:n], y[n - 1]))
    sequence = {
        u: [i for x, _ in reversed(ws) for i in x] + [ws[0][1]] for u, ws in windows.items()
    }
    L = b["item_id_list"].size(1)
    for u, x, y, n in zip(
        b["user_id"].tolist(),
        b["item_id_list"].tolist(),
        b["next_item_id_list"].tolist(),
        b["item_length"].tolist(),
        strict=True,
    ):
        order = sequence[u]
        for t in range(n):
            if y[t] == 0:
                continue
            p = order.index(y[t])  # items before the target in the user's history
            assert x[: t + 1] == order[p - t - 1 : p]  # its inputs: the history right before it
            assert t + 1 >= min(context + 1, p)  # at least context + 1 of them, or all
        assert n <= L


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
def test_windows_with_context_train_as_their_targets_one_by_one(long_histories, name):
    cfg = dict(long_histories, **NO_DROPOUT, window_context=5, train_batching="random")
    _, net, train, *_ = build(name, "cycle", cfg)
    net.eval()
    batch = next(iter(train))
    seq, lengths, targets = batch["item_id_list"], batch["item_length"], batch["next_item_id_list"]
    losses = []
    for b in range(len(seq)):
        for t in range(int(lengths[b])):
            if targets[b, t] > 0:  # scored from its prefix within the window, context included
                h = net(seq[b : b + 1], torch.tensor([t + 1]))
                losses.append(
                    F.cross_entropy(h @ net.embedding.item.weight.T, targets[b, t : t + 1])
                )
    torch.testing.assert_close(net.calculate_loss(batch), torch.stack(losses).mean())


def test_window_context_must_be_below_the_window(tiny):
    with pytest.raises(ConfigError, match="window_context=10 must be an integer in 0..9"):
        build("SASRec", "cycle", dict(tiny, window_context=10))


# ---- the paper's recipe ----------------------------------------------------------------------
def test_embedding_scale_multiplies_the_input_items_only(tiny):
    _, net, *_ = build("SASRec", "cycle", dict(tiny, **NO_DROPOUT, embedding_scale=True))
    net.eval()
    seq = torch.tensor([[1, 2, 3]])
    emb = net.embedding
    expected = emb.item(seq) * math.sqrt(32) + emb.position(torch.arange(3))
    torch.testing.assert_close(emb(seq), expected)


def test_xavier_initialisation(tiny):
    _, net, *_ = build("SASRec", "cycle", dict(tiny, weight_init="xavier"))
    w = net.blocks[0].mlp.fc1.weight  # [64, 32]
    bound = math.sqrt(6 / (32 + 64))
    assert w.abs().max() <= bound and w.std() > 0.5 * bound / math.sqrt(3)  # not std 0.02
    _, default, *_ = build("SASRec", "cycle", tiny)
    assert abs(default.blocks[0].mlp.fc1.weight.std().item() - 0.02) < 0.004


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


@pytest.mark.parametrize("loss_type", ["BCE", "gBCE"])
def test_negatives_outside_the_user_s_history(long_histories, loss_type):
    cfg = dict(
        long_histories, loss_type=loss_type, negatives_exclude_history=True, loss_negatives=4
    )
    _, net, train, *_ = build("SASRec", "cycle", cfg)
    history = set(net.history_keys.tolist())
    batch = next(iter(train))
    targets = batch["next_item_id_list"]
    users = batch["user_id"].unsqueeze(1).expand_as(targets)[targets > 0]
    pos = targets[targets > 0]
    for _ in range(20):
        neg = net.sample_negatives(pos, users)
        assert not (neg == pos).any()
        assert (
            not {int(u) * net.n_items + int(n) for u, n in zip(users, neg, strict=True)} & history
        )
    # the histories are the users' training items: some draws would hit them without the key
    assert len(history) > 0.1 * len(users.unique()) * net.n_items / 50


def test_negatives_outside_history_only_where_they_are_drawn_per_target(tiny):
    with pytest.raises(ConfigError, match="negatives_exclude_history=True draws"):
        build("SASRec", "cycle", dict(tiny, loss_type="SSM", negatives_exclude_history=True))
