"""Batch recommendations: the top-k of every user of a data set, written to Parquet.

    python -m benchmarks.recommend_batch                      # ml-100k and a 100k-user log
    python -m benchmarks.recommend_batch --users 100000 --items 20000

For each data set, SASRec is trained for one epoch (the model's quality does not change the
cost), then ``Recommender(model_file).write_recommendations(out, k=10)`` is timed: loading the
checkpoint and its data set, one encoding per user, the user's seen items excluded, written in
batches. The synthetic log is ``benchmarks.synthetic``'s Amazon shape (long-tailed histories,
Zipf-like items). Writes ``recommend_batch.md`` under ``--out`` (default: a new folder
results/runs/recommend_batch-<time>/; an existing file only with ``--replace``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from .common import add_output_options, machine, output_folder, peak_rss_mib
from .synthetic import make

DEFAULT_DATA = Path("/tmp/recbole_sasrec_synthetic")


def measure(dataset: str, data_path: str | None, k: int, batch_size: int) -> dict:
    from recbole_sasrec import Recommender, run_recbole

    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"epochs": 1, "show_progress": False, "state": "WARNING", "checkpoint_dir": tmp}
        cfg["preset"] = "none"  # the defaults its records ran with, whatever the log's shape
        if data_path:
            cfg["data_path"] = data_path
        result = run_recbole(model="SASRec", dataset=dataset, config_dict=cfg)
        out = Path(tmp) / "top.parquet"
        start = time.perf_counter()
        rec = Recommender(result["model_file"])
        loaded = time.perf_counter()
        rec.write_recommendations(out, k=k, batch_size=batch_size)
        end = time.perf_counter()
        frame = pd.read_parquet(out)
    users = frame["user"].nunique()
    return {
        "dataset": dataset,
        "users": int(users),
        "items": int(rec.model.n_items - 1),
        "rows": len(frame),
        "load_s": loaded - start,
        "write_s": end - loaded,
        "s_per_1k_users": 1000 * (end - loaded) / users,
        "peak_mib": peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    add_output_options(parser, "folder for recommend_batch.md")
    args = parser.parse_args(argv)
    out = output_folder("recommend_batch", args.out, ["recommend_batch.md"], args.replace)
    command = "python -m benchmarks.recommend_batch " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    synthetic = make(Path(args.data), "amazon", users=args.users, items=args.items)
    rows = [
        measure("ml-100k", None, args.k, args.batch_size),
        measure(synthetic, args.data, args.k, args.batch_size),
    ]
    lines = [
        f"Measured {date.today()} on {machine()}.",
        f"Command: {command}",
        "",
        f"Top-{args.k} of every user, seen items excluded, to Parquet in batches of "
        f"{args.batch_size} users (SASRec trained one epoch).",
        "",
        "| data | users | items | rows written | load s | write s | s / 1k users | peak MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['users']:,} | {r['items']:,} | {r['rows']:,} | "
            f"{r['load_s']:.1f} | {r['write_s']:.1f} | {r['s_per_1k_users']:.3f} | "
            f"{r['peak_mib']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "recommend_batch.md").write_text(text)
    print(text + f"wrote {out / 'recommend_batch.md'}")


if __name__ == "__main__":
    main()
