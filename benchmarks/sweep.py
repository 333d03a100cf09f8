"""Early-stopped runs of one model over a grid of settings and seeds: the table the defaults of
``properties/*.yaml`` are chosen from (by valid NDCG@10, never by test).

    python -m benchmarks.sweep --grid learning_rate=0.001,0.002,0.004 --seeds 2020 1 2
    python -m benchmarks.sweep --users 300 --grid learning_rate=0.001,0.004 --seeds 2020 1 2
    python -m benchmarks.sweep --model LightSANs --grid window_context=0,12,25 --set epochs=100
    python -m benchmarks.sweep --one_at_a_time --grid "adam_betas=[0.9,0.999],[0.9,0.98]" \
        embedding_scale=False,True weight_init=normal,xavier

``--one_at_a_time``: the first value of every key is the base, and each other point changes one
key from it (an ablation: 1 + the other values' count, not the product). Values are split at
commas outside brackets, so a list is one value.

Each run is one ``benchmarks.compare`` worker (its own process, one at a time): the model's
defaults, the grid point, the seed, trained until RecBole's early stopping fires. Prints a
markdown table, one row per grid point, every metric as mean +- sample standard deviation over
the seeds: best valid NDCG@10, test NDCG@10 / Hit@10 / MRR@10 (full ranking), uni100 NDCG@10,
epochs, seconds per epoch and seconds to stop. Runs are appended to ``--record`` as they finish
and reused when the same command runs again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from datetime import date
from pathlib import Path

from .common import machine, mean_sd, run_worker, write_first_users


def split_values(text: str) -> list[str]:
    """'[0.9,0.999],[0.9,0.98]' -> ['[0.9,0.999]', '[0.9,0.98]']: commas inside brackets or
    braces belong to the value."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "[{(") - (char in "]})")
        if char == "," and depth == 0:
            values.append(text[start:i])
            start = i + 1
    return [*values, text[start:]]


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """['learning_rate=0.001,0.004'] -> {'learning_rate': ['0.001', '0.004']}."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values or "" in split_values(values):
            sys.exit(f"--grid {item!r}: expected KEY=V1,V2,...")
        grid[key] = split_values(values)
    return grid


def grid_points(grid: dict[str, list[str]], one_at_a_time: bool = False) -> list[tuple]:
    """Every combination of the grid's values, or (``one_at_a_time``) the base (every key's
    first value) and then each other value of each key with the rest at the base."""
    if not one_at_a_time:
        return list(itertools.product(*grid.values()))
    base = tuple(values[0] for values in grid.values())
    points = [base]
    for i, values in enumerate(grid.values()):
        points += [base[:i] + (value,) + base[i + 1 :] for value in values[1:]]
    return points


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None, help="for a data set of your own")
    parser.add_argument("--users", type=int, help="ml-100k's first USERS users only")
    parser.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2,...")
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed keys")
    parser.add_argument("--config_files", nargs="*", default=[], help="yaml files, every run")
    parser.add_argument(
        "--epochs", type=int, default=None, help="train this many epochs (default: early stopping)"
    )
    parser.add_argument("--max_epochs", type=int, default=300, help="cap on early-stopped runs")
    parser.add_argument("--record", default=None, help="JSON lines file of finished runs")
    parser.add_argument(
        "--one_at_a_time", action="store_true", help="the base and one key changed at a time"
    )
    args = parser.parse_args(argv)
    command = "python -m benchmarks.sweep " + " ".join(sys.argv[1:] if argv is None else argv)

    grid = parse_grid(args.grid)
    sets = list(args.set)
    if args.data_path:
        sets.append(f"data_path={args.data_path}")
    if args.users:
        root = Path(tempfile.gettempdir()) / "recbole_sasrec_compare"
        args.dataset = write_first_users(root, args.users)
        sets.append(f"data_path={root}")
    record = Path(args.record) if args.record else None
    # a run is reused only under the same model, data, fixed keys, files and stopping rule
    context = json.dumps(
        [args.model, args.dataset, sorted(sets), args.config_files, args.epochs, args.max_epochs]
    )
    done = {}
    if record is not None and record.exists():
        for line in record.read_text().splitlines():
            r = json.loads(line)
            if r.get("context") == context:
                done[(r["point"], r["seed"])] = r

    rows = []
    for point in grid_points(grid, args.one_at_a_time):
        point_sets = [f"{k}={v}" for k, v in zip(grid, point, strict=True)]
        runs = []
        for seed in args.seeds:
            key = (" ".join(point_sets), seed)
            if key not in done:
                stop = ["--converge", f"--max_epochs={args.max_epochs}"]
                if args.epochs is not None:
                    stop = ["--epochs", str(args.epochs)]
                flags = [*stop, "--dataset", args.dataset, "--set", *sets, *point_sets]
                flags += ["--config_files", *args.config_files] if args.config_files else []
                r = run_worker("benchmarks.compare", flags + ["--worker", args.model, str(seed)])
                r["point"], r["context"] = key[0], context
                done[key] = r
                if record is not None:
                    with open(record, "a") as f:
                        f.write(json.dumps(r) + "\n")
            r = done[key]
            print(
                f"{key[0]} seed={seed}: valid {r['best_valid']['ndcg@10']:.4f}, "
                f"test {r['test']['ndcg@10']:.4f}, {r['epochs']} epochs",
                flush=True,
            )
            runs.append(r)
        rows.append((point, runs))

    lines = [
        f"| {' | '.join(grid)} | best valid NDCG@10 | test NDCG@10 | test Hit@10 | test MRR@10 "
        f"| uni100 NDCG@10 | epochs | s / epoch | s to stop |",
        "| " + " | ".join(["---"] * len(grid)) + " |" + " ---: |" * 8,
    ]
    for point, runs in rows:
        cells = [
            mean_sd([r["best_valid"]["ndcg@10"] for r in runs]),
            *(mean_sd([r["test"][m] for r in runs]) for m in ("ndcg@10", "hit@10", "mrr@10")),
            mean_sd([r["test_uni100"]["ndcg@10"] for r in runs]),
            mean_sd([r["epochs"] for r in runs], 1),
            mean_sd([r["s_per_epoch"] for r in runs], 2),
            mean_sd([r["fit_seconds"] for r in runs], 0),
        ]
        lines.append(f"| {' | '.join(point)} | " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, args.seeds))
    print(f"\nMeasured {date.today()} on {machine()}.\nCommand: {command}\n")
    print(f"{args.model}, {args.dataset}, seeds {seeds} (mean +- sd (n)):\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
