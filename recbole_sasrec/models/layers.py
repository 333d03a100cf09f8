"""Layers shared by SASRec and LightSANs: masks, dropout, feed-forward, attention, pre-LN block
(the input embedding is ``embedding.py``).

Shapes: B batch, T sequence length (trimmed to the longest real sequence in the batch),
D hidden_size, h n_heads, d = D / h per head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


def causal_mask(T: int, device: torch.device, rows: torch.Tensor | None = None) -> torch.Tensor:
    """[T, T] bool, True where key i <= query t; with rows [B], the row of query rows[b] for
    each sequence, shaped to broadcast over heads: [B, 1, 1, T]."""
    mask = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    return mask if rows is None else mask[rows].view(-1, 1, 1, T)


@dataclass
class Packed:
    """Where each position of a batch stands, when not simply 0..T-1 under a causal mask.

    ``positions`` [B, T]: each position's index in the position table; ``visible`` [B, 1, T, T]
    or None: key j is visible to query i when both lie in one window and j <= i (rows holding
    several windows, ``train_batching: packed``), or the plain causal mask (None).
    """

    positions: torch.Tensor
    visible: torch.Tensor | None

    @classmethod
    def from_segments(cls, segments: torch.Tensor, from_end: bool = False) -> Packed:
        """segments [B, T]: the window (1, 2, ...) of each position, 0 for padding. Positions
        restart at 0 in every window, counted from its oldest item or (``from_end``) back from
        its newest."""
        T = segments.size(1)
        steps = torch.arange(T, device=segments.device)
        new = torch.ones_like(segments, dtype=torch.bool)
        new[:, 1:] = segments[:, 1:] != segments[:, :-1]
        starts = torch.cummax(torch.where(new, steps, 0), dim=1).values  # [B, T]
        same = segments[:, :, None] == segments[:, None, :]  # [B, T, T]
        positions = steps - starts
        if from_end:  # each window's length - 1 - its own position
            positions = (same.sum(-1) - 1 - positions).clamp(min=0)
        visible = same & causal_mask(T, segments.device)
        return cls(positions=positions, visible=visible.unsqueeze(1))

    @classmethod
    def from_end(cls, lengths: torch.Tensor, T: int) -> Packed:
        """One window a row, of lengths [B]: positions counted back from its newest item."""
        steps = torch.arange(T, device=lengths.device)
        return cls(positions=(lengths[:, None] - 1 - steps).clamp(min=0), visible=None)


def select_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Position rows[b] of sequence b: t [B|1, h, T, x] -> [B, h, 1, x] (a batch of 1 is shared
    by every sequence)."""
    B = rows.size(0)
    picked = t.expand(B, *t.shape[1:])[torch.arange(B, device=rows.device), :, rows]  # [B, h, x]
    return picked.unsqueeze(2)


