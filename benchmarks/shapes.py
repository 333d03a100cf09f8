"""What training and evaluation cost on the data shapes users bring: long-tailed histories and
large catalogues, per model and per loss.

    python -m benchmarks.shapes                                  # 20k, 200k, 1M items
    python -m benchmarks.shapes --items 20000 --models SASRec --losses BCE --batching random length

Data: ml-100k (the reference) and Amazon-shaped logs from ``benchmarks.synthetic`` (about 31k
users, median 6 actions, 1% with 50 or more, the longest in the hundreds; Zipf-like items) with
catalogues of ``--items`` items (an ``.item`` file lists them all, so the model scores every
one). Settings: the SASRec paper's (hidden 50, MAX_ITEM_LIST_LENGTH 50, 2 blocks, 1 head,
dropout 0.5, batch 128), or with ``--settings defaults`` the package's own (``preset: 'auto'``
included: a log of short histories gets the short-histories preset's steps); ``--set`` to change them. Each run is a fresh process; it trains one
warm-up epoch, then times one: microseconds per real training target and the share of encoded
positions that are padding. Once per model and data set (in the BCE run) it also times
evaluation of the validation users, per 1,000 users, with 100 sampled negatives (``uni100``) and
with full ranking (timed on the first ``--eval_users`` validation users: at 1M items RecBole's
evaluator reads a dense [users, items] matrix). Peak memory is the process's peak resident set. Writes ``shapes.md`` and
``shapes.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from recbole_sasrec.integration.allocator import apply_allocator_setting

from .common import (
    add_output_options,
    machine,
    output_folder,
    parse_sets,
    peak_rss_mib,
    run_worker,
)
from .synthetic import make

PAPER = {
    "hidden_size": 50,
    "inner_size": 50,
    "MAX_ITEM_LIST_LENGTH": 50,
    "n_layers": 2,
    "n_heads": 1,
    "hidden_dropout_prob": 0.5,
    "attn_dropout_prob": 0.5,
    "train_batch_size": 128,
    "k_interests": 5,
    "preset": "none",  # the paper's settings as they are, whatever the shape
}
DEFAULT_DATA = Path("/tmp/recbole_sasrec_synthetic")


def first_users(config, loader, n: int | None):
    """The loader over the first ``n`` samples of its data set (all when n is None or more)."""
    from recbole_sasrec.data.arrays import take
    from recbole_sasrec.integration.loaders import eval_loader

    part = loader._dataset
    if n is None or n >= len(part):
        return loader
    phase = loader._sampler.phase if loader._sampler is not None else "valid"
    part = part.copy(take(part.inter_feat, np.arange(n)))
    return eval_loader(config, phase, part, loader._sampler)


def measure(
    model: str,
    dataset: str,
    root: str | None,
    overrides: dict,
    evaluate: bool,
    eval_users=None,
    settings: str = "paper",
) -> dict:
    from recbole_sasrec import Config
    from recbole_sasrec.integration.loaders import data_preparation
    from recbole_sasrec.integration.logs import run_logging
    from recbole_sasrec.integration.quick_start import create_dataset, prepare
    from recbole_sasrec.integration.trainer import get_trainer

    paper = PAPER if settings == "paper" else {}  # "defaults": the package's, preset: 'auto'
    base = {"show_progress": False, "state": "WARNING", **paper, **overrides}
    if model != "LightSANs":
        base.pop("k_interests", None)
    if root:
        base["data_path"] = root
    config = Config(model, dataset, config_dict=base)
    with run_logging(config):
        _, train, valid, _, net = prepare(config)
        apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        counts = {"real": 0, "encoded": 0}
        real_loss = net.calculate_loss

        def loss(batch):
            lengths = batch[net.ITEM_SEQ_LEN]
            targets = batch[net.TARGET_SEQ] if net.TARGET_SEQ in batch else None
            counts["real"] += int((targets > 0).sum()) if targets is not None else len(lengths)
            counts["encoded"] += len(lengths) * int(lengths.max())
            counts["tokens"] = counts.get("tokens", 0) + int(lengths.sum())
            return real_loss(batch)

        net.calculate_loss = loss
        trainer._train_epoch(train, 0, show_progress=False)  # warm-up
        counts.update(real=0, encoded=0, tokens=0)
        start = time.perf_counter()
        trainer._train_epoch(train, 1, show_progress=False)
        seconds = time.perf_counter() - start
        result = {
            "model": model,
            "dataset": dataset,
            "items": net.n_items - 1,
            "loss": config["loss_type"],
            "batching": config["train_batching"],
            "settings": settings,
            "batch_positions": config["train_batch_positions"],
            "epoch_seconds": seconds,
            "targets": counts["real"],
            "us_per_target": 1e6 * seconds / counts["real"],
            "padding": 1 - counts["tokens"] / counts["encoded"],
            "steps": len(train),
        }
        if evaluate:
            all_users = len(valid._dataset)
            valid = first_users(config, valid, eval_users)
            users = len(valid._dataset)
            start = time.perf_counter()
            trainer.evaluate(valid, load_best_model=False)
            result["full_s_per_1k_users"] = 1000 * (time.perf_counter() - start) / users
            sampled = Config(model, dataset, config_dict={**base, "eval_args": {"mode": "uni100"}})
            _, uni_valid, _ = data_preparation(sampled, create_dataset(sampled))
            uni_valid = first_users(sampled, uni_valid, eval_users)
            start = time.perf_counter()
            trainer.evaluate(uni_valid, load_best_model=False)
            result["uni100_s_per_1k_users"] = 1000 * (time.perf_counter() - start) / users
            result["uni100_epoch_ratio"] = (
                result["uni100_s_per_1k_users"] * all_users / 1000 / seconds
            )
            result["eval_users"] = users
        result["peak_mib"] = peak_rss_mib()
    return result


def table(rows: list[dict]) -> str:
    lines = [
        "| data | items | model | loss | batching | us / target | padding | steps | epoch s | "
        "uni100 s / 1k users | full s / 1k users | uni100 / epoch | peak MiB |",
        "| --- | ---: | --- | --- | --- |" + " ---: |" * 8,
    ]
    for r in rows:

        def opt(key: str, fmt: str, r=r) -> str:
            return format(r[key], fmt) if key in r else ""

        lines.append(
            f"| {r['dataset']} | {r['items']:,} | {r['model']} | {r['loss']} | {r['batching']} | "
            f"{r['us_per_target']:.1f} | {100 * r['padding']:.0f}% | {r['steps']} | "
            f"{r['epoch_seconds']:.1f} | {opt('uni100_s_per_1k_users', '.3f')} | "
            f"{opt('full_s_per_1k_users', '.3f')} | {opt('uni100_epoch_ratio', '.2f')} | "
            f"{r['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", nargs="+", type=int, default=[20_000, 200_000, 1_000_000])
    parser.add_argument("--users", type=int, default=31_000)
    parser.add_argument("--models", nargs="+", default=["SASRec", "LightSANs"])
    parser.add_argument("--losses", nargs="+", default=["BCE", "CE", "SSM", "gBCE"])
    parser.add_argument("--batching", nargs="+", default=["packed"])
    parser.add_argument("--ce_max_items", type=int, default=200_000, help="CE only up to this")
    parser.add_argument("--no_ml100k", action="store_true")
    parser.add_argument("--no_eval", action="store_true", help="training times only")
    parser.add_argument(
        "--eval_users", type=int, default=5000, help="evaluation times from this many users"
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--settings",
        choices=["paper", "defaults"],
        default="paper",
        help="the SASRec paper's settings, or the package's defaults (preset: 'auto' included)",
    )
    add_output_options(parser, "folder for shapes.md, .json")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        model, dataset, root, evaluate = args.worker
        overrides = parse_sets(args.set)
        root = None if root == "-" else root
        result = measure(
            model, dataset, root, overrides, evaluate == "1", args.eval_users, args.settings
        )
        print(json.dumps(result))
        return
    out = output_folder("shapes", args.out, ["shapes.md", "shapes.json"], args.replace)
    command = "python -m benchmarks.shapes " + " ".join(sys.argv[1:] if argv is None else argv)
    datasets = [] if args.no_ml100k else [("ml-100k", "-", 1682)]
    for items in args.items:
        datasets.append(
            (make(Path(args.data), "amazon", users=args.users, items=items), args.data, items)
        )
    rows = []
    for dataset, root, items in datasets:
        for model in args.models:
            for loss in args.losses:
                if loss == "CE" and items > args.ce_max_items:
                    continue
                for batching in args.batching:
                    sets = [*args.set, f"loss_type={loss}", f"train_batching={batching}"]
                    first = loss == args.losses[0] and batching == args.batching[0]
                    evaluate = "1" if first and not args.no_eval else "0"
                    r = run_worker(
                        "benchmarks.shapes",
                        [
                            "--set",
                            *sets,
                            "--eval_users",
                            str(args.eval_users),
                            "--settings",
                            args.settings,
                            "--worker",
                            model,
                            dataset,
                            root,
                            evaluate,
                        ],
                    )
                    rows.append(r)
                    print(table([r]).splitlines()[-1], flush=True)
    skipped = f"CE skipped above {args.ce_max_items:,} items (its full softmax is the cost the sampled losses remove)."
    text = f"Measured {date.today()} on {machine()}.\nCommand: {command}\n\n{table(rows)}\n\n{skipped}\n"
    (out / "shapes.md").write_text(text)
    (out / "shapes.json").write_text(json.dumps(rows, indent=1))
    print("\n" + text)


if __name__ == "__main__":
    main()
