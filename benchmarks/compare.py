"""Train models side by side on the same data, split, seed and hyperparameters.

    python -m benchmarks.compare --dataset ml-100k --epochs 3                 # fixed epochs, all
    python -m benchmarks.compare --dataset ml-100k --converge --models SASRec  # early stopping
    python -m benchmarks.compare --epochs 5 --ours_converge \\
        --models SASRec RecBole.SASRec LightSANs RecBole.LightSANs               # time to quality
    python -m benchmarks.compare --users 300 --converge --models SASRec RecBole.SASRec

For each model: seconds per training epoch, seconds per evaluation, peak training memory,
valid NDCG@10 after every epoch (with the wall-clock seconds since training began), and test
NDCG@10 / Hit@10 / MRR@10 of the best checkpoint. With --ours_converge, RecBole's models train
--epochs epochs and ours train until early stopping; the table then also gives the best valid
NDCG@10 each of our models reached within the wall-clock time its RecBole counterpart took.

Each model trains in its own process (one after the other, never in parallel), so that its
peak memory is its own: resident memory at its peak minus what the process held just before
training began (data and model already built). Prints a markdown table and writes it, with a
plot of valid NDCG@10 against wall-clock seconds, under --out.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

OURS_TO_RECBOLE = {"SASRec": "RecBole.SASRec", "LightSANs": "RecBole.LightSANs"}
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def ml100k_rows() -> list[list[str]]:
    """ml-100k's interactions as shipped in the recbole wheel: [user, item, rating, timestamp]."""
    import recbole

    source = Path(recbole.__path__[0]) / "dataset_example" / "ml-100k" / "ml-100k.inter"
    return [line.split("\t") for line in source.read_text().splitlines()[1:]]


def write_first_users(root: Path, users: int) -> str:
    """ml-100k restricted to its first ``users`` user ids (1..users), every interaction kept."""
    name = f"ml-100k-first{users}"
    (root / name).mkdir(parents=True, exist_ok=True)
    with open(root / name / f"{name}.inter", "w") as f:
        f.write(INTER_HEADER)
        for user, item, _, stamp in ml100k_rows():
            if int(user) <= users:
                f.write(f"{user}\t{item}\t{stamp}\n")
    return name


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_trainer(base: type) -> type:
    """The model's trainer, recording how long each training and evaluation pass takes."""

    class Timed(base):
        def __init__(self, config, model):
            super().__init__(config, model)
            self.train_seconds, self.eval_seconds, self.curve = [], [], []
            self.started = time.perf_counter()

        def _train_epoch(self, *args, **kwargs):
            start = time.perf_counter()
            loss = super()._train_epoch(*args, **kwargs)
            self.train_seconds.append(time.perf_counter() - start)
            return loss

        def _valid_epoch(self, *args, **kwargs):
            start = time.perf_counter()
            score, result = super()._valid_epoch(*args, **kwargs)
            now = time.perf_counter()
            self.eval_seconds.append(now - start)
            self.curve.append((now - self.started, result["ndcg@10"]))  # wall clock, valid
            return score, result

    return Timed


def run_one(name: str, dataset: str, config_dict: dict) -> dict:
    from recbole.utils import init_logger

    from recbole_sasrec import Config
    from recbole_sasrec.quick_start import prepare
    from recbole_sasrec.trainer import get_trainer

    config = Config(model=name, dataset=dataset, config_dict=config_dict)
    init_logger(config)
    _, train, valid, test, model = prepare(config)
    trainer = timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
    baseline = rss_mib()
    trainer.started = time.perf_counter()
    trainer.fit(train, valid, saved=True, show_progress=config["show_progress"])
    fit_seconds = time.perf_counter() - trainer.started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    test_result = trainer.evaluate(test, load_best_model=True)
    epochs = len(trainer.train_seconds)
    return {
        "model": name,
        "epochs": epochs,
        "train_rows": len(train._dataset),
        "s_per_epoch": sum(trainer.train_seconds) / epochs,
        "s_per_eval": sum(trainer.eval_seconds) / max(1, len(trainer.eval_seconds)),
        "fit_seconds": fit_seconds,
        "peak_mib": max(0.0, peak - baseline),
        "curve": trainer.curve,
        "test": dict(test_result),
        "device": str(config["device"]),
    }


