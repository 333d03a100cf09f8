"""What autograd's anomaly detection costs a RecBole model's training step.

    python -m benchmarks.anomaly --model RecBole.SASRec --batches 12

Importing RecBole's sequential models runs its SINE module, which calls
``torch.autograd.set_detect_anomaly(True)`` for the whole process: every RecBole run of a
sequential model trains with it (and, before this package kept the caller's setting, every
process that named a RecBole model through it). Here one model's first ``--batches`` training
batches of ml-100k (its defaults) are timed with it off and on, alternating over two rounds,
the first two batches of each pass not counted; the table gives the median seconds a batch and
the epoch that makes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date

import torch

from recbole_sasrec import Config
from recbole_sasrec.integration.allocator import apply_allocator_setting
from recbole_sasrec.integration.quick_start import prepare
from recbole_sasrec.integration.trainer import get_trainer

from .common import add_output_options, machine, output_file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="RecBole.SASRec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--batches", type=int, default=12)
    add_output_options(parser, "the table (markdown)")
    args = parser.parse_args(argv)
    out = output_file("anomaly", args.out, "anomaly.md", args.replace)

    config = Config(args.model, args.dataset, config_dict={"state": "WARNING"})
    _, train, *_, net = prepare(config)
    apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
    optimizer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net).optimizer
    net.train()
    batches = []
    for batch in train:
        batches.append(batch)
        if len(batches) == args.batches:
            break
    seconds: dict[bool, list[float]] = {False: [], True: []}
    before = torch.is_anomaly_enabled()
    try:
        for _ in range(2):
            for anomaly in (False, True):
                torch.autograd.set_detect_anomaly(anomaly)
                for i, batch in enumerate(batches):
                    start = time.perf_counter()
                    loss = net.calculate_loss(batch)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if i >= 2:
                        seconds[anomaly].append(time.perf_counter() - start)
    finally:
        torch.autograd.set_detect_anomaly(before)
    command = "python -m benchmarks.anomaly " + " ".join(sys.argv[1:] if argv is None else argv)
    median = {mode: statistics.median(s) for mode, s in seconds.items()}
    lines = [
        f"# Anomaly detection and {args.model}'s training step on {args.dataset}",
        "",
        f"{date.today()}, {machine()}; the machine otherwise idle. Command:",
        "",
        f"    {command}",
        "",
        f"{len(train)} batches an epoch (its defaults); median over {len(seconds[False])} timed "
        f"batches each.",
        "",
        "| anomaly detection | s / batch | epoch (s) |",
        "| --- | ---: | ---: |",
        *(
            f"| {'on' if mode else 'off'} | {median[mode]:.3f} | {median[mode] * len(train):.1f} |"
            for mode in (False, True)
        ),
        "",
        f"on / off: {median[True] / median[False]:.2f}x",
    ]
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
