"""LightSANs (Fan et al., "Lighter and Better: Low-Rank Decomposed Self-Attention Networks for
Next-Item Recommendation", SIGIR 2021), made causal so that it trains at every position.

Its attention, item-to-interest and decoupled position-to-position, both low-rank, causal and
linear in the sequence length, is ``low_rank_attention.LowRankCausalAttention`` (the maths and
how it differs from RecBole's LightSANs are there); everything else is
``base.SelfAttentiveRecommender``.
"""

from __future__ import annotations

from torch import nn

from ..core.keys import ConfigError, integer
from .base import SelfAttentiveRecommender
from .low_rank_attention import LowRankCausalAttention


def _fits_the_window(config) -> str | None:
    k, L = config["k_interests"], config["MAX_ITEM_LIST_LENGTH"]
    if k > L:
        return (
            f"k_interests={k} is larger than MAX_ITEM_LIST_LENGTH={L}; allowed: 1..{L} "
            f"(about {max(1, L // 10)} suggested)"
        )
    return None


class LightSANs(SelfAttentiveRecommender):
    """LightSANs, with the keys and defaults of RecBole's LightSANs (``properties/LightSANs.yaml``)."""

    KEYS = (
        *SelfAttentiveRecommender.KEYS,
        integer(
            "k_interests",
            5,
            "latent interests, about 0.1 x `MAX_ITEM_LIST_LENGTH`",
            allowed="1..`MAX_ITEM_LIST_LENGTH`",
            relation=_fits_the_window,
        ),
    )

    @classmethod
    def resolve_aliases(cls, final: dict, external: dict) -> None:
        """RecBole's LightSANs page documents ``num_layers``; the model reads ``n_layers``."""
        if "num_layers" not in external:
            return
        if "n_layers" in external and external["n_layers"] != external["num_layers"]:
            raise ConfigError(
                f"num_layers={external['num_layers']!r} and n_layers={external['n_layers']!r} "
                f"disagree; num_layers is an alias of n_layers: give one, or equal values"
            )
        final["n_layers"] = external["num_layers"]

    def make_positions(self, config) -> nn.Embedding:
        # decoupled position encoding: no positions in the input, one table every block reads
        return nn.Embedding(self.max_seq_length, config["hidden_size"])

    def make_attention(self, config, positions: nn.Embedding | None) -> nn.Module:
        return LowRankCausalAttention(
            config["hidden_size"],
            config["n_heads"],
            config["k_interests"],
            config["attn_dropout_prob"],
            config["layer_norm_eps"],
            positions,
        )