def train_in_subprocess(name: str, dataset: str, flags: list[str], sets: list[str]) -> dict:
    """``run_one`` in a fresh process (so that its peak memory is its own); exits if it fails."""
    cmd = [sys.executable, "-m", "benchmarks.compare", "--worker", name, "--dataset", dataset]
    cmd += flags + (["--set", *sets] if sets else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def best_within(curve: list, seconds: float) -> float | None:
    """Best valid NDCG@10 reached within ``seconds`` of wall clock."""
    values = [ndcg for t, ndcg in curve if t <= seconds]
    return max(values) if values else None


def table(rows: list[dict]) -> str:
    by_name = {r["model"]: r for r in rows}
    lines = [
        "| model | epochs | s / train epoch | s / eval | peak train MiB | best valid NDCG@10 "
        "| test NDCG@10 | test Hit@10 | test MRR@10 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        t = r["test"]
        best = max(n for _, n in r["curve"]) if r["curve"] else float("nan")
        lines.append(
            f"| {r['model']} | {r['epochs']} | {r['s_per_epoch']:.2f} | {r['s_per_eval']:.2f} | "
            f"{r['peak_mib']:.0f} | {best:.4f} | {t['ndcg@10']:.4f} | {t['hit@10']:.4f} | "
            f"{t['mrr@10']:.4f} |"
        )
    notes = []
    for ours, theirs in OURS_TO_RECBOLE.items():
        if ours in by_name and theirs in by_name:
            a, b = by_name[ours], by_name[theirs]
            notes.append(
                f"- {ours} trains an epoch {b['s_per_epoch'] / a['s_per_epoch']:.1f}x faster "
                f"than {theirs} ({a['s_per_epoch']:.2f} s vs {b['s_per_epoch']:.2f} s)."
            )
            budget = b["fit_seconds"]
            best_theirs = max(n for _, n in b["curve"])
            within = best_within(a["curve"], budget)
            if within is not None:
                notes.append(
                    f"- Time to quality: within {theirs}'s {b['epochs']} epochs "
                    f"({budget:.0f} s wall clock) {ours} reached valid NDCG@10 {within:.4f} "
                    f"against {theirs}'s {best_theirs:.4f}."
                )
    return "\n".join(lines + ([""] + notes if notes else []))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
        ax.plot(xs, ys, marker="o", markersize=3, label=r["model"])
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock seconds since training began (log scale)")
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
    parser.add_argument("--converge", action="store_true", help="all models: early stopping")
    parser.add_argument(
        "--ours_converge",
        action="store_true",
        help="our models: early stopping; RecBole's: --epochs",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every model, e.g. --set hidden_size=32",
    )
    parser.add_argument(
        "--users",
        type=int,
        help="use ml-100k's first USERS users only (written to a temporary data set)",
    )
    parser.add_argument("--out", default="results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
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
    for item in args.set:
        key, value = item.split("=", 1)
        config_dict[key] = parse_value(value)

    def settings(name: str) -> dict:
        converge = args.converge or (args.ours_converge and name in OURS_TO_RECBOLE)
        if converge:
            return dict(config_dict, epochs=300, stopping_step=10)
        return dict(config_dict, epochs=args.epochs, stopping_step=args.epochs + 1)

    if args.worker:
        sys.argv = sys.argv[:1]  # RecBole reads sys.argv as configuration
        print(json.dumps(run_one(args.worker, args.dataset, settings(args.worker))))
        return

    if args.users:
        root = Path(tempfile.mkdtemp(prefix="compare-"))
        args.dataset = write_first_users(root, args.users)
        args.set = [*args.set, f"data_path={root}"]

    rows = []
    for name in args.models:
        flags = ["--epochs", str(args.epochs), "--device", args.device]
        flags += ["--converge"] * args.converge + ["--ours_converge"] * args.ours_converge
        rows.append(train_in_subprocess(name, args.dataset, flags, args.set))
        r = rows[-1]
        print(
            f"{name}: {r['epochs']} epochs, {r['s_per_epoch']:.2f} s/epoch, "
            f"test NDCG@10 {r['test']['ndcg@10']:.4f}",
            flush=True,
        )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mode = (
        "converged"
        if args.converge
        else f"{args.epochs}ep" + "-ours-converged" * args.ours_converge
    )
    stem = f"compare-{args.dataset}-{mode}"
    header = (
        f"Measured {date.today()} on {machine()}, device {rows[0]['device']}.\nCommand: {command}\n"
    )
    text = header + "\n" + table(rows) + "\n"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / f"{stem}.png")
    print("\n" + text)
    print(f"wrote {out / stem}.md, .json, .png")


if __name__ == "__main__":
    main()
