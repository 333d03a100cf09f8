"""Where one training epoch's time goes: data loading and collation, forward (loss), backward,
optimiser step; and one full-ranking evaluation pass.

    python -m benchmarks.profile_epoch --models SASRec RecBole.SASRec --max_batches 10

Uses RecBole's own dataloaders and the same configuration as a run_recbole call. With
--max_batches, only that many training batches are timed and the epoch is extrapolated from
them (RecBole's SASRec needs about 3 minutes per ml-100k epoch on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from recbole.utils import init_logger

from recbole_sasrec import Config
from recbole_sasrec.integration.allocator import apply_allocator_setting
from recbole_sasrec.integration.quick_start import prepare
from recbole_sasrec.integration.trainer import get_trainer

from .common import machine, parse_value


def profile(name: str, dataset: str, config_dict: dict, max_batches: int | None) -> dict:
    config = Config(model=name, dataset=dataset, config_dict=config_dict)
    init_logger(config)
    _, train, valid, _, model = prepare(config)
    apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    optimizer = trainer.optimizer
    model.train()
    parts = dict.fromkeys(["load+collate", "forward+loss", "backward", "optimiser"], 0.0)
    n_batches = len(train)
    timed = 0
    mark = time.perf_counter()
    for batch in train:
        batch = batch.to(config["device"])
        now = time.perf_counter()
        parts["load+collate"] += now - mark
        loss = model.calculate_loss(batch)
        mark, now = now, time.perf_counter()
        parts["forward+loss"] += now - mark
        optimizer.zero_grad()
        loss.backward()
        mark, now = now, time.perf_counter()
        parts["backward"] += now - mark
        optimizer.step()
        mark, now = now, time.perf_counter()
        parts["optimiser"] += now - mark
        timed += 1
        if max_batches and timed >= max_batches:
            break
    scale = n_batches / timed
    epoch = {k: v * scale for k, v in parts.items()}
    start = time.perf_counter()
    trainer.evaluate(valid, load_best_model=False)
    epoch["evaluation"] = time.perf_counter() - start
    return {"model": name, "batches": n_batches, "timed": timed, **epoch}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["SASRec", "RecBole.SASRec"])
    parser.add_argument("--max_batches", type=int, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.profile_epoch " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    config_dict = {"show_progress": False, "state": "WARNING"}
    config_dict["preset"] = "none"  # the defaults its records ran with, whatever the shape
    for item in args.set:
        key, value = item.split("=", 1)
        config_dict[key] = parse_value(value)
    rows = [profile(m, args.dataset, config_dict, args.max_batches) for m in args.models]
    keys = ["load+collate", "forward+loss", "backward", "optimiser", "evaluation"]
    print(f"Measured {date.today()} on {machine()}.\nCommand: {command}\n")
    print(
        "| model | batches (timed) | " + " | ".join(f"{k} s" for k in keys) + " | train total s |"
    )
    print("| --- | ---: | " + " | ".join("---:" for _ in keys) + " | ---: |")
    for r in rows:
        total = sum(r[k] for k in keys[:4])
        cells = " | ".join(f"{r[k]:.2f}" for k in keys)
        print(f"| {r['model']} | {r['batches']} ({r['timed']}) | {cells} | {total:.2f} |")


if __name__ == "__main__":
    main()