def select_positions(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x [B, T, D] -> [B, 1, D], position rows[b] of sequence b."""
    return select_rows(x.unsqueeze(1), rows).squeeze(1)


class Dropout(nn.Module):
    """``nn.Dropout`` with its mask drawn by ``torch.rand_like``: the same distribution, but
    cheaper on CPU than ``bernoulli_`` (``python -m benchmarks.profile_epoch`` shows the
    difference in an epoch's forward and backward time)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return torch.where(torch.rand_like(x) >= self.p, x * (1.0 / (1.0 - self.p)), 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class FeedForward(nn.Module):
    """Point-wise feed-forward network (paper eq. 4): W2 act(W1 x + b1) + b2."""

    def __init__(self, hidden_size: int, inner_size: int, hidden_act: str):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, inner_size)
        self.fc2 = nn.Linear(inner_size, hidden_size)
        self.act = ACTIVATIONS[hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CausalSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention where position t sees positions 1..t (paper eq. 3).

    Padding needs no mask of its own: RecBole pads on the right, so every pad position comes after
    every real one and the causal mask already hides it from real positions. Pad positions' own
    outputs are garbage and are never read (loss and scoring gather real positions only).
    """

    def __init__(self, hidden_size: int, n_heads: int, attn_dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.attn_dropout = Dropout(attn_dropout)

    def _heads(
        self, x: torch.Tensor, kv: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values [B, h, T, d] of x [B, T, D]; keys and values of ``kv``
        [B, T, D] instead when given (``block_norm: query``)."""
        B, T, D = x.shape
        h, d = self.n_heads, D // self.n_heads
        if kv is None:
            q, k, v = self.qkv(x).view(B, T, 3, h, d).permute(2, 0, 3, 1, 4)  # each [B, h, T, d]
            return q, k, v
        # the same weights: the query's rows on x, the key's and value's on kv
        w, b = self.qkv.weight, self.qkv.bias  # [3D, D], [3D]
        q = F.linear(x, w[:D], b[:D]).view(B, T, h, d).transpose(1, 2)  # [B, h, T, d]
        k, v = F.linear(kv, w[D:], b[D:]).view(B, T, 2, h, d).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(
        self,
        x: torch.Tensor,
        rows: torch.Tensor | None = None,
        packed: Packed | None = None,
        kv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, T, D] -> [B, T, D]; with rows [B], only the query at position rows[b] of each
        sequence (it still attends to positions 0..rows[b]): [B, 1, D]; ``packed``: rows of
        several windows, each attending within itself only; ``kv`` [B, T, D]: the keys' and
        values' input, when it is not x."""
        B, T, D = x.shape
        q, k, v = self._heads(x, kv)
        visible = None  # None: the causal mask
        if rows is not None:
            q = select_rows(q, rows)  # [B, h, 1, d]
            visible = causal_mask(T, x.device, rows)  # [B, 1, 1, T]
        elif packed is not None:
            visible = packed.visible  # [B, 1, T, T]
        if self.training and self.attn_dropout.p > 0:
            # SDPA's own dropout draws its mask with bernoulli_; on CPU it computes the same
            # T x T weights as this explicit path, which uses the faster mask.
            weights = self._causal_softmax(q, k, visible)  # [B, h, T|1, T]
            y = self.attn_dropout(weights) @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=visible, is_causal=visible is None
            )
        return self.out(y.transpose(1, 2).reshape(B, q.size(2), D))

    @staticmethod
    def _causal_softmax(
        q: torch.Tensor, k: torch.Tensor, visible: torch.Tensor | None = None
    ) -> torch.Tensor:
        """softmax(q k^T / sqrt(d)) over keys 1..t for query t: [B, h, T, T] (or over the keys
        ``visible`` allows: [B, 1, 1, T] for one query per sequence, giving [B, h, 1, T], or
        [B, 1, T, T] for packed rows)."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # [B, h, T|1, T]
        if visible is None:
            visible = causal_mask(q.size(-2), q.device)
        return scores.masked_fill(~visible, float("-inf")).softmax(-1)

    @torch.no_grad()
    def attention_weights(
        self, x: torch.Tensor, packed: Packed | None = None, kv: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The softmax weights forward() uses (no dropout): x [B, T, D] -> [B, h, T, T];
        ``packed`` rows attend within their own windows."""
        q, k, _ = self._heads(x, kv)
        visible = None if packed is None else packed.visible
        return {"self-attention": self._causal_softmax(q, k, visible)}


class Block(nn.Module):
    """One self-attention block, pre-LN as in the paper's text (section III-C):

        g(x) = x + Dropout(g(LayerNorm(x)))   for g in (attention, feed-forward)

    RecBole's SASRec is post-LN (LayerNorm(x + Dropout(g(x)))); pre-LN is what the paper
    describes, and trains more stably with deep stacks (pmixer/SASRec.pytorch Result_Norm).
    The attention module is pluggable so LightSANs reuses this block.

    ``query_norm`` (the key ``block_norm: query``): where the paper's code puts the LayerNorms.
    Only the attention's queries are normalised (keys and values read the block's input) and
    the residual stream continues from them; the feed-forward's residual continues from its
    normalised input:

        y = LN_1(x) + Dropout(attention(queries LN_1(x), keys and values x))
        out = LN_2(y) + Dropout(feed_forward(LN_2(y)))

    Dropout stays where the pre-LN block has it; only the LayerNorms move.
    """

    def __init__(
        self,
        attention: nn.Module,
        hidden_size: int,
        inner_size: int,
        hidden_act: str,
        dropout: float,
        eps: float,
        query_norm: bool = False,
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_size, eps=eps)
        self.attn = attention
        self.ln_2 = nn.LayerNorm(hidden_size, eps=eps)
        self.mlp = FeedForward(hidden_size, inner_size, hidden_act)
        self.dropout = Dropout(dropout)
        self.query_norm = query_norm

    def forward(
        self, x: torch.Tensor, rows: torch.Tensor | None = None, packed: Packed | None = None
    ) -> torch.Tensor:
        """x [B, T, D] -> [B, T, D]; with rows [B], the output at position rows[b] of each
        sequence only, [B, 1, D] (what scoring needs from the last block); ``packed`` rows of
        several windows."""
        if self.query_norm:
            q = self.ln_1(x)
            residual = q if rows is None else select_positions(q, rows)
            x = residual + self.dropout(self.attn(q, rows, packed, kv=x))
            x = self.ln_2(x)
            return x + self.dropout(self.mlp(x))
        residual = x if rows is None else select_positions(x, rows)
        x = residual + self.dropout(self.attn(self.ln_1(x), rows, packed))
        x = x + self.dropout(self.mlp(self.ln_2(x)))
        return x

    def attention_weights(self, x: torch.Tensor, packed: Packed | None = None) -> dict:
        """The attention module's weights for this block's input x [B, T, D] (no dropout)."""
        if self.query_norm:
            return self.attn.attention_weights(self.ln_1(x), packed, kv=x)
        return self.attn.attention_weights(self.ln_1(x), packed)
