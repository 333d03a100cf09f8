"""Training cost against sequence length: our SASRec and LightSANs (and RecBole's LightSANs).

    python -m benchmarks.scale                       # L = 50 100 200 400 800, 256 sequences each
    python -m benchmarks.scale --lengths 50 800 --users 64 --models SASRec LightSANs

Synthetic data with long histories: every user has more than max(L) items; at each L an epoch
trains on every user's most recent L+1 items, one sequence of length L per user, all positions
(our models) or the last position (RecBole's LightSANs, the way RecBole trains it). Every
(model, L) runs in its own process: peak memory is that process's peak resident memory above
what it held before its first training step. Prints a markdown table, writes it with a plot of
time and memory against L under --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from recbole_sasrec.integration.allocator import apply_allocator_setting

from .common import add_output_options, machine, output_folder, rss_mib

MODEL_SETTINGS = {"hidden_size": 64, "n_layers": 2, "n_heads": 2, "k_interests": 5}


class _Items:
    """The one thing the models read from a RecBole dataset at construction: the item count."""

    def __init__(self, n_items: int):
        self.n_items = n_items

    def num(self, field: str) -> int:
        return self.n_items


def worker(name: str, L: int, users: int, batch: int, n_items: int, seed: int, loss: str) -> dict:
    from recbole_sasrec import Config, get_model

    torch.manual_seed(seed)
    config = Config(
        model=name,
        dataset="ml-100k",  # only for the configuration defaults; no data is loaded
        config_dict=dict(MODEL_SETTINGS, MAX_ITEM_LIST_LENGTH=L, loss_type=loss),
    )
    apply_allocator_setting(config)  # this worker owns its process, as run_recbole does
    model = get_model(config["model"])(config, _Items(n_items))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seqs = torch.randint(1, n_items, (users, L + 1))  # each user's last L+1 items
    batches = []
    for start in range(0, users, batch):
        s = seqs[start : start + batch]
        batches.append(
            {
                model.ITEM_SEQ: s[:, :-1].contiguous(),
                model.ITEM_SEQ_LEN: torch.full((len(s),), L),
                "next_item_id_list": s[:, 1:].contiguous(),  # our models: every position
                model.ITEM_ID: s[:, -1].contiguous(),  # RecBole's: the last position
                model.NEG_ITEM_ID: torch.randint(1, n_items, (len(s),)),  # RecBole's BPR
            }
        )
    baseline = rss_mib()
    start = time.perf_counter()
    for b in batches:
        loss = model.calculate_loss(b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return {"model": name, "L": L, "seconds": seconds, "peak_mib": max(0.0, peak - baseline)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=[50, 100, 200, 400, 800])
    parser.add_argument("--models", nargs="+", default=["SASRec", "LightSANs", "RecBole.LightSANs"])
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="sequences per training step")
    parser.add_argument("--n_items", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--loss",
        default="BPR",
        choices=["BPR", "CE"],
        help="BPR (default) keeps the output layer small, so the table shows the encoder; "
        "CE adds a full-catalogue softmax at every position",
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per (model, L) run")
    add_output_options(parser, "folder for scale.md, .json, .png")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "L"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, L = args.worker[0], int(args.worker[1])
        result = worker(name, L, args.users, args.batch, args.n_items, args.seed, args.loss)
        print(json.dumps(result))
        return
    out = output_folder("scale", args.out, ["scale.md", "scale.json", "scale.png"], args.replace)

    command = "python -m benchmarks.scale " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for L in args.lengths:
        for name in args.models:
            cmd = [sys.executable, "-m", "benchmarks.scale", "--worker", name, str(L)]
            cmd += ["--users", str(args.users), "--batch", str(args.batch)]
            cmd += ["--n_items", str(args.n_items), "--seed", str(args.seed), "--loss", args.loss]
            try:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=args.timeout, check=True
                )
                row = json.loads(done.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                row = {"model": name, "L": L, "seconds": None, "peak_mib": None}
            except subprocess.CalledProcessError as error:
                sys.exit(f"{name} at L={L} failed:\n{error.stderr[-3000:]}")
            rows.append(row)
            shown = "timeout" if row["seconds"] is None else f"{row['seconds']:.2f} s"
            print(f"L={L:4d} {name:18s} {shown} peak +{row['peak_mib'] or 0:.0f} MiB", flush=True)

    lines = [
        "| model | L | s / epoch | s per 1k tokens | peak MiB above baseline |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r["seconds"] is None:
            lines.append(f"| {r['model']} | {r['L']} | > {args.timeout} | | |")
            continue
        per_k = 1000 * r["seconds"] / (args.users * r["L"])
        lines.append(
            f"| {r['model']} | {r['L']} | {r['seconds']:.2f} | {per_k:.3f} | {r['peak_mib']:.0f} |"
        )
    crossover = crossover_text(rows)
    text = (
        f"Measured {date.today()} on {machine()}.\nCommand: {command}\n"
        f"{args.users} sequences of length L per epoch, {args.batch} per step, "
        f"hidden 64, 2 layers, 2 heads, k_interests 5, {args.n_items} items, {args.loss} loss.\n\n"
        + "\n".join(lines)
        + f"\n\n{crossover}\n"
    )
    (out / "scale.md").write_text(text)
    (out / "scale.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / "scale.png")
    print("\n" + text + f"wrote {out}/scale.md, .json, .png")


def crossover_text(rows: list[dict]) -> str:
    """The shortest measured L from which LightSANs is cheaper than SASRec, in time and memory."""
    by = {(r["model"], r["L"]): r for r in rows}
    parts = []
    for key, label in (("seconds", "time"), ("peak_mib", "memory")):
        lengths = sorted({L for m, L in by if m == "SASRec" and (("LightSANs", L) in by)})
        cheaper = [
            L
            for L in lengths
            if by["LightSANs", L][key] is not None
            and by["SASRec", L][key] is not None
            and by["LightSANs", L][key] < by["SASRec", L][key]
        ]
        first = next((L for L in lengths if all(x in cheaper for x in lengths if x >= L)), None)
        parts.append(f"{label}: from L={first}" if first else f"{label}: not within {lengths}")

    return "LightSANs cheaper than SASRec -- " + "; ".join(parts) + "."


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name and r["seconds"] is not None]
        Ls = [r["L"] for r in mine]
        axes[0].plot(Ls, [r["seconds"] for r in mine], marker="o", label=name)
        axes[1].plot(Ls, [r["peak_mib"] for r in mine], marker="o", label=name)
    lengths = sorted({r["L"] for r in rows})
    for ax, ylabel in zip(axes, ["seconds per epoch", "peak MiB above baseline"], strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(lengths, [str(L) for L in lengths])
        ax.minorticks_off()
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("Training one epoch: one sequence of length L per user")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
