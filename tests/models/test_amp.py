"""Mixed precision: finite, close to float32 and causal under autocast; RecBole's enable_amp end to end."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import build

from recbole_sasrec import run_recbole

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


# Relative differences from float32 allowed under autocast: about 2-3x the largest measured
# over 10 seeds x 3 batches of the tiny data, at initialisation and after 20 Adam steps
# (2026-12-05, 1 thread; fp16 / bf16): loss 3.8e-5 / 2.2e-4; gradient norm 7e-4 / 5.3e-3,
# 9.1e-3 / 4.9e-2 at the cap; outputs' mean 8e-4 / 7e-3.
TOLERANCE = {
    torch.float16: {"loss": 1e-4, "grad": 2e-3, "grad at the cap": 2e-2, "output": 2e-3},
    torch.bfloat16: {"loss": 5e-4, "grad": 1.5e-2, "grad at the cap": 1e-1, "output": 1.5e-2},
}


def aggregation_logits(net, batch) -> float:
    """The largest |logit| of LightSANs' aggregation maps (theta_k, theta_v, phi) in a forward."""
    seen = []
    hooks = [
        layer.register_forward_hook(lambda m, i, out: seen.append(out.abs().max().item()))
        for block in net.blocks
        for layer in (block.attn.theta_k, block.attn.theta_v, block.attn.phi)
    ]
    with torch.no_grad():
        net.calculate_loss(batch)
    for hook in hooks:
        hook.remove()
    return max(seen)


def at_the_cap(net, batch) -> None:
    """Scale LightSANs' aggregation maps until their logits are far past the cap (30): the
    weights become e^30, which float16 (at most 65504) cannot hold."""
    with torch.no_grad():
        factor = 100.0 / aggregation_logits(net, batch)
        for block in net.blocks:
            for layer in (block.attn.theta_k, block.attn.theta_v, block.attn.phi):
                layer.weight.mul_(factor)


def cases():
    for name in ("SASRec", "LightSANs", "LightSANs-at-the-cap"):
        for dtype in (torch.float16, torch.bfloat16):
            yield pytest.param(name, dtype, id=f"{name}-{str(dtype).split('.')[1]}")


@pytest.mark.parametrize(("name", "dtype"), cases())
def test_autocast_is_finite_close_to_float32_and_causal(tiny, name, dtype):
    model = name.split("-")[0]
    _, net, train, *_ = build(model, "cycle", dict(tiny, **NO_DROPOUT))
    batch = next(iter(train))
    if name.endswith("cap"):
        at_the_cap(net, batch)
        assert aggregation_logits(net, batch) > 60  # well past the cap of 30
    params = [p for p in net.parameters() if p.requires_grad]
    reference = net.calculate_loss(batch)
    ref_grads = torch.autograd.grad(reference, params, allow_unused=True)
    with torch.autocast("cpu", dtype=dtype):
        loss = net.calculate_loss(batch)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert math.isfinite(loss.item())
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    tol = TOLERANCE[dtype]
    assert abs(loss.item() - reference.item()) <= tol["loss"] * abs(reference.item())
    # all gradients together: a parameter whose gradients are ~1e-9 underflows to 0 in float16
    # (what a GradScaler is for), so per-parameter errors say little
    flat = torch.cat([g.float().reshape(-1) for g in grads if g is not None])
    ref_flat = torch.cat(
        [r.reshape(-1) for g, r in zip(grads, ref_grads, strict=True) if g is not None]
    )
    grad_tol = tol["grad at the cap" if name.endswith("cap") else "grad"]
    assert (flat - ref_flat).norm() <= grad_tol * ref_flat.norm()
    net.eval()
    seq, lengths = batch["item_id_list"][:8], batch["item_length"][:8]
    with torch.no_grad():
        full = net(seq, lengths)
        with torch.autocast("cpu", dtype=dtype):
            half = net(seq, lengths).float()
            # causal: a later item changes no earlier position
            T = int(lengths.max())
            states = net.encode(seq[:, :T]).float()
            changed = seq[:, :T].clone()
            changed[:, -1] = changed[:, -1] % (net.n_items - 1) + 1
            states_changed = net.encode(changed).float()
    scale = full.abs().mean()
    assert torch.isfinite(half).all()
    assert (half - full).abs().mean() <= tol["output"] * scale
    torch.testing.assert_close(states_changed[:, : T - 1], states[:, : T - 1], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
def test_recbole_enable_amp_trains_end_to_end(tiny, name):
    cfg = dict(tiny, enable_amp=True, enable_scaler=True, epochs=8)
    result = run_recbole(name, "cycle", config_dict=cfg, saved=False)
    # measured with 8 epochs: Hit@10 1.0 and NDCG@10 >= 0.95 over seeds 2020, 1-4
    test = result["test_result"]
    assert test["hit@10"] == 1.0 and test["ndcg@10"] >= 0.9, test
