"""Train models side by side on the same data, split and protocol, over several seeds.

    python -m benchmarks.compare --models SASRec LightSANs --seeds 2020 1 2 --converge
    python -m benchmarks.compare --users 300 --converge --seeds 2020 1 2 --recbole_seeds 2020 1 \\
        --models SASRec LightSANs RecBole.SASRec RecBole.LightSANs --name compare-first300
    python -m benchmarks.compare --epochs 5 --ours_converge --models SASRec RecBole.SASRec

Every (model, seed) trains in its own process, one after the other (never in parallel), so that
its time and peak memory are its own, until RecBole's early stopping fires (``--converge``: 10
validations without a better valid NDCG@10) or for ``--epochs`` epochs (``--ours_converge``:
ours converge, RecBole's train ``--epochs``). Each model reads its own defaults (RecBole's for
RecBole's models, ours for ours). Protocol: RecBole's sequential default (leave-one-out, full
ranking over all items); the best checkpoint is also tested with 100 sampled negatives
(``uni100``, the SASRec paper's protocol), so both figures come from the same trained model.

Each run is appended to ``<out>/<name>.jsonl`` as it finishes, and runs already there are not
run again: a long comparison can be stopped and started again. The table (mean +- sample
standard deviation over seeds for every metric) goes to ``<name>.md``, the plot of valid
NDCG@10 against wall-clock seconds of every run to ``<name>.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

from recbole_sasrec.integration.allocator import apply_allocator_setting

from .common import (
    add_output_options,
    machine,
    mean_sd,
    output_folder,
    parse_sets,
    peak_rss_mib,
    rss_mib,
    run_worker,
    timed_trainer,
    write_first_users,
)

OURS_TO_RECBOLE = {"SASRec": "RecBole.SASRec", "LightSANs": "RecBole.LightSANs"}
METRICS = ("ndcg@10", "hit@10", "mrr@10")


def run_one(
    name: str, dataset: str, config_dict: dict, config_files: list[str] | None = None
) -> dict:
    """Train one model to the configured stopping point; test its best checkpoint under full
    ranking and under ``uni100``."""
    from recbole_sasrec import Config
    from recbole_sasrec.integration.loaders import data_preparation
    from recbole_sasrec.integration.logs import run_logging
    from recbole_sasrec.integration.quick_start import create_dataset, prepare
    from recbole_sasrec.integration.trainer import get_trainer

    config = Config(name, dataset, config_files, config_dict)
    with run_logging(config):
        _, train, valid, test, model = prepare(config)
        apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
        trainer = timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
        baseline = rss_mib()
        trainer.started = time.perf_counter()
        trainer.fit(train, valid, saved=True, show_progress=config["show_progress"])
        fit_seconds = time.perf_counter() - trainer.started
        peak = peak_rss_mib()
        test_full = trainer.evaluate(test, load_best_model=True)
        sampled = Config(
            name, dataset, config_files, {**config_dict, "eval_args": {"mode": "uni100"}}
        )
        *_, test_uni = data_preparation(sampled, create_dataset(sampled))
        test_uni100 = trainer.evaluate(test_uni, load_best_model=False)  # the best, loaded above
    return {
        "model": name,
        "seed": config["seed"],
        "epochs": len(trainer.train_seconds),
        "s_per_epoch": sum(trainer.train_seconds) / max(1, len(trainer.train_seconds)),
        "s_per_eval": sum(trainer.eval_seconds) / max(1, len(trainer.eval_seconds)),
        "fit_seconds": fit_seconds,
        "peak_mib": max(0.0, peak - baseline),
        "curve": [(t, r["ndcg@10"]) for t, r in trainer.curve],
        "best_valid": max((r for _, r in trainer.curve), key=lambda r: r["ndcg@10"], default={}),
        "test": dict(test_full),
        "test_uni100": dict(test_uni100),
        "device": str(config["device"]),
    }


def settings(args, name: str, seed: int) -> dict:
    config = {
        "metrics": ["NDCG", "Hit", "MRR"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "show_progress": False,
        "state": "WARNING",
        "seed": seed,
        "use_gpu": args.device == "cuda",
        "gpu_id": "0" if args.device == "cuda" else "",
        **parse_sets(args.set),
    }
    converge = args.converge or (args.ours_converge and name in OURS_TO_RECBOLE)
    if converge:  # RecBole's patience, 10 validations, unless --set stopping_step=N says otherwise
        return dict(config, epochs=args.max_epochs, stopping_step=config.get("stopping_step", 10))
    return dict(config, epochs=args.epochs, stopping_step=args.epochs + 1)


def table(runs: list[dict]) -> str:
    by_model = defaultdict(list)
    for r in runs:
        by_model[r["model"]].append(r)
    head = (
        "| model | seeds | epochs | s / epoch | s to stop | peak MiB | best valid NDCG@10 | "
        "test NDCG@10 | test Hit@10 | test MRR@10 | uni100 NDCG@10 | uni100 Hit@10 |"
    )
    lines = [head, "| --- |" + " ---: |" * 11]
    for model, rs in by_model.items():
        cells = [
            model,
            " / ".join(str(r["seed"]) for r in rs),
            " / ".join(str(r["epochs"]) for r in rs),
            mean_sd([r["s_per_epoch"] for r in rs], 2),
            mean_sd([r["fit_seconds"] for r in rs], 0),
            mean_sd([r["peak_mib"] for r in rs], 0),
            mean_sd([r["best_valid"].get("ndcg@10") for r in rs]),
            *(mean_sd([r["test"][m] for r in rs]) for m in METRICS),
            mean_sd([r["test_uni100"]["ndcg@10"] for r in rs]),
            mean_sd([r["test_uni100"]["hit@10"] for r in rs]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    for ours, theirs in OURS_TO_RECBOLE.items():
        if ours in by_model and theirs in by_model:
            a, b = by_model[ours], by_model[theirs]
            mean = lambda rs, key: sum(key(r) for r in rs) / len(rs)  # noqa: E731
            for label, key in (
                ("test NDCG@10", lambda r: r["test"]["ndcg@10"]),
                ("best valid NDCG@10", lambda r: r["best_valid"]["ndcg@10"]),
                ("s / epoch", lambda r: r["s_per_epoch"]),
            ):
                ratio = f" = {mean(a, key) / mean(b, key):.2f}x" if mean(b, key) else ""
                notes.append(
                    f"- {ours} / {theirs}, {label}: {mean(a, key):.4f} / {mean(b, key):.4f}{ratio}"
                )
    return "\n".join(lines + ([""] + notes if notes else []))


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {}
    for r in runs:
        colour = colours.setdefault(r["model"], f"C{len(colours)}")
        xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
        ax.plot(xs, ys, color=colour, alpha=0.8, marker="o", markersize=2)
    for model, colour in colours.items():
        ax.plot([], [], color=colour, label=model)
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock seconds since training began (log scale)")
    ax.set_ylabel("valid NDCG@10")
    ax.set_title("one line per run (model, seed)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["SASRec", "RecBole.SASRec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 1, 2])
    parser.add_argument(
        "--recbole_seeds", nargs="+", type=int, default=None, help="RecBole's models (--seeds)"
    )
    parser.add_argument("--epochs", type=int, default=5, help="fixed number of epochs")
    parser.add_argument("--max_epochs", type=int, default=300, help="cap when converging")
    parser.add_argument("--converge", action="store_true", help="all models: early stopping")
    parser.add_argument(
        "--ours_converge",
        action="store_true",
        help="our models: early stopping; RecBole's: --epochs",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="every model")
    parser.add_argument("--config_files", nargs="*", default=[], help="yaml files, every model")
    parser.add_argument("--users", type=int, help="use ml-100k's first USERS users only")
    add_output_options(parser, "folder for <name>.jsonl, .md, .png")
    parser.add_argument("--name", default=None, help="file stem (default from the options)")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.users:
        root = Path(tempfile.gettempdir()) / "recbole_sasrec_compare"
        args.dataset = write_first_users(root, args.users)
        args.set = [*args.set, f"data_path={root}"]
    if args.worker:
        name, seed = args.worker[0], int(args.worker[1])
        files = args.config_files or None
        print(json.dumps(run_one(name, args.dataset, settings(args, name, seed), files)))
        return

    command = "python -m benchmarks.compare " + " ".join(sys.argv[1:] if argv is None else argv)
    mode = (
        "converged"
        if args.converge
        else f"{args.epochs}ep" + "-ours-converged" * args.ours_converge
    )
    stem = args.name or f"compare-{args.dataset}-{mode}"
    # with --replace, the runs a record there holds are reused (a search resumed)
    names = [f"{stem}.jsonl", f"{stem}.md", f"{stem}.png"]
    out = output_folder("compare", args.out, names, args.replace)
    record = out / f"{stem}.jsonl"
    done = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    flags = [f"--{k}={v}" for k, v in (("epochs", args.epochs), ("max_epochs", args.max_epochs))]
    flags += ["--device", args.device] + ["--converge"] * args.converge
    flags += ["--ours_converge"] * args.ours_converge + (["--set", *args.set] if args.set else [])
    flags += ["--config_files", *args.config_files] if args.config_files else []
    flags += ["--dataset", args.dataset] if not args.users else ["--users", str(args.users)]
    for name in args.models:
        seeds = (
            args.seeds if name in OURS_TO_RECBOLE or not args.recbole_seeds else args.recbole_seeds
        )
        for seed in seeds:
            if any(r["model"] == name and r["seed"] == seed for r in done):
                continue
            r = run_worker("benchmarks.compare", flags + ["--worker", name, str(seed)])
            done.append(r)
            with open(record, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(
                f"{name} seed {seed}: {r['epochs']} epochs, {r['s_per_epoch']:.2f} s/epoch, "
                f"test NDCG@10 {r['test']['ndcg@10']:.4f}",
                flush=True,
            )
    runs = [r for r in done if r["model"] in args.models]
    header = (
        f"Measured {date.today()} on {machine()}, device {runs[0]['device']}.\nCommand: {command}\n"
    )
    text = header + "\n" + table(runs) + "\n"
    (out / f"{stem}.md").write_text(text)
    plot(runs, out / f"{stem}.png")
    print("\n" + text)
    print(f"wrote {out / stem}.md, .jsonl, .png")


if __name__ == "__main__":
    main()
