"""What item attributes cost an epoch: the same model, data and batches with and without them.

    python -m benchmarks.attributes_cost --data ../shared/data/Beauty.txt \\
        --attributes ../shared/data/Beauty_item2attributes.json

The log is converted (``--format sequences``) and its attribute JSON written as the ``.item``
file beside it (``--format attributes``); both runs read the same files and differ only in
``selected_features``. Per model, the two are built in one process from the same seed (so their
batches are the same) and their training epochs alternate, ``--rounds`` each, so that a change
of the machine's speed falls on both; the table gives each epoch's median seconds and the ratio
of the medians. ``--config_files``: the settings both runs use (default: the short-histories
preset, which the public-data figures use).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from recbole_sasrec import Config, convert
from recbole_sasrec.integration.allocator import apply_allocator_setting
from recbole_sasrec.integration.quick_start import prepare
from recbole_sasrec.integration.trainer import get_trainer

from .common import add_output_options, machine, output_file, parse_sets


def build(model: str, name: str, files: list[str], keys: dict):
    config = Config(model, name, files or None, keys)
    _, train, *_, net = prepare(config)
    apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
    return train, get_trainer(config["MODEL_TYPE"], config["model"])(config, net)


def epochs(model: str, name: str, files: list[str], keys: dict, rounds: int) -> dict:
    """Median training-epoch seconds without and with attributes, alternating."""
    runs = {
        label: build(model, name, files, dict(keys, selected_features=selected))
        for label, selected in (("ids", []), ("attributes", ["attributes"]))
    }
    seconds: dict[str, list[float]] = {label: [] for label in runs}
    for epoch in range(rounds + 1):  # the first round warms up and is not counted
        for label, (train, trainer) in runs.items():
            start = time.perf_counter()
            trainer._train_epoch(train, epoch, show_progress=False)
            if epoch:
                seconds[label].append(time.perf_counter() - start)
        print(
            f"  {model} round {epoch}: "
            + ", ".join(f"{label} {s[-1]:.1f} s" for label, s in seconds.items() if s),
            file=sys.stderr,
            flush=True,
        )
    return {label: statistics.median(s) for label, s in seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a 'user item item ...' file")
    parser.add_argument("--attributes", required=True, help="its item -> attributes JSON")
    parser.add_argument("--models", nargs="+", default=["SASRec", "LightSANs"])
    parser.add_argument("--config_files", nargs="*", default=["presets/short-histories.yaml"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs of each")
    parser.add_argument("--data_dir", default=str(Path(tempfile.gettempdir()) / "attributes_cost"))
    add_output_options(parser, "the table (markdown)")
    args = parser.parse_args(argv)
    out = output_file("attributes_cost", args.out, "attributes_cost.md", args.replace)

    name = Path(args.data).stem
    convert(args.data, args.data_dir, name, "sequences", replace=True)
    convert(args.attributes, args.data_dir, name, "attributes", replace=True)
    keys = {"data_path": args.data_dir, "state": "WARNING", "show_progress": False}
    keys.update(parse_sets(args.set))
    command = "python -m benchmarks.attributes_cost " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    lines = [
        f"# What item attributes cost an epoch: {name}",
        "",
        f"{date.today()}, {machine()}, torch threads {torch.get_num_threads()}; the machine "
        f"otherwise idle. Command:",
        "",
        f"    {command}",
        "",
        f"Config files: {', '.join(args.config_files) or 'none'}; median of {args.rounds} "
        f"training epochs each, alternating, after one untimed epoch of each.",
        "",
        "| model | epoch, ids only (s) | epoch, with attributes (s) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for model in args.models:
        median = epochs(model, name, args.config_files, keys, args.rounds)
        ratio = median["attributes"] / median["ids"]
        lines.append(
            f"| {model} | {median['ids']:.2f} | {median['attributes']:.2f} | {ratio:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
