r"""Low-rank decomposed self-attention (LightSANs), causal and linear in sequence length.

Fan et al., "Lighter and Better: Low-Rank Decomposed Self-Attention Networks for Next-Item
Recommendation", SIGIR 2021. Per block, for one sequence of T positions (D hidden, k interests,
d = D / n_heads per head; q_t, k_t, v_t the query, key and value of item t):

Item-to-interest aggregation, causal. Each of the k latent interests is a softmax-weighted
average of the keys (values) *seen so far*:

    a_tj      = exp(cap(k_t . theta_j))                                 theta: [D, k]
    Ktilde_tj = sum_{i<=t} a_ij k_i  /  sum_{i<=t} a_ij                 [T, k, D]
    Vtilde_tj = the same with values v_i and weights from their own theta

Item-to-interest attention (per head; softmax over the k interests):

    item_t    = sum_j softmax_j(q_t . Ktilde_tj / sqrt(d)) Vtilde_tj

Decoupled position encoding. Positions never enter the item embeddings; a position-to-position
attention is computed from a learned position table P alone (no item information in its
weights), low-rank and causal in the same way: position keys p^K_i = W_K^P LN(P_i) are
aggregated into k positional interests with weights b_ij = exp(cap(p^K_i . phi_j)), the item
values with the same weights, and each position's query p^Q_t attends to them:

    pos_t     = sum_j softmax_j(p^Q_t . Ptilde_tj / sqrt(d)) Wtilde_tj
                Ptilde_tj = sum_{i<=t} b_ij p^K_i / sum_{i<=t} b_ij,  Wtilde_tj = same with v_i

    output_t  = W_O (item_t + pos_t)

Why it is causal and linear. Both aggregations are prefix sums (torch.cumsum over T): the
interests at position t are built from items 1..t only, exactly, also in floating point (a
prefix sum's t-th output reads inputs 1..t only). Time and memory are O(T k D) per sequence,
against O(T^2) for SASRec. RecBole pads on the right, so a pad position never lies in a real
position's prefix: padding never takes part in the aggregation, without a mask.

Short sequences: the same function in quadratic form. q_t . Ktilde_tj and sum_j p_tj Vtilde_tj
are linear in the keys and values, so both parts multiply out into a causal T x T weight matrix
on the values (``LowRankCausalAttention._dense``), O(T^2 (d + k)) per head, faster on CPU than
the prefix sums up to DENSE_MAX_LENGTH (``python -m benchmarks.lightsans_forms`` times both).
A test checks that both forms give the same outputs and gradients.

cap(s) = 30 tanh(s / 30) keeps exp() inside float32 over any length without subtracting a
maximum: a maximum would be taken over later items too and could, through underflow, let them
change earlier positions. It is the identity for |s| up to about 10 and binds only beyond.

How this differs from RecBole's LightSANs (``recbole/model/layers.py``): RecBole pools over the
whole sequence at once (future items and pads included; RecBole issue 1806), normalises the
item-to-interest attention over queries (softmax dim=-2) instead of over interests, and its
position-to-position attention is a full T x T matrix applied to the values, O(T^2). Those are
harmless or tolerable when only the last position is trained; training every position at once
needs causality, and long sequences need linearity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import Dropout, Packed, causal_mask, select_positions, select_rows

SCORE_CAP = 30.0
DENSE_MAX_LENGTH = 200  # longer sequences take the linear prefix sums (the same function)


def capped_exp(scores: torch.Tensor) -> torch.Tensor:
    """exp(30 tanh(s / 30)): aggregation weights within [e^-30, e^30]."""
    return torch.exp(SCORE_CAP * torch.tanh(scores / SCORE_CAP))


def causal_aggregate(weights: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefix sums for the interests: weights [B|1, T, k], x [B|1, T, D] ->
    numerator sum_{i<=t} w_ij x_i [B, T, k, D] and denominator sum_{i<=t} w_ij [B, T, k].

    The average is numerator / denominator; callers fold the division into cheaper tensors."""
    numerator = torch.cumsum(weights.unsqueeze(-1) * x.unsqueeze(-2), dim=1)
    return numerator, torch.cumsum(weights, dim=1)


