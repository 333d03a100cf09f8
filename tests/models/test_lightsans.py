"""LightSANs' causal low-rank attention: the prefix form, its quadratic form, the alias and k_interests."""

from __future__ import annotations

import pytest
import torch

from recbole_sasrec import Config, ConfigError, run_recbole
from recbole_sasrec.models.low_rank_attention import capped_exp, causal_aggregate


def test_aggregation_is_the_prefix_softmax_average():
    """numerator / denominator at t == softmax over items 1..t of the scores, times x."""
    g = torch.Generator().manual_seed(0)
    scores, x = torch.randn(2, 7, 3, generator=g) * 4, torch.randn(2, 7, 5, generator=g)
    num, den = causal_aggregate(capped_exp(scores), x)
    for t in range(7):
        w = torch.softmax(30 * torch.tanh(scores[:, : t + 1] / 30), dim=1)  # [2, t+1, 3]
        expected = torch.einsum("bij,bid->bjd", w, x[:, : t + 1])  # [2, 3, 5]
        torch.testing.assert_close(num[:, t] / den[:, t].unsqueeze(-1), expected)


def test_extreme_scores_stay_finite_and_causal():
    scores = torch.tensor([[[-500.0], [0.0], [500.0], [-500.0]]])  # [1, 4, 1]
    x = torch.arange(4.0).view(1, 4, 1)
    num, den = causal_aggregate(capped_exp(scores), x)
    avg = num / den.unsqueeze(-1)
    assert torch.isfinite(avg).all()
    assert avg[0, 0, 0, 0] == 0.0  # the first position sees item 0 only, however large item 2 is


def test_num_layers_is_an_alias_of_n_layers():
    assert Config("LightSANs", "ml-100k", config_dict={"num_layers": 3})["n_layers"] == 3
    same = {"num_layers": 1, "n_layers": 1}
    assert Config("LightSANs", "ml-100k", config_dict=same)["n_layers"] == 1
    with pytest.raises(ConfigError, match=r"num_layers=3 and n_layers=1 disagree"):
        Config("LightSANs", "ml-100k", config_dict={"num_layers": 3, "n_layers": 1})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"k_interests": 60}, "k_interests=60 is larger than MAX_ITEM_LIST_LENGTH=50"),
        ({"k_interests": 11, "MAX_ITEM_LIST_LENGTH": 10}, "MAX_ITEM_LIST_LENGTH=10"),
        ({"k_interests": 0}, "k_interests=0 must be a positive integer"),
    ],
)
def test_k_interests_must_fit_the_sequence(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        Config("LightSANs", "ml-100k", config_dict=overrides)


def test_lightsans_learns_the_tiny_cycle(tiny):
    result = run_recbole("LightSANs", "cycle", config_dict=dict(tiny, k_interests=3))
    test = result["test_result"]  # measured: Hit@10 and NDCG@10 1.0 over seeds 2020, 1-4
    assert test["hit@10"] == 1.0 and test["ndcg@10"] >= 0.9, test


def test_drawn_item_to_item_weights_reproduce_the_attention():
    """The item-to-item map that `attention` draws is exactly what the item part computes."""
    from recbole_sasrec.models.low_rank_attention import LowRankCausalAttention

    torch.manual_seed(0)
    attn = LowRankCausalAttention(16, 2, 3, 0.0, 1e-12, torch.nn.Embedding(10, 16)).eval()
    x = torch.randn(2, 8, 16)
    q, k, v, *_ = attn._projections(x)
    item = attn._attend(
        q,
        *causal_aggregate(capped_exp(attn.theta_k(k)), k),
        *causal_aggregate(capped_exp(attn.theta_v(v)), v),
    )  # [2, 8, 16]
    A = attn.attention_weights(x)["item-to-item"]  # [2, h, 8, 8]
    heads = v.view(2, 8, 2, 8).transpose(1, 2)  # [2, h, 8, d]
    torch.testing.assert_close((A @ heads).transpose(1, 2).reshape(2, 8, 16), item)


@pytest.mark.parametrize("T", [1, 9, 40])
def test_quadratic_form_equals_prefix_sums_in_value_and_gradient(T, monkeypatch):
    """Short sequences take the T x T form, long ones the prefix sums: one function."""
    from recbole_sasrec.models import low_rank_attention
    from recbole_sasrec.models.low_rank_attention import LowRankCausalAttention

    torch.manual_seed(1)
    attn = LowRankCausalAttention(16, 2, 3, 0.0, 1e-12, torch.nn.Embedding(64, 16))
    x = torch.randn(3, T, 16, requires_grad=True)
    outputs, grads = [], []
    for limit in (64, 0):  # quadratic form, then prefix sums
        monkeypatch.setattr(low_rank_attention, "DENSE_MAX_LENGTH", limit)
        y = attn(x)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outputs.append(y.detach())
        grads.append([x.grad.clone()] + [p.grad.clone() for p in attn.parameters()])
        x.grad = None
        attn.zero_grad()
    torch.testing.assert_close(outputs[0], outputs[1])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
