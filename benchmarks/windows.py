"""What overlapping windows cost: training windows, encoded positions and targets per epoch for
each ``window_context``.

    python -m benchmarks.windows                                # ml-100k, C = 0, 12, 25
    python -m benchmarks.windows --dataset mylog --data_path data/ --contexts 0 10

Every training interaction is a target once whatever C; the positions a window adds before its
first target only give context, and an epoch encodes them too.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date


def count(dataset: str, data_path: str | None, context: int) -> dict:
    from recbole_sasrec import Config
    from recbole_sasrec.core.fields import target_list_field
    from recbole_sasrec.integration.loaders import data_preparation
    from recbole_sasrec.integration.logs import run_logging
    from recbole_sasrec.integration.quick_start import create_dataset

    cfg = {"window_context": context, "state": "ERROR", "show_progress": False}
    if data_path:
        cfg["data_path"] = data_path
    config = Config("SASRec", dataset, config_dict=cfg)
    with run_logging(config):
        train, _, _ = data_preparation(config, create_dataset(config))
    rows = train._dataset.inter_feat
    lengths = rows[train._dataset.item_list_length_field]
    targets = rows[target_list_field(config)]
    return {
        "context": context,
        "windows": len(rows),
        "positions": int(lengths.sum()),
        "targets": int((targets > 0).sum()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--contexts", nargs="+", type=int, default=[0, 12, 25])
    args = parser.parse_args(argv)
    command = "python -m benchmarks.windows " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = [count(args.dataset, args.data_path, c) for c in args.contexts]
    base = rows[0]["positions"]
    print(f"Counted {date.today()}. Command: {command}\n")
    print(f"{args.dataset}, SASRec's defaults but window_context:")
    print("| window_context | windows | encoded positions | targets | positions vs first |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['context']} | {r['windows']:,} | {r['positions']:,} | {r['targets']:,} | "
            f"{r['positions'] / base - 1:+.0%} |"
        )


if __name__ == "__main__":
    main()