class LowRankCausalAttention(nn.Module):
    """Item-to-interest plus position-to-position attention, both low-rank and causal."""

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        k_interests: int,
        attn_dropout: float,
        eps: float,
        positions: nn.Embedding,
    ):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.theta_k = nn.Linear(hidden_size, k_interests, bias=False)  # item interests, keys
        self.theta_v = nn.Linear(hidden_size, k_interests, bias=False)  # item interests, values
        self.positions = positions  # one table shared by every block (RecBole does the same)
        self.pos_ln = nn.LayerNorm(hidden_size, eps=eps)
        self.pos_qk = nn.Linear(hidden_size, 2 * hidden_size)
        self.phi = nn.Linear(hidden_size, k_interests, bias=False)  # positional interests
        self.dropout = Dropout(attn_dropout)
        self.out = nn.Linear(hidden_size, hidden_size)

    def _interest_probs(self, q, key_num, key_den) -> torch.Tensor:
        """Each query's softmax over its k interests: q [B|1, T, D], key_num [B|1, T, k, D],
        key_den [B|1, T, k] -> [B|1, T, k, h]."""
        T, k, D = key_num.shape[1:]
        h, d = self.n_heads, D // self.n_heads
        q = q.reshape(q.size(0), T, 1, h, d)
        keys = key_num.reshape(key_num.size(0), T, k, h, d)
        scores = (q * keys).sum(-1) / key_den.unsqueeze(-1) / math.sqrt(d)  # [B, T, k, h]
        return scores.softmax(dim=2)

    def _attend(self, q, key_num, key_den, value_num, value_den) -> torch.Tensor:
        """Attention of every query over its k interests.

        q [B|1, T, D]; key_num, value_num [B, T, k, D]; key_den, value_den [B, T, k] -> [B, T, D]
        """
        B, T, k, D = value_num.shape
        h, d = self.n_heads, D // self.n_heads
        probs = self.dropout(self._interest_probs(q, key_num, key_den))  # [B, T, k, h]
        probs = probs / value_den.unsqueeze(-1)  # fold the values' average into the weights
        out = (probs.unsqueeze(-1) * value_num.reshape(B, T, k, h, d)).sum(2)  # [B, T, h, d]
        return out.reshape(B, T, D)

    def _projections(self, x: torch.Tensor, positions: torch.Tensor | None = None):
        """q, k, v [B, T, D]; positional queries and keys [1, T, D] ([B, T, D] for packed rows'
        ``positions`` [B, T]); the aggregation weights of item keys, item values [B, T, k] and
        positions [1|B, T, k]. The linear maps run in the caller's precision (autocast); the
        weights, up to e^30, and everything computed from them in float32, which float16 (at
        most 65504) cannot hold."""
        T, D = x.shape[1:]
        q, k, v = self.qkv(x).split(D, dim=-1)
        if positions is None:
            p = self.pos_ln(self.positions.weight[:T]).unsqueeze(0)  # [1, T, D]
        else:
            p = self.pos_ln(self.positions(positions))  # [B, T, D]
        pos_q, pos_k = self.pos_qk(p).split(D, dim=-1)
        scores = self.theta_k(k), self.theta_v(v), self.phi(pos_k)
        q, k, v, pos_q, pos_k = (t.float() for t in (q, k, v, pos_q, pos_k))
        with torch.autocast(x.device.type, enabled=False):
            w_k, w_v, b = (capped_exp(s.float()) for s in scores)
        return q, k, v, pos_q, pos_k, w_k, w_v, b

    def forward(
        self, x: torch.Tensor, rows: torch.Tensor | None = None, packed: Packed | None = None
    ) -> torch.Tensor:
        """x [B, T, D] -> [B, T, D]; with rows [B], only the query at position rows[b] of each
        sequence: [B, 1, D]. Packed rows (several windows a row) take the quadratic form at any
        length: its T x T weights keep each window to itself, where prefix sums would run on
        across windows."""
        if x.size(1) <= DENSE_MAX_LENGTH or (packed is not None and packed.visible is not None):
            return self._forward_dense(x, rows, packed)
        if rows is not None:
            return select_positions(self.forward(x, packed=packed), rows)
        q, k, v, pos_q, pos_k, w_k, w_v, b = self._projections(x, packed and packed.positions)
        with torch.autocast(x.device.type, enabled=False):  # float32 (see _projections)
            item = self._attend(q, *causal_aggregate(w_k, k), *causal_aggregate(w_v, v))
            pos = self._attend(pos_q, *causal_aggregate(b, pos_k), *causal_aggregate(b, v))
        return self.out(item + pos)

    def _forward_dense(
        self, x: torch.Tensor, rows: torch.Tensor | None, packed: Packed | None = None
    ) -> torch.Tensor:
        """forward() multiplied out into T x T weights: the same function, faster for short T."""
        B, T, D = x.shape
        _, item, pos, v = self._dense_parts(x, rows, dropout=True, packed=packed)
        with torch.autocast(x.device.type, enabled=False):  # float32 (see _projections)
            y = (item + pos) @ v  # [B, h, T|1, d]: both parts are linear in the values
        return self.out(y.transpose(1, 2).reshape(B, y.size(2), D))

    def _dense_parts(
        self,
        x: torch.Tensor,
        rows: torch.Tensor | None,
        dropout: bool,
        packed: Packed | None = None,
    ):
        """Item-to-interest probabilities [B, h, T|1, k], item-to-item [B, h, T|1, T] and
        position-to-position [B|1, h, T|1, T] weights, and the values [B, h, T, d]."""
        positions, visible = (None, None) if packed is None else (packed.positions, packed.visible)
        q, k, v, pos_q, pos_k, w_k, w_v, b = self._projections(x, positions)
        with torch.autocast(x.device.type, enabled=False):  # float32 (see _projections)
            probs, item = self._dense(
                self._heads(q), self._heads(k), w_k, w_v, rows, dropout, visible
            )
            _, pos = self._dense(
                self._heads(pos_q), self._heads(pos_k), b, b, rows, dropout, visible
            )
        return probs, item, pos, self._heads(v)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B|1, T, D] -> [B|1, h, T, d]"""
        return t.view(t.size(0), t.size(1), self.n_heads, -1).transpose(1, 2)

    def _dense(
        self, q, k, w, u, rows=None, dropout=True, visible=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k [B|1, h, T, d]; key and value aggregation weights w, u [B|1, T, k] ->
        each query's probabilities over the k interests [B|1, h, T, k], and the weight
        A [B|1, h, T, T] it effectively puts on each earlier value:

            scores_tj = sum_{i<=t} w_ij (q_t . k_i) / sum_{i<=t} w_ij / sqrt(d)
                      = ((q k^T, zero above the diagonal) @ w)_tj / cumsum(w)_tj / sqrt(d)
            A_ti      = sum_j softmax_j(scores_t) u_ij / sum_{i'<=t} u_i'j      (i <= t; else 0)

        This is the prefix-sum aggregation multiplied out: q . Ktilde_tj and sum_j p_tj Vtilde_tj
        are linear in the keys and values. O(T^2 (d + k)) per head instead of O(T k D), and
        causal for the same reason (entries above the diagonal are exact zeros).

        With rows [B], only the query t = rows[b] of each sequence: [B, h, 1, k], [B, h, 1, T].
        With ``visible`` [B, 1, T, T] (packed rows) the sums over i <= t run over the keys it
        allows, those of the query's own window."""
        T, d = k.size(-2), k.size(-1)
        if visible is None:
            w_sum, u_sum = torch.cumsum(w, dim=1).unsqueeze(1), torch.cumsum(u, dim=1).unsqueeze(1)
            visible = causal_mask(T, k.device, rows)  # [T, T], or [B, 1, 1, T] with rows
        else:  # the sums over each query's own window: [B, 1, T, k]
            mask = visible.to(w.dtype)
            w_sum, u_sum = mask @ w.unsqueeze(1), mask @ u.unsqueeze(1)
        if rows is not None:
            q, w_sum, u_sum = (select_rows(t, rows) for t in (q, w_sum, u_sum))
        scores = torch.where(visible, q @ k.transpose(-2, -1), 0.0) @ w.unsqueeze(1)
        scores = scores / (w_sum * math.sqrt(d))  # [B, h, T|1, k]
        probs = scores.softmax(dim=-1)
        dropped = self.dropout(probs) if dropout else probs
        A = (dropped / u_sum) @ u.unsqueeze(1).transpose(-2, -1)  # [B, h, T|1, T]
        return probs, torch.where(visible, A, 0.0)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, packed=None) -> dict[str, torch.Tensor]:
        """What forward() computes, as weights (no dropout), for x [B, T, D]:

        item-to-interest      [B, h, T, k]  each position's softmax over the k interests
        item-to-item          [B, h, T, T]  the weight item_t effectively puts on value v_i
        position-to-position  [B, h, T, T]  the same for the positional part
        The two T x T maps are zero above the diagonal and their rows sum to 1.
        """
        probs, item, pos, _ = self._dense_parts(x, None, dropout=False, packed=packed)
        return {
            "item-to-interest": probs,
            "item-to-item": item,
            "position-to-position": pos.expand(x.size(0), -1, -1, -1),
        }
