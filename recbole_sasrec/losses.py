"""Training losses over the shared item embedding, for small and large catalogues.

With h the state at a position, e_j the embedding of item j and s_j = <h, e_j> its score:

* ``CE``: softmax cross-entropy over every item (RecBole's default; Klenitskiy & Vasilev,
  RecSys 2023, "SASRec+"). Its logits are [targets, items]; beyond ``ce_max_logits`` elements
  they are computed in chunks of targets, forward and backward, so that peak memory stays at
  one chunk's logits whatever the catalogue (``ChunkedCrossEntropy``: the same loss and
  gradients as the one-shot form, tested).
* ``BPR``: -log sigmoid(s_pos - s_neg), one uniform negative per target.
* ``BCE``: -log sigmoid(s_pos) - log(1 - sigmoid(s_neg)), one uniform negative per target (the
  SASRec paper's loss).
* ``SSM``: sampled softmax over the target and k negatives shared by the batch, every logit
  corrected by -log(k Q(j)), Q the sampling distribution (log-Q correction: Bengio & Senecal
  2008; Yi et al., RecSys 2019), and a negative equal to the target masked out. Negatives
  (``negative_sampler``): ``uniform`` over items, ``popularity`` (in proportion to training
  interactions), or ``in_batch`` (drawn from the batch's own targets; Q is then the item's
  training popularity, which the batch's frequency estimates).
* ``gBCE``: generalised BCE (Petrov & Macdonald, RecSys 2023, "gSASRec") with k uniform
  negatives per target, as the paper draws them: -log sigmoid(s_pos)^beta - sum_i log(1 -
  sigmoid(s_neg_i)), beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (items - 1) the
  sampling rate and t = ``gbce_t`` the calibration (t = 0: plain BCE with k negatives; t = 1:
  fully calibrated scores).

SSM's k = ``loss_negatives`` negatives are drawn once per batch and shared by all its targets:
each target still sees k draws from Q, and the scores are one [targets, k] matrix product
instead of a [targets, k, D] gather. gBCE's are drawn per target: shared negatives, pushed down
by every target of the batch at once, kept gBCE from learning at all on the tests' small
catalogue (hit@10 at chance), where SSM's softmax learned with the same negatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSSES = ("CE", "BPR", "BCE", "SSM", "gBCE")
SAMPLED = ("SSM", "gBCE")  # k shared negatives drawn in the model
PAIRWISE = ("BPR", "BCE")  # one negative per target
NEGATIVE_SAMPLERS = ("uniform", "popularity", "in_batch")


class ChunkedCrossEntropy(torch.autograd.Function):
    """Mean softmax cross-entropy of h [N, D] over items W [I, D], targets [N], computed ``rows``
    targets at a time: the logits of one chunk are alive at once, in forward and in backward
    (which recomputes them), never the whole [N, I]. In float32 whatever the inputs' precision
    (autocast's float16 would round the log-sum-exp)."""

    @staticmethod
    def forward(ctx, h, W, target, rows: int, earlier=None):
        N = h.size(0)
        ctx.earlier = earlier
        lse = torch.empty(N, dtype=torch.float32, device=h.device)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            Wf = W.float()
            for lo in range(0, N, rows):
                logits = _mask(h[lo : lo + rows].float() @ Wf.T, earlier, lo)  # [rows, I]
                lse[lo : lo + rows] = torch.logsumexp(logits, dim=1)
                picked = logits.gather(1, target[lo : lo + rows, None]).squeeze(1)
                total += (lse[lo : lo + rows] - picked).sum()
        ctx.save_for_backward(h, W, target, lse)
        ctx.rows = rows
        return total / N

    @staticmethod
    def backward(ctx, grad):
        h, W, target, lse = ctx.saved_tensors
        N, rows = h.size(0), ctx.rows
        grad_h = torch.empty(h.shape, dtype=torch.float32, device=h.device)
        grad_W = torch.zeros(W.shape, dtype=torch.float32, device=W.device)
        scale = grad.float() / N
        with torch.autocast(h.device.type, enabled=False):
            Wf = W.float()
            for lo in range(0, N, rows):
                hc = h[lo : lo + rows].float()
                logits = _mask(hc @ Wf.T, ctx.earlier, lo)
                p = torch.exp(logits - lse[lo : lo + rows, None])  # softmax [rows, I]
                p[torch.arange(len(hc), device=h.device), target[lo : lo + rows]] -= 1.0
                p = p * scale
                grad_h[lo : lo + rows] = p @ Wf
                grad_W += p.T @ hc
        return grad_h.to(h.dtype), grad_W.to(W.dtype), None, None, None


def _mask(logits: torch.Tensor, earlier, lo: int) -> torch.Tensor:
    """-inf at the pairs of ``earlier`` (sorted by target) whose target is in this chunk."""
    if earlier is None:
        return logits
    n, item = earlier
    a, b = torch.searchsorted(n, torch.tensor([lo, lo + logits.size(0)], device=n.device))
    logits[n[a:b] - lo, item[a:b]] = float("-inf")
    return logits


def cross_entropy(
    h: torch.Tensor, W: torch.Tensor, target: torch.Tensor, max_logits: int, earlier=None
):
    """Full-softmax CE; in chunks of targets when N x I exceeds ``max_logits``. ``earlier``:
    pairs (target index [P], item [P]) left out of that target's softmax (never its target)."""
    N, items = h.size(0), W.size(0)
    if earlier is not None:
        n, item = earlier
        keep = item != target[n]
        earlier = n[keep], item[keep]
    if N * items <= max_logits:
        logits = h @ W.T
        if earlier is not None:
            logits = logits.index_put(earlier, torch.tensor(float("-inf"), dtype=logits.dtype))
        return F.cross_entropy(logits, target)
    return ChunkedCrossEntropy.apply(h, W, target, max(1, max_logits // items), earlier)


def sampled_softmax(
    h: torch.Tensor,
    pos_emb: torch.Tensor,
    neg_emb: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    log_q_pos: torch.Tensor,
    log_q_neg: torch.Tensor,
) -> torch.Tensor:
    """Sampled softmax with log-Q correction: h [N, D], the targets' embeddings [N, D], the k
    shared negatives' [k, D], their ids pos [N] and neg [k], and log(k Q) of each [N], [k]."""
    pos_logit = (h * pos_emb).sum(-1) - log_q_pos  # [N]
    neg_logit = h @ neg_emb.T - log_q_neg  # [N, k]
    neg_logit = neg_logit.masked_fill(neg[None, :] == pos[:, None], float("-inf"))  # hits
    logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)  # [N, 1 + k]
    return (torch.logsumexp(logits, dim=1) - pos_logit).mean()


def gbce(
    h: torch.Tensor,
    pos_emb: torch.Tensor,
    neg_emb: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    n_items: int,
    t: float,
) -> torch.Tensor:
    """gSASRec's gBCE: h [N, D], targets' embeddings [N, D], each target's k uniform negatives'
    [N, k, D], ids pos [N] and neg [N, k]; ``n_items`` items with the pad, t the calibration."""
    k = neg.size(1)
    alpha = k / (n_items - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    pos_score = (h * pos_emb).sum(-1)  # [N]
    neg_score = torch.einsum("nd,nkd->nk", h, neg_emb)  # [N, k]
    not_target = (neg != pos[:, None]).to(h.dtype)  # a negative equal to its target
    negative = (F.logsigmoid(-neg_score) * not_target).sum(-1)
    return -(beta * F.logsigmoid(pos_score) + negative).mean()


def log_expected_count(probability: torch.Tensor, k: int) -> torch.Tensor:
    """log(k Q(j)) for a sampling probability Q(j) > 0."""
    return torch.log(probability * k)


def uniform_log_q(n_items: int, k: int) -> float:
    """log(k / (n_items - 1)): uniform over the real items 1..n_items-1."""
    return math.log(k / (n_items - 1))
