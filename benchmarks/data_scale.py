"""Epoch time against the amount of data: ml-100k replicated 1x, 2x, 4x, and a synthetic data
set shaped like the SASRec paper's Amazon sets (many users, 5 to 15 actions each, a large
catalogue), where nearly every one of the MAX_ITEM_LIST_LENGTH positions RecBole pads to is
padding.

    python -m benchmarks.data_scale                   # our SASRec, default hyperparameters
    python -m benchmarks.data_scale --models SASRec LightSANs --amazon_users 30000
    python -m benchmarks.data_scale --set loss_type=BCE     # the paper's loss: no full softmax

Times one training epoch (RecBole's loader, our model, the optimiser; no evaluation) after a
warm-up epoch, and divides by the number of training targets (interactions) in it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from recbole.utils import init_logger

from recbole_sasrec import Config
from recbole_sasrec.quick_start import prepare
from recbole_sasrec.trainer import get_trainer

from .compare import INTER_HEADER, machine, ml100k_rows, parse_value


def write_replicated_ml100k(root: Path, times: int) -> str:
    """ml-100k with every user copied ``times`` times (new user tokens, same items)."""
    rows = ml100k_rows()
    name = f"ml100k_x{times}"
    (root / name).mkdir(parents=True, exist_ok=True)
    with open(root / name / f"{name}.inter", "w") as f:
        f.write(INTER_HEADER)
        for copy in range(times):
            for user, item, _, stamp in rows:
                f.write(f"{user}_{copy}\t{item}\t{stamp}\n")
    return name


def write_amazon_like(root: Path, users: int, items: int, seed: int) -> str:
    """``users`` users with 5 to 15 actions each over ``items`` items (popularity ~ Zipf)."""
    rng = np.random.default_rng(seed)
    name = f"amazonlike_{users}u"
    (root / name).mkdir(parents=True, exist_ok=True)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    with open(root / name / f"{name}.inter", "w") as f:
        f.write(INTER_HEADER)
        for u in range(users):
            n = rng.integers(5, 16)
            for t, item in enumerate(rng.choice(items, size=n, p=popularity)):
                f.write(f"u{u}\ti{item}\t{t}\n")
    return name


def parse_value_pair(item: str) -> tuple[str, object]:
    key, value = item.split("=", 1)
    return key, parse_value(value)


def epoch_time(model: str, dataset: str, root: Path, overrides: dict) -> dict:
    settings = {"data_path": str(root), "show_progress": False, "state": "WARNING"}
    config = Config(model=model, dataset=dataset, config_dict=dict(settings, **overrides))
    init_logger(config)
    _, train, _, _, net = prepare(config)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    trainer._train_epoch(train, 0, show_progress=False)  # warm-up
    start = time.perf_counter()
    trainer._train_epoch(train, 1, show_progress=False)
    seconds = time.perf_counter() - start
    rows = train._dataset.inter_feat
    targets = int((rows[net.TARGET_SEQ] > 0).sum()) if net.train_all_positions else len(rows)
    return {
        "model": model + "".join(f", {k}={v}" for k, v in overrides.items()),
        "dataset": dataset,
        "items": net.n_items - 1,
        "targets": targets,
        "seconds": seconds,
        "us_per_target": 1e6 * seconds / targets,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["SASRec"])
    parser.add_argument("--times", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--amazon_users", type=int, default=30000)
    parser.add_argument("--amazon_items", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every run, e.g. --set loss_type=BCE",
    )
    args = parser.parse_args(argv)
    command = "python -m benchmarks.data_scale " + " ".join(sys.argv[1:] if argv is None else argv)
    overrides = dict(parse_value_pair(item) for item in args.set)
    sys.argv = sys.argv[:1]  # RecBole reads sys.argv as configuration
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        datasets = [write_replicated_ml100k(root, t) for t in args.times]
        datasets.append(write_amazon_like(root, args.amazon_users, args.amazon_items, args.seed))
        rows = []
        for model in args.models:
            for dataset in datasets:
                rows.append(epoch_time(model, dataset, root, overrides))
                r = rows[-1]
                print(
                    f"{model} {dataset}: {r['seconds']:.2f} s, {r['us_per_target']:.1f} us/target"
                )
    print(f"\nMeasured {date.today()} on {machine()}.\nCommand: {command}\n")
    print("| model | data | items | training targets | s / epoch | us per target |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['model']} | {r['dataset']} | {r['items']} | {r['targets']} | "
            f"{r['seconds']:.2f} | {r['us_per_target']:.1f} |"
        )


if __name__ == "__main__":
    main()
