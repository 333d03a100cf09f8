"""Full-softmax cross-entropy over the item table, in chunks of targets beyond a size, so that
peak memory stays at one chunk's logits whatever the catalogue (the same loss and gradients as
the one-shot form, tested). ``earlier`` leaves given (target, item) pairs out of the softmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
            space = Wf.new_empty(min(rows, N), Wf.size(0))  # [rows, I]: every chunk's logits
            for lo in range(0, N, rows):
                hc = h[lo : lo + rows].float()
                logits = _mask(torch.mm(hc, Wf.T, out=space[: len(hc)]), earlier, lo)
                picked = logits.gather(1, target[lo : lo + rows, None]).squeeze(1)
                lse[lo : lo + rows] = _logsumexp_(logits)
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
            space = Wf.new_empty(min(rows, N), Wf.size(0))  # [rows, I]: every chunk's logits
            product = torch.empty_like(grad_W)  # [I, D]: every chunk's share of grad_W
            for lo in range(0, N, rows):
                hc = h[lo : lo + rows].float()
                logits = _mask(torch.mm(hc, Wf.T, out=space[: len(hc)]), ctx.earlier, lo)
                # softmax [rows, I] in the logits' own memory: one chunk alive, not three
                p = logits.sub_(lse[lo : lo + rows, None]).exp_()
                p[torch.arange(len(hc), device=h.device), target[lo : lo + rows]] -= 1.0
                p.mul_(scale)
                grad_h[lo : lo + rows] = p @ Wf
                # not addmm_ (it would spare the [I, D] product): it rounds otherwise, and
                # recorded runs must repeat to the last digit
                grad_W += torch.mm(p.T, hc, out=product)
        return grad_h.to(h.dtype), grad_W.to(W.dtype), None, None, None


def _logsumexp_(logits: torch.Tensor) -> torch.Tensor:
    """log-sum-exp over dim 1 as torch.logsumexp computes it (shift by the row's max), with the
    exponentials written over ``logits``: one [rows, I] chunk alive, not two."""
    top = logits.amax(dim=1, keepdim=True)  # [rows, 1]
    top = top.masked_fill(torch.isinf(top), 0.0)  # rows of all -inf keep -inf
    return logits.sub_(top).exp_().sum(dim=1).log_().add_(top.squeeze(1))


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
