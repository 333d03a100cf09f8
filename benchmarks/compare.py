"""Train models side by side in one process on the same data, split, seed and hyperparameters.

    python -m benchmarks.compare --dataset ml-100k --epochs 5                  # fixed epochs
    python -m benchmarks.compare --dataset ml-100k --converge --models SASRec  # early stopping

For each model: seconds per training epoch, seconds per evaluation, valid NDCG@10 after every
epoch, and test NDCG@10 / Hit@10 / MRR@10 of the best checkpoint. Prints a markdown table and
writes it, with a plot of valid NDCG@10 against wall-clock training seconds, under --out.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed

from recbole_sasrec import Config, create_dataset, get_model
from recbole_sasrec.trainer import get_trainer


def timed_trainer(base: type) -> type:
    """The model's trainer, recording how long each training and evaluation pass takes."""

    class Timed(base):
        def __init__(self, config, model):
            super().__init__(config, model)
            self.train_seconds, self.eval_seconds, self.curve = [], [], []

        def _train_epoch(self, *args, **kwargs):
            start = time.perf_counter()
            loss = super()._train_epoch(*args, **kwargs)
            self.train_seconds.append(time.perf_counter() - start)
            return loss

        def _valid_epoch(self, *args, **kwargs):
            start = time.perf_counter()
            score, result = super()._valid_epoch(*args, **kwargs)
            self.eval_seconds.append(time.perf_counter() - start)
            self.curve.append((sum(self.train_seconds), result["ndcg@10"]))
            return score, result

    return Timed


def run_one(name: str, dataset: str, config_dict: dict) -> dict:
    config = Config(model=name, dataset=dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    data = create_dataset(config)
    train, valid, test = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
    start = time.perf_counter()
    trainer.fit(train, valid, saved=True, show_progress=config["show_progress"])
    fit_seconds = time.perf_counter() - start
    test_result = trainer.evaluate(test, load_best_model=True)
    epochs = len(trainer.train_seconds)
    return {
        "model": name,
        "epochs": epochs,
        "train_rows": len(train._dataset),
        "s_per_epoch": sum(trainer.train_seconds) / epochs,
        "s_per_eval": sum(trainer.eval_seconds) / max(1, len(trainer.eval_seconds)),
        "fit_seconds": fit_seconds,
        "curve": trainer.curve,
        "test": dict(test_result),
    }


def parse_value(text: str):
    """'32' -> 32, '0.2' -> 0.2, "{'LS': 'valid_and_test'}" -> dict, 'gelu' -> 'gelu'."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def table(rows: list[dict]) -> str:
    lines = [
        "| model | epochs | s / train epoch | s / eval | test NDCG@10 | test Hit@10 | test MRR@10 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['model']} | {r['epochs']} | {r['s_per_epoch']:.1f} | {r['s_per_eval']:.2f} | "
            f"{t['ndcg@10']:.4f} | {t['hit@10']:.4f} | {t['mrr@10']:.4f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
        ax.plot(xs, ys, marker="o", markersize=3, label=r["model"])
    ax.set_xscale("log")
    ax.set_xlabel("training seconds (log scale)")
    ax.set_ylabel("valid NDCG@10")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["SASRec", "RecBole.SASRec"])
    parser.add_argument("--epochs", type=int, default=5, help="fixed number of epochs")
    parser.add_argument("--converge", action="store_true", help="train until early stopping")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every model, e.g. --set hidden_size=32",
    )
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.compare " + " ".join(sys.argv[1:] if argv is None else argv)

    config_dict = {
        "metrics": ["NDCG", "Hit", "MRR"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "show_progress": False,
        "use_gpu": args.device == "cuda",
        "gpu_id": "0" if args.device == "cuda" else "",
    }
    if args.converge:
        config_dict.update(epochs=300, stopping_step=10)
    else:
        config_dict.update(epochs=args.epochs, stopping_step=args.epochs + 1)
    for item in args.set:
        key, value = item.split("=", 1)
        config_dict[key] = parse_value(value)
    sys.argv = sys.argv[:1]  # RecBole reads sys.argv as config: keep our options out of it

    rows = []
    for name in args.models:
        rows.append(run_one(name, args.dataset, config_dict))
        print(table(rows[-1:]), flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{args.dataset}-{'converged' if args.converge else f'{args.epochs}ep'}"
    header = f"Measured {date.today()} on {machine()}.\nCommand: {command}\n"
    text = header + "\n" + table(rows) + "\n"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / f"{stem}.png")
    print("\n" + text)
    print(f"wrote {out / stem}.md, .json, .png")


if __name__ == "__main__":
    main()
