"""Both models through RecBole's contract: causality, padding, scoring paths, every loss and activation, the paper's initialisation and embedding scale."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import build, train_steps

from recbole_sasrec.models import low_rank_attention
from recbole_sasrec.models.layers import ACTIVATIONS, FeedForward

MODELS = ["SASRec", "LightSANs"]


NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


@pytest.fixture(
    params=[
        *MODELS,
        "LightSANs-prefix-sums",
        "SASRec-from-end",
        "LightSANs-prefix-sums-from-end",
        "SASRec-query-norm",
    ]
)
def model(request, tiny, monkeypatch):
    """Each model in eval mode; LightSANs in its short-sequence (quadratic) form and in its
    linear prefix-sum form forced at every length; both with positions counted from the end;
    SASRec with the paper's code's LayerNorm placement."""
    name = request.param
    if "prefix-sums" in name:
        monkeypatch.setattr(low_rank_attention, "DENSE_MAX_LENGTH", 0)
    config = dict(tiny, **NO_DROPOUT, positions_from_end=name.endswith("from-end"))
    if name.endswith("query-norm"):
        config["block_norm"] = "query"
    _, net, *_ = build(name.split("-")[0], "cycle", config)
    return net.eval()


def random_seq(net, B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, net.n_items, (B, T), generator=g)


@torch.no_grad()
def test_causality_later_items_do_not_change_earlier_positions(model):
    seq = random_seq(model, 3, 10)
    k = 6
    changed = seq.clone()
    changed[:, k] = changed[:, k] % (model.n_items - 1) + 1  # a different real item at position k
    before, after = model.encode(seq), model.encode(changed)
    torch.testing.assert_close(after[:, :k], before[:, :k])
    assert not torch.allclose(after[:, k], before[:, k])  # position k itself does see the change


@torch.no_grad()
def test_padding_and_batch_neighbours_do_not_change_outputs(model):
    seq = random_seq(model, 2, 10, seed=1)
    lengths = torch.tensor([4, 9])
    padded = seq.clone()
    padded[0, 4:] = 0
    padded[1, 9:] = 0
    together = model(padded, lengths)  # [2, D]
    alone = model(padded[:1, :4], lengths[:1])  # trimmed to its own length
    torch.testing.assert_close(together[:1], alone)
    junk = padded.clone()
    junk[0, 4:] = random_seq(model, 1, 6, seed=2)  # whatever sits after the length is ignored
    torch.testing.assert_close(model(junk, lengths), together)


@torch.no_grad()
def test_forward_equals_each_sequence_encoded_alone(model):
    """Outside training, forward encodes sequences of similar length together, each group
    trimmed to its longest; in training, the batch at once: both give, in the batch's order,
    the state at the last real item of each sequence encoded alone, unpadded, at every
    position (no last-position shortcut)."""
    lengths = torch.tensor([3, 10, 1, 7, 10, 2, 5])
    seq = random_seq(model, len(lengths), 10, seed=3)
    seq[torch.arange(10)[None, :] >= lengths[:, None]] = 0
    alone = torch.stack(
        [model.encode(seq[b : b + 1, :n])[0, n - 1] for b, n in enumerate(lengths.tolist())]
    )  # [B, D]
    torch.testing.assert_close(model(seq, lengths), alone)
    model.train()
    torch.testing.assert_close(model(seq, lengths), alone)  # training: one batch (no dropout)


@torch.no_grad()
def test_predict_agrees_with_full_sort_predict(model):
    seq = random_seq(model, 5, 10, seed=3)
    lengths = torch.tensor([10, 1, 5, 7, 3])
    items = random_seq(model, 1, 5, seed=4)[0]
    inter = {model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths, model.ITEM_ID: items}
    full = model.full_sort_predict(inter)  # [5, n_items]
    assert full.shape == (5, model.n_items)
    torch.testing.assert_close(model.predict(inter), full[torch.arange(5), items])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("all_positions", [True, False])
@pytest.mark.parametrize("loss_type", ["CE", "BPR", "BCE"])
def test_loss_falls_for_every_loss_and_training_mode(tiny, name, loss_type, all_positions):
    cfg = dict(tiny, **NO_DROPOUT, loss_type=loss_type, train_all_positions=all_positions)
    _, net, train, *_ = build(name, "cycle", cfg)
    batch = next(iter(train))
    if all_positions:
        assert net.TARGET_SEQ in batch
    if loss_type != "CE" and not all_positions:
        assert net.NEG_ITEM_ID in batch  # RecBole's sampler supplied the negatives
    losses = train_steps(net, batch)
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < 0.7 * losses[0], losses


def test_all_position_loss_uses_every_target(tiny):
    """CE over all positions equals the mean CE of each real position scored on its own (one
    window a row; packed rows: tests/data/test_batching.py)."""
    _, net, train, *_ = build("SASRec", "cycle", dict(tiny, **NO_DROPOUT, train_batching="random"))
    net.eval()
    batch = next(iter(train))
    seq, lengths, targets = batch[net.ITEM_SEQ], batch[net.ITEM_SEQ_LEN], batch[net.TARGET_SEQ]
    per_position = []
    for b in range(len(seq)):
        for t in range(int(lengths[b])):
            if targets[b, t] > 0:
                h = net(seq[b : b + 1], torch.tensor([t + 1]))  # prefix up to position t
                logits = h @ net.embedding.item.weight.T
                per_position.append(F.cross_entropy(logits, targets[b, t : t + 1]))
    torch.testing.assert_close(net.calculate_loss(batch), torch.stack(per_position).mean())


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_activation(tiny, act):
    reference = {
        "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / 2**0.5)),
        "relu": lambda x: x.clamp(min=0),
        "swish": lambda x: x * torch.sigmoid(x),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
    }[act]
    ff = FeedForward(8, 16, act)
    x = torch.randn(3, 8)
    torch.testing.assert_close(ff(x), ff.fc2(reference(ff.fc1(x))))
    _, net, train, *_ = build("SASRec", "cycle", dict(tiny, hidden_act=act))
    loss = net.calculate_loss(next(iter(train)))
    loss.backward()
    assert torch.isfinite(loss)
    assert net.blocks[0].mlp.fc1.weight.grad.abs().sum() > 0


def test_fast_dropout_keeps_the_expectation_and_is_identity_in_eval():
    from recbole_sasrec.models.layers import Dropout

    drop = Dropout(0.3)
    x = torch.ones(200_000)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - 0.3) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.01
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))
    drop.eval()
    assert torch.equal(drop(x), x)


def test_explicit_attention_path_equals_sdpa():
    """Training with attention dropout takes an explicit path; without dropout it is SDPA's."""
    from recbole_sasrec.models.layers import CausalSelfAttention

    attn = CausalSelfAttention(16, 2, 0.0)
    x = torch.randn(3, 7, 16)
    q, k, v = attn._heads(x)
    explicit = attn._causal_softmax(q, k) @ v
    torch.testing.assert_close(explicit, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_last_position_shortcut_equals_encoding_every_position(model):
    """Scoring runs the last block for each sequence's last real position only: the same
    states, and the same gradients, as encoding every position and picking that one."""
    seq = random_seq(model, 4, 10, seed=5)
    lengths = torch.tensor([10, 1, 6, 3])
    with torch.no_grad():
        full = model.encode(seq, lengths=lengths)[torch.arange(4), lengths - 1]  # [4, D]
        torch.testing.assert_close(model(seq, lengths), full)
    model.train()  # no dropout in this fixture: training mode computes the same function
    params = [p for p in model.parameters() if p.requires_grad]
    probe = torch.randn(full.shape, generator=torch.Generator().manual_seed(6))  # [4, D]
    shortcut = (model(seq, lengths) * probe).sum()
    every = (model.encode(seq, lengths=lengths)[torch.arange(4), lengths - 1] * probe).sum()
    grads = [torch.autograd.grad(y, params, allow_unused=True) for y in (shortcut, every)]
    for a, b in zip(*grads, strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:  # float32 sums in another order: a few ulps apart
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_explicit_attention_rows_equal_the_full_causal_softmax():
    """One query per sequence (the scoring shortcut) picks rows of the full causal weights."""
    from recbole_sasrec.models.layers import CausalSelfAttention, causal_mask, select_rows

    attn = CausalSelfAttention(16, 2, 0.0)
    q, k, _ = attn._heads(torch.randn(3, 7, 16))
    rows = torch.tensor([6, 0, 3])
    full = attn._causal_softmax(q, k)  # [3, h, 7, 7]
    visible = causal_mask(7, q.device, rows)  # [3, 1, 1, 7]
    picked = attn._causal_softmax(select_rows(q, rows), k, visible)  # [3, h, 1, 7]
    torch.testing.assert_close(picked, select_rows(full, rows))


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


def test_positions_from_end_give_the_newest_item_position_0():
    from recbole_sasrec.models.layers import Packed

    rows = Packed.from_end(torch.tensor([3, 1]), 4)
    assert rows.positions.tolist() == [[2, 1, 0, 0], [0, 0, 0, 0]] and rows.visible is None
    packed = Packed.from_segments(torch.tensor([[1, 1, 1, 2, 2, 0]]), from_end=True)
    assert packed.positions[0, :5].tolist() == [2, 1, 0, 1, 0]
    forward = Packed.from_segments(torch.tensor([[1, 1, 1, 2, 2, 0]]))
    assert forward.positions[0, :5].tolist() == [0, 1, 2, 0, 1]
    assert torch.equal(packed.visible, forward.visible)


def test_query_norm_block_is_the_papers_code():
    """``block_norm: query``: queries from LayerNorm(x), keys and values from x itself, the
    residual from the normalised queries, the feed-forward's residual from its normalised
    input; written out here with the block's own weights (no dropout)."""
    from recbole_sasrec.models.layers import Block, CausalSelfAttention

    torch.manual_seed(0)
    D, h, T = 16, 2, 5
    block = Block(CausalSelfAttention(D, h, 0.0), D, 32, "relu", 0.0, 1e-8, query_norm=True)
    with torch.no_grad():  # LayerNorms away from the identity, so that where they sit matters
        for ln in (block.ln_1, block.ln_2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, T, D) * 3 + 1
    w, b = block.attn.qkv.weight, block.attn.qkv.bias
    q_in = block.ln_1(x)
    q, k, v = (
        F.linear(inp, w[i * D : (i + 1) * D], b[i * D : (i + 1) * D]).view(3, T, h, -1)
        for i, inp in enumerate((q_in, x, x))
    )
    attn = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)), is_causal=True)
    y = q_in + block.attn.out(attn.transpose(1, 2).reshape(3, T, D))
    y = block.ln_2(y)
    expected = y + block.mlp(y)
    torch.testing.assert_close(block(x), expected)
    pre = Block(block.attn, D, 32, "relu", 0.0, 1e-8)
    pre.load_state_dict(block.state_dict())
    assert not torch.allclose(pre(x), expected, atol=1e-3)  # the default places them elsewhere
    rows = torch.tensor([4, 0, 2])  # the last block's one-query shortcut agrees
    torch.testing.assert_close(block(x, rows)[:, 0], expected[torch.arange(3), rows])
    maps = block.attention_weights(x)["self-attention"]  # [3, h, T, T]
    torch.testing.assert_close(maps @ v.transpose(1, 2), attn)
