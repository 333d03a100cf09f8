"""LightSANs' attention in its two forms, timed against sequence length: the T x T quadratic form
and the linear prefix sums (``recbole_sasrec/models/low_rank_attention.py``). Picks DENSE_MAX_LENGTH.

    python -m benchmarks.lightsans_forms
    python -m benchmarks.lightsans_forms --lengths 25 50 100 200 --batch 128 --repeats 20

One attention module at the models' default sizes (hidden 64, 2 heads, 5 interests), a batch of
random inputs; for each length the median over --repeats of a training step (forward, backward,
dropout on) and of an evaluation forward (no gradient). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date

import torch

from recbole_sasrec.models import low_rank_attention
from recbole_sasrec.models.low_rank_attention import LowRankCausalAttention

from .common import machine


def median_ms(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_form(attn: LowRankCausalAttention, x: torch.Tensor, limit: int, repeats: int):
    """(train ms, eval ms) with DENSE_MAX_LENGTH = limit."""
    low_rank_attention.DENSE_MAX_LENGTH = limit
    x = x.detach().requires_grad_(True)

    def train_step():
        attn.zero_grad()
        attn(x).sum().backward()

    @torch.no_grad()
    def eval_step():
        attn(x)

    attn.train()
    train = median_ms(train_step, repeats)
    attn.eval()
    evaluation = median_ms(eval_step, repeats)
    return train, evaluation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=[10, 25, 50, 100, 150, 200, 400])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--n_heads", type=int, default=2)
    parser.add_argument("--k_interests", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    command = "python -m benchmarks.lightsans_forms " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    torch.manual_seed(0)
    positions = torch.nn.Embedding(max(args.lengths), args.hidden_size)
    attn = LowRankCausalAttention(
        args.hidden_size, args.n_heads, args.k_interests, 0.5, 1e-12, positions
    )
    rows = []
    for T in args.lengths:
        x = torch.randn(args.batch, T, args.hidden_size)
        quadratic = time_form(attn, x, T, args.repeats)
        prefix = time_form(attn, x, 0, args.repeats)
        rows.append((T, *quadratic, *prefix))
        print(f"T={T}: quadratic {quadratic[0]:.1f} ms, prefix sums {prefix[0]:.1f} ms", flush=True)

    print(f"\nMeasured {date.today()} on {machine()}.\nCommand: {command}\n")
    print(f"Batch of {args.batch} sequences; milliseconds per call (median of {args.repeats}).\n")
    print(
        "| T | quadratic: train step | prefix sums: train step | quadratic: eval | "
        "prefix sums: eval | faster for training |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for T, qt, qe, pt, pe in rows:
        faster = "quadratic" if qt < pt else "prefix sums"
        print(f"| {T} | {qt:.1f} | {pt:.1f} | {qe:.1f} | {pe:.1f} | {faster} |")


if __name__ == "__main__":
    main()
