"""Data preparation against the number of interactions, on MovieLens-20M-shaped logs.

    python -m benchmarks.data_prep                                # 1M, 4M, 20M
    python -m benchmarks.data_prep --sizes 1000000 4000000 --recbole_max 4000000 --no_train

For each size, a log drawn by ``benchmarks.synthetic`` (shape ``ml20m``: 27k items, Zipf-like
popularity, user lengths log-normal with median 70, at least 20) is prepared in a fresh process
as ``run_recbole`` prepares it (``Config``, the data set, its split and loaders), for our SASRec
and, up to ``--recbole_max`` interactions, for RecBole's SASRec path (its per-prefix rows need
memory linear in N x MAX_ITEM_LIST_LENGTH). Reported per run: seconds and peak resident memory
of the whole preparation, and of its phases (reading the .inter file, RecBole's processing,
building the split), the training rows; for ours also one training epoch with BCE and with a
sampled softmax (SSM, 256 negatives) and one full-ranking evaluation of the validation users.
Writes a markdown table and a plot of time and memory against N under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from recbole_sasrec.integration.allocator import apply_allocator_setting

from .common import (
    add_output_options,
    machine,
    output_folder,
    parse_sets,
    peak_rss_mib,
    rss_mib,
    run_worker,
)
from .synthetic import make

DEFAULT_DATA = Path("/tmp/recbole_sasrec_synthetic")


def prepare_and_train(model: str, root: str, name: str, train: bool, sets: dict) -> dict:
    """One run: preparation phases timed, then (ours) epochs and a full-ranking evaluation."""
    from recbole.data.dataset import Dataset

    from recbole_sasrec import Config
    from recbole_sasrec.integration.loaders import data_preparation
    from recbole_sasrec.integration.logs import run_logging
    from recbole_sasrec.integration.quick_start import create_dataset
    from recbole_sasrec.integration.trainer import get_trainer

    phases: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def timed(method_name: str, label: str):
        real = getattr(Dataset, method_name)

        def wrapper(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return real(self, *args, **kwargs)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - start
                peaks[label] = peak_rss_mib()

        setattr(Dataset, method_name, wrapper)

    timed("_load_data", "read")
    timed("_data_processing", "process")
    base = {"data_path": root, "show_progress": False, "state": "WARNING", **sets}
    config = Config(model, name, config_dict=base)
    with run_logging(config):
        start = time.perf_counter()
        dataset = create_dataset(config)
        interactions = int(dataset.inter_num)  # before the split keeps the samples only
        built = time.perf_counter()
        train_data, valid_data, _ = data_preparation(config, dataset)
        phases["build"] = time.perf_counter() - built
        prep = time.perf_counter() - start
        result = {
            "model": model,
            "interactions": interactions,
            "users": int(dataset.user_num - 1),
            "items": int(dataset.item_num - 1),
            "prep_seconds": prep,
            "prep_peak_mib": peak_rss_mib(),
            "phases": phases,
            "phase_peaks": peaks,
            "train_rows": len(train_data._dataset),
            "rss_after_prep_mib": rss_mib(),
        }
        if not train:
            return result
        apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
        from recbole_sasrec.integration.config import get_model

        for loss in ("BCE", "SSM"):  # both draw their negatives in the model: the same loader
            cfg = Config(model, name, config_dict=dict(base, loss_type=loss))
            net = get_model(model)(cfg, train_data._dataset)
            trainer = get_trainer(cfg["MODEL_TYPE"], cfg["model"])(cfg, net)
            start = time.perf_counter()
            trainer._train_epoch(train_data, 0, show_progress=False)
            result[f"epoch_{loss}_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        trainer.evaluate(valid_data, load_best_model=False)
        result["full_eval_seconds"] = time.perf_counter() - start
        result["eval_users"] = len(valid_data._dataset)
        result["peak_mib"] = peak_rss_mib()
    return result


def table(rows: list[dict]) -> str:
    lines = [
        "| N | model | prep s | prep peak GiB | read s | process s | build s | us / interaction | "
        "MiB / 1k interactions | training rows | BCE epoch s | SSM epoch s | full eval s / 1k users |",
        "| ---: | --- |" + " ---: |" * 11,
    ]
    for r in rows:
        n = r["interactions"]
        p = r["phases"]

        def cell(key: str, fmt: str, r=r) -> str:
            return format(r[key], fmt) if key in r else "-"

        per_k = (
            r["full_eval_seconds"] / r["eval_users"] * 1000 if "full_eval_seconds" in r else None
        )
        lines.append(
            f"| {n:,} | {r['model']} | {r['prep_seconds']:.1f} | {r['prep_peak_mib'] / 1024:.2f} | "
            f"{p.get('read', 0):.1f} | {p.get('process', 0):.1f} | {p.get('build', 0):.1f} | "
            f"{1e6 * r['prep_seconds'] / n:.2f} | {1024 * r['prep_peak_mib'] / n:.3f} | "
            f"{r['train_rows']:,} | {cell('epoch_BCE_seconds', '.1f')} | "
            f"{cell('epoch_SSM_seconds', '.1f')} | {'-' if per_k is None else f'{per_k:.3f}'} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["interactions"])
        n = [r["interactions"] / 1e6 for r in rs]
        left.plot(n, [r["prep_seconds"] for r in rs], marker="o", label=model)
        right.plot(n, [r["prep_peak_mib"] / 1024 for r in rs], marker="o", label=model)
    left.set(xlabel="interactions (millions)", ylabel="preparation seconds")
    right.set(xlabel="interactions (millions)", ylabel="peak resident memory (GiB)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("data preparation, MovieLens-20M-shaped synthetic logs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 4_000_000, 20_000_000])
    parser.add_argument("--recbole_max", type=int, default=4_000_000, help="RecBole's path up to N")
    parser.add_argument("--no_train", action="store_true", help="preparation only")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="where the logs are written")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    add_output_options(parser, "folder for data_prep.md, .json, .png")
    parser.add_argument(
        "--worker", nargs=3, metavar=("MODEL", "NAME", "TRAIN"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        model, name, train = args.worker
        print(
            json.dumps(
                prepare_and_train(model, args.data, name, train == "1", parse_sets(args.set))
            )
        )
        return
    names = ["data_prep.md", "data_prep.json", "data_prep.png"]
    out = output_folder("data_prep", args.out, names, args.replace)
    command = "python -m benchmarks.data_prep " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for n in args.sizes:
        name = make(Path(args.data), "ml20m", interactions=n)
        models = ["SASRec"] + (["RecBole.SASRec"] if n <= args.recbole_max else [])
        for model in models:
            train = "1" if model == "SASRec" and not args.no_train else "0"
            flags = ["--data", args.data, "--set", *args.set] if args.set else ["--data", args.data]
            r = run_worker("benchmarks.data_prep", flags + ["--worker", model, name, train])
            rows.append(r)
            print(
                f"{n:,} {model}: prep {r['prep_seconds']:.1f} s, peak "
                f"{r['prep_peak_mib'] / 1024:.2f} GiB, phases {r['phases']}",
                flush=True,
            )
    text = f"Measured {date.today()} on {machine()}.\nCommand: {command}\n\n{table(rows)}\n"
    (out / "data_prep.md").write_text(text)
    (out / "data_prep.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / "data_prep.png")
    print("\n" + text)


if __name__ == "__main__":
    main()
