"""The shared layers (``models/layers.py``) on their own."""

from __future__ import annotations

import torch

from recbole_sasrec.models.layers import CausalSelfAttention, Packed


@torch.no_grad()
def test_attention_weights_of_packed_rows_stay_within_each_window():
    """The weights ``attention_weights`` reports are the ones forward() uses: for a row holding
    two windows, the second window's queries put no weight on the first window's keys."""
    torch.manual_seed(0)
    attn = CausalSelfAttention(8, 2, 0.0).eval()
    x = torch.randn(1, 5, 8)
    packed = Packed.from_segments(torch.tensor([[1, 1, 2, 2, 2]]))
    weights = attn.attention_weights(x, packed)["self-attention"]  # [1, h, 5, 5]
    assert weights[0, :, 2:, :2].abs().max() == 0  # window 2 never sees window 1
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 5))
    # and they reproduce forward(): the second window alone gives the same outputs there
    q, k, v = attn._heads(x)
    y = (weights @ v).transpose(1, 2).reshape(1, 5, 8)
    torch.testing.assert_close(attn.out(y), attn(x, packed=packed))
