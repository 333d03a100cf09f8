"""SASRec: Self-Attentive Sequential Recommendation (Kang & McAuley, ICDM 2018).

Learned position embeddings added to item embeddings, ``n_layers`` pre-LN blocks of causal
multi-head self-attention and a point-wise feed-forward network, scores through the shared item
embedding. Everything but the attention module and the blocks' LayerNorm placement
(``block_norm``) is in ``base.SelfAttentiveRecommender``.
"""

from __future__ import annotations

from torch import nn

from ..core.keys import choice
from .base import SelfAttentiveRecommender
from .layers import CausalSelfAttention


class SASRec(SelfAttentiveRecommender):
    """SASRec, with the keys and defaults of RecBole's SASRec (``properties/SASRec.yaml``)."""

    KEYS = (
        *SelfAttentiveRecommender.KEYS,
        choice(
            "block_norm",
            "pre",
            ("pre", "query"),
            "pre: each sub-layer reads LayerNorm(x) and adds to x (the paper's text); query: "
            "the paper's code, only the attention's queries normalised and the residual "
            "continued from them",
        ),
    )

    def make_attention(self, config, positions: nn.Embedding | None) -> nn.Module:
        return CausalSelfAttention(
            config["hidden_size"], config["n_heads"], config["attn_dropout_prob"]
        )

    def block_norm(self, config) -> str:
        return config["block_norm"]
