"""Early-stopped runs of one model over a grid of settings and seeds: the table the defaults of
``properties/*.yaml`` are chosen from (by valid NDCG@10, never by test).

    python -m benchmarks.sweep --users 300 --grid learning_rate=0.001,0.002,0.004 --seeds 2020 1 2
    python -m benchmarks.sweep --grid learning_rate=0.001,0.002,0.004 --seeds 2020 1
    python -m benchmarks.sweep --model LightSANs --grid learning_rate=0.001,0.004 train_batch_size=64,128

Each run is one ``benchmarks.compare --converge`` worker (its own process, one at a time): the
model's defaults, the grid point, the seed, trained until RecBole's early stopping fires (10
evaluations without a better valid NDCG@10). Prints a markdown table, one row per grid point:
best valid NDCG@10 and test NDCG@10 of each seed, their means, epochs and seconds.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

from .compare import machine, train_in_subprocess, write_first_users


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """['learning_rate=0.001,0.004'] -> {'learning_rate': ['0.001', '0.004']}."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            sys.exit(f"--grid {item!r}: expected KEY=V1,V2,...")
        grid[key] = values.split(",")
    return grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--users", type=int, help="ml-100k's first USERS users only")
    parser.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2,...")
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed keys")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.sweep " + " ".join(sys.argv[1:] if argv is None else argv)

    grid = parse_grid(args.grid)
    sets = list(args.set)
    if args.users:
        root = Path(tempfile.mkdtemp(prefix="sweep-"))
        args.dataset = write_first_users(root, args.users)
        sets.append(f"data_path={root}")

    seeds = " / ".join(str(s) for s in args.seeds)
    lines = [
        f"| {' | '.join(grid)} | best valid NDCG@10 (seed {seeds}) | mean | "
        f"test NDCG@10 (seed {seeds}) | mean | epochs | s to stop |",
        "| " + " | ".join(["---"] * len(grid)) + " | --- | ---: | --- | ---: | --- | --- |",
    ]
    for point in itertools.product(*grid.values()):
        runs = []
        for seed in args.seeds:
            point_sets = [f"{k}={v}" for k, v in zip(grid, point, strict=True)]
            r = train_in_subprocess(
                args.model, args.dataset, ["--converge"], sets + point_sets + [f"seed={seed}"]
            )
            valid, test = max(n for _, n in r["curve"]), r["test"]["ndcg@10"]
            print(f"{' '.join(point_sets)} seed={seed}: valid {valid:.4f}, test {test:.4f}")
            runs.append((valid, test, r["epochs"], r["fit_seconds"]))
        valid, test, epochs, seconds = zip(*runs, strict=True)
        lines.append(
            f"| {' | '.join(point)} | {' / '.join(f'{v:.4f}' for v in valid)} | "
            f"{statistics.mean(valid):.4f} | {' / '.join(f'{t:.4f}' for t in test)} | "
            f"{statistics.mean(test):.4f} | {' / '.join(map(str, epochs))} | "
            f"{' / '.join(f'{s:.0f}' for s in seconds)} |"
        )
    print(f"\nMeasured {date.today()} on {machine()}.\nCommand: {command}\n")
    print(f"{args.model}, {args.dataset}:\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
