"""The keys every self-attentive model reads (the encoder's shape, dropout, initialisation), with
those of its loss, negatives and item attributes: ``SelfAttentiveRecommender.KEYS``."""

from __future__ import annotations

from ..core.keys import Key, boolean, choice, integer, number
from . import item_features, losses, negatives
from .layers import ACTIVATIONS


def _divides_hidden(config) -> str | None:
    D, h = config["hidden_size"], config["n_heads"]
    if D % h:
        divisors = [n for n in range(1, D + 1) if D % n == 0]
        return (
            f"hidden_size={D} is not divisible by n_heads={h}; "
            f"with hidden_size={D}, n_heads may be one of {divisors}"
        )
    return None


def _probability(name: str, default: float, meaning: str) -> Key:
    must = "must be a dropout probability in [0, 1)"
    return number(name, default, meaning, 0, 1, closed=(True, False), must=must)


KEYS = (
    integer("n_layers", 2, "self-attention blocks"),
    integer(
        "n_heads",
        2,
        "attention heads",
        allowed="int >= 1 dividing `hidden_size`",
        relation=_divides_hidden,
    ),
    integer("hidden_size", 64, "item (and position) embedding and hidden size"),
    integer("inner_size", 256, "inner size of the point-wise feed-forward network"),
    _probability("hidden_dropout_prob", 0.5, "dropout on embeddings and sub-layer outputs"),
    _probability("attn_dropout_prob", 0.5, "dropout on attention weights"),
    choice("hidden_act", "gelu", tuple(ACTIVATIONS), "feed-forward activation"),
    number("layer_norm_eps", 1e-12, "LayerNorm epsilon", must="must be a number > 0"),
    choice(
        "weight_init",
        "normal",
        ("normal", "xavier"),
        "RecBole's Normal(0, initializer_range), or Glorot uniform (the paper's code)",
    ),
    number(
        "initializer_range",
        0.02,
        "standard deviation of the normal initialisation",
        must="must be a number > 0",
    ),
    boolean(
        "embedding_scale",
        False,
        "input item embeddings times sqrt(`hidden_size`) (the paper's code)",
    ),
    boolean(
        "positions_from_end",
        False,
        "positions counted back from the newest item, as the paper's left-padded code counts "
        "them; False: RecBole's, from the oldest",
    ),
    *losses.KEYS,
    *negatives.KEYS,
    *item_features.KEYS,
)
