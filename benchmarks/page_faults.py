"""Kernel time and page faults of training epochs, with and without ``allocator.keep_freed_memory``.

    python -m benchmarks.page_faults                    # SASRec on ml-100k, 4 timed epochs each
    python -m benchmarks.page_faults --model LightSANs --epochs 6

Each setting runs in its own process (glibc's setting cannot be undone inside one): one warm-up
epoch, then per epoch wall-clock seconds, user and kernel CPU seconds, and minor page faults.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date

from .common import machine


def worker(model: str, dataset: str, epochs: int, keep: bool) -> list[dict]:
    from recbole.utils import init_logger

    from recbole_sasrec import Config
    from recbole_sasrec.integration.allocator import keep_freed_memory
    from recbole_sasrec.integration.quick_start import prepare
    from recbole_sasrec.integration.trainer import get_trainer

    if keep:  # else glibc's defaults: mmap and unmap large blocks
        keep_freed_memory()
    settings = {"show_progress": False, "state": "WARNING"}
    config = Config(model=model, dataset=dataset, config_dict=settings)
    init_logger(config)
    _, train, _, _, net = prepare(config)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    trainer._train_epoch(train, 0, show_progress=False)  # warm-up
    rows = []
    for epoch in range(1, epochs + 1):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        trainer._train_epoch(train, epoch, show_progress=False)
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        rows.append(
            {
                "wall": t1 - t0,
                "user": r1.ru_utime - r0.ru_utime,
                "sys": r1.ru_stime - r0.ru_stime,
                "faults": r1.ru_minflt - r0.ru_minflt,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--worker", choices=["keep", "glibc"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        rows = worker(args.model, args.dataset, args.epochs, args.worker == "keep")
        print(json.dumps(rows))
        return
    command = "python -m benchmarks.page_faults " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "| allocator | epoch | wall s | user CPU s | kernel CPU s | page faults |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, label in (("glibc", "glibc defaults"), ("keep", "keep_freed_memory (ours)")):
        cmd = [sys.executable, "-m", "benchmarks.page_faults", "--worker", mode]
        cmd += ["--model", args.model, "--dataset", args.dataset, "--epochs", str(args.epochs)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
        for i, r in enumerate(json.loads(done.stdout.strip().splitlines()[-1]), 1):
            lines.append(
                f"| {label} | {i} | {r['wall']:.2f} | {r['user']:.2f} | {r['sys']:.2f} | "
                f"{r['faults']} |"
            )
    print(f"Measured {date.today()} on {machine()}.\nCommand: {command}\n")
    print(f"{args.model}, {args.dataset}, default hyperparameters:\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
