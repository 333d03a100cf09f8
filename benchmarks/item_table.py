"""How the item table of trained checkpoints is spread: whether the items' embeddings point one
way (a collapsed table, whose input side can no longer tell items apart) or many.

    python -m benchmarks.item_table --out results/gbce-item-table-ml-100k.md \\
        CE=saved/SASRec-....pth gBCE=saved/SASRec-....pth

For each LABEL=CHECKPOINT (a ``.pth`` RecBole's trainer saved): the items' mean embedding norm,
the share of the table's energy (squared singular values) in its first direction, and the mean
cosine of the items' unit vectors to their mean direction (about 0 for spread items, 1 when all
point one way). The pad row (item 0) is left out.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import torch

from recbole_sasrec.integration.checkpoint import load_checkpoint

from .common import refuse_existing


def spread(table: torch.Tensor) -> dict:
    """table [I, D] -> {'norm', 'first_direction', 'cosine_to_mean'}."""
    table = table.float()
    unit = table / table.norm(dim=1, keepdim=True).clamp(min=1e-12)  # [I, D]
    mean = unit.mean(0)  # [D]
    energy = torch.linalg.svdvals(table) ** 2  # [min(I, D)]
    return {
        "norm": table.norm(dim=1).mean().item(),
        "first_direction": (energy[0] / energy.sum()).item(),
        "cosine_to_mean": (unit @ (mean / mean.norm().clamp(min=1e-12))).mean().item(),
    }


def item_table(checkpoint: str) -> torch.Tensor:
    """The item embedding of a checkpoint, without the pad row: [I - 1, D]."""
    state = load_checkpoint(checkpoint)["state_dict"]  # weights only: nothing in it runs
    (key,) = [k for k in state if k.endswith("embedding.item.weight")]
    return state[key][1:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=CHECKPOINT")
    parser.add_argument("--out", default=None, help="a markdown file for the table")
    parser.add_argument("--replace", action="store_true", help="write over an existing --out")
    args = parser.parse_args(argv)
    if args.out:
        refuse_existing([Path(args.out)], args.replace)
    lines = [
        "| run | mean norm | first direction's share | cosine to the mean direction |",
        "| --- | ---: | ---: | ---: |",
    ]
    for run in args.runs:
        label, _, path = run.rpartition("=")  # a label may hold "="
        s = spread(item_table(path))
        lines.append(
            f"| {label} | {s['norm']:.2f} | {s['first_direction']:.3f} | {s['cosine_to_mean']:.3f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        command = "python -m benchmarks.item_table " + " ".join(argv or sys.argv[1:])
        Path(args.out).write_text(f"{date.today()}\n\n    {command}\n\n{table}\n")


if __name__ == "__main__":
    main()
