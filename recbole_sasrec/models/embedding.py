"""The encoder's input: each item's vector (its id's row, with attributes ``item_features.py``)
plus a learned position, then dropout (paper eq. 2).

Shapes: B batch, T sequence length, N items (row 0 the pad), D hidden_size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .item_features import ItemFeatures, ItemVectors
from .layers import Dropout


class SequenceEmbedding(nn.Module):
    """Item embedding plus learned absolute position embedding, then dropout (paper eq. 2).
    With ``positions=False`` (LightSANs' decoupled position encoding) the item embedding alone.

    The paper writes E = M_s + P without a scale; its TensorFlow code multiplies the item part
    by sqrt(D) (``scale=True``, the key ``embedding_scale``), RecBole does not. Only the input is
    scaled: scores use the item embedding as it is, as the paper's code does. Position 0 is the
    oldest item of the window: RecBole pads on the right, so real items start at position 0.
    """

    def __init__(
        self,
        n_items: int,
        max_len: int,
        hidden_size: int,
        dropout: float,
        positions: bool = True,
        scale: bool = False,
        sparse: bool = False,
        features: ItemFeatures | None = None,
        id_dropout: float = 0.0,
    ):
        super().__init__()
        # sparse: the item table's gradient holds the rows a batch used (sparse_item_updates)
        self.item = nn.Embedding(n_items, hidden_size, padding_idx=0, sparse=sparse)
        self.position = nn.Embedding(max_len, hidden_size) if positions else None
        self.dropout = Dropout(dropout)
        self.scale = math.sqrt(hidden_size) if scale else 1.0
        if features is not None:  # absent without features: the ID-only model's state dict
            self.features = features
        self.id_dropout = id_dropout
        # rows numbered by a vocabulary (None: the item ids), for a model started from one
        # trained on another catalogue (the key init_from)
        self.vocabulary_rows = {"item.weight": None}

    def vectors(self) -> nn.Embedding | ItemVectors:
        """The item table of one step, read by the input and the loss alike: the id embedding
        itself, or with attributes an ``ItemVectors`` (``item_features.py``)."""
        features = getattr(self, "features", None)
        if features is None:
            return self.item
        keep = None
        if self.training and self.id_dropout > 0:
            n = self.item.num_embeddings
            keep = (torch.rand(n, device=self.item.weight.device) >= self.id_dropout).float()
        return ItemVectors(self.item, features(), keep)

    def forward(
        self,
        item_seq: torch.Tensor,
        positions: torch.Tensor | None = None,
        vectors: nn.Embedding | ItemVectors | None = None,
    ) -> torch.Tensor:
        """item_seq [B, T] -> [B, T, D]; ``positions`` [B, T] (0..T-1 if not given);
        ``vectors``: the step's item table (``vectors()`` if not given). ``item_seq`` may be
        the items' vectors already, [B, T, D] floats: an exported encoder's input, which the
        serving side looks up in its own table (that can grow by new items)."""
        if item_seq.is_floating_point():
            x = item_seq
        elif (vectors := self.vectors() if vectors is None else vectors) is not self.item:
            x = vectors.rows(item_seq)
        else:
            x = self.item(item_seq)
        if self.scale != 1.0:
            x = x * self.scale
        if self.position is not None:
            if positions is None:
                positions = torch.arange(item_seq.size(1), device=item_seq.device)
            x = x + self.position(positions)
        return self.dropout(x)
