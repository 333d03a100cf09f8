"""Both models on a public log of the sequential-recommendation literature, under its protocol.

    python -m benchmarks.public_data --data ../shared/data/Beauty.txt
    python -m benchmarks.public_data --data ../shared/data/Sports_and_Outdoors.txt \\
        --models SASRec --losses CE SSM256 --seeds 2020 1 2 --set hidden_size=128

The data file is the literature's one-line-per-user format (``user item item ...``, oldest
first), converted with ``python -m recbole_sasrec convert --format sequences`` into
``--data_dir``; ``--attributes`` (S3-Rec's item -> attributes JSON) writes the ``.item`` file
beside it (``--format attributes``) and every run selects its field (``selected_features``). Every (model, loss, seed) trains in its own process, one after the other, until
RecBole's early stopping on validation NDCG@10 under the literature's protocol (leave-one-out,
full ranking with the user's earlier items removed: ``eval_exclude_history: True``). Its best
checkpoint is tested under that protocol and under RecBole's (the same ranking keeping them).

Losses: ``CE`` (full softmax), ``SSM<k>`` (sampled softmax, k shared negatives), ``gBCE<k>``
(k per target; ``gBCE`` alone: 256), ``BCE``, ``BPR``. Runs are appended to
``<out>/runs.jsonl`` as they finish and are not run again (the same model, data, keys and
config files' contents); the tables (mean +- sample standard deviation over seeds) go to
``<out>/summary.md`` beside the published figures of the data's README, the valid NDCG@10 of
every run against wall-clock to ``<out>/curves.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

from .common import (
    add_output_options,
    machine,
    mean_sd,
    output_folder,
    parse_sets,
    peak_rss_mib,
    run_worker,
    timed_trainer,
)

LOSS = re.compile(r"(CE|BCE|BPR|SSM|gBCE)(\d*)")
KS = (5, 10, 20)
METRICS = [f"{m}@{k}" for m in ("hit", "ndcg") for k in KS]
# The literature's protocol, every run: full ranking without the user's earlier items, model
# selection by valid NDCG@10, metrics HR and NDCG at 5, 10, 20.
PROTOCOL = {
    "eval_exclude_history": True,
    "metrics": ["Hit", "NDCG"],
    "topk": list(KS),
    "valid_metric": "NDCG@10",
    "metric_decimal_place": 6,
    "show_progress": False,
}


def loss_keys(spec: str) -> dict:
    """'SSM4096' -> {'loss_type': 'SSM', 'loss_negatives': 4096}."""
    match = LOSS.fullmatch(spec)
    if match is None:
        sys.exit(f"--losses {spec!r}: expected CE, BCE, BPR, SSM<k> or gBCE[<k>]")
    kind, k = match.groups()
    if kind == "SSM" and not k:
        sys.exit(f"--losses {spec!r}: SSM needs its number of negatives, e.g. SSM256")
    return {"loss_type": kind, **({"loss_negatives": int(k)} if k else {})}


def run_one(model: str, dataset: str, config_dict: dict, config_files: list[str]) -> dict:
    """Train to early stopping; test the best checkpoint under both protocols."""
    from recbole_sasrec import Config
    from recbole_sasrec.integration.allocator import apply_allocator_setting
    from recbole_sasrec.integration.logs import run_logging
    from recbole_sasrec.integration.quick_start import prepare
    from recbole_sasrec.integration.trainer import get_trainer

    config = Config(model, dataset, config_files or None, config_dict)
    with run_logging(config):
        _, train, valid, test, net = prepare(config)
        apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
        trainer = timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]), "ndcg@10")(
            config, net
        )
        trainer.started = time.perf_counter()
        trainer.fit(train, valid, saved=True, show_progress=False)
        fit_seconds = time.perf_counter() - trainer.started
        test_papers = trainer.evaluate(test, load_best_model=True)
        test.exclude_history = False  # RecBole's full ranking, same checkpoint
        test_recbole = trainer.evaluate(test, load_best_model=False)
    scores = [result["ndcg@10"] for _, result in trainer.curve]
    best = scores.index(max(scores))  # RecBole keeps the first best
    return {
        "model": model,
        "seed": config["seed"],
        "threads": __import__("torch").get_num_threads(),
        "epochs": len(trainer.train_seconds),
        "best_epoch": best + 1,
        "seconds_to_best": trainer.curve[best][0],
        "fit_seconds": fit_seconds,
        "s_per_epoch": sum(trainer.train_seconds) / max(1, len(trainer.train_seconds)),
        "s_per_eval": sum(trainer.eval_seconds) / max(1, len(trainer.eval_seconds)),
        "peak_rss_mib": peak_rss_mib(),
        "curve": [(round(t, 2), result["ndcg@10"]) for t, result in trainer.curve],
        "best_valid": dict(trainer.curve[best][1]),
        "test_papers": dict(test_papers),
        "test_recbole": dict(test_recbole),
        "model_file": trainer.saved_model_file,
    }


def published(data_file: Path, name: str) -> list[str]:
    """The published tables of the data's README.md, each with its header, with the rows of
    this data set only (the ID-only models; those with item attributes, in two protocols)."""
    readme = data_file.parent / "README.md"
    if not readme.is_file():
        return []
    tables: list[list[str]] = [[]]
    for line in readme.read_text().splitlines():
        if line.startswith("| "):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    lines = []
    for table in tables:
        if len(table) < 3 or not table[0].startswith("| data |"):
            continue
        rows = [r for r in table[2:] if name.startswith(r.split("|")[1].strip())]
        if rows:
            lines += ["", *table[:2], *rows]
    return lines


def summary(runs: list[dict], name: str, published_rows: list[str]) -> str:
    """Mean +- sd over seeds per (label, model, loss), both protocols."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["label"], r["model"], r["loss"])].append(r)
    head = "| setting | model | loss | " + " | ".join(f"{m.upper()}" for m in METRICS)
    rule = "| --- | --- | --- |" + " ---: |" * len(METRICS)
    lines = [f"### {name}: test, the literature's protocol (earlier items removed)", ""]
    lines += [head + " | valid NDCG@10 |", rule + " ---: |"]
    for (label, model, loss), rs in groups.items():
        cells = [mean_sd([r["test_papers"][m] for r in rs]) for m in METRICS]
        valid = mean_sd([r["best_valid"]["ndcg@10"] for r in rs])
        lines.append(f"| {label} | {model} | {loss} | " + " | ".join(cells) + f" | {valid} |")
    lines += ["", f"### {name}: test, RecBole's protocol (earlier items kept)", ""]
    lines += [head + " |", rule]
    for (label, model, loss), rs in groups.items():
        cells = [mean_sd([r["test_recbole"][m] for r in rs]) for m in METRICS]
        lines.append(f"| {label} | {model} | {loss} | " + " | ".join(cells) + " |")
    lines += ["", f"### {name}: cost", ""]
    lines += [
        "| setting | model | loss | epochs | best epoch | minutes to best | s / epoch "
        "| s / validation | peak MiB | threads |",
        "| --- | --- | --- |" + " ---: |" * 7,
    ]
    for (label, model, loss), rs in groups.items():
        cells = [
            mean_sd([r["epochs"] for r in rs], 1),
            mean_sd([r["best_epoch"] for r in rs], 1),
            mean_sd([r["seconds_to_best"] / 60 for r in rs], 1),
            mean_sd([r["s_per_epoch"] for r in rs], 1),
            mean_sd([r["s_per_eval"] for r in rs], 1),
            mean_sd([r["peak_rss_mib"] for r in rs], 0),
            ", ".join(sorted({str(r["threads"]) for r in rs})),
        ]
        lines.append(f"| {label} | {model} | {loss} | " + " | ".join(cells) + " |")
    if published_rows:
        lines += ["", f"### {name}: published test results (the data's README)"]
        lines += published_rows
    return "\n".join(lines)


def plot(runs: list[dict], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours: dict[tuple, str] = {}
    for r in runs:
        key = (r["label"], r["model"], r["loss"])
        colour = colours.setdefault(key, f"C{len(colours) % 10}")
        t = [p[0] / 60 for p in r["curve"]]
        ax.plot(t, [p[1] for p in r["curve"]], color=colour, lw=1, alpha=0.8)
    for key, colour in colours.items():
        ax.plot([], [], color=colour, label=" ".join(key))
    ax.set_xlabel("wall-clock minutes (training and validation)")
    ax.set_ylabel("valid NDCG@10 (earlier items removed)")
    ax.set_title(f"{name}: every run, every validation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a 'user item item ...' file")
    parser.add_argument("--attributes", default=None, help="item -> attributes JSON: features on")
    parser.add_argument("--models", nargs="+", default=["SASRec", "LightSANs"])
    parser.add_argument("--losses", nargs="+", default=["CE", "SSM256", "SSM4096", "gBCE"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="every run")
    parser.add_argument("--config_files", nargs="*", default=[], help="yaml files, every run")
    parser.add_argument("--label", default=None, help="the setting's name in the tables")
    parser.add_argument("--max_epochs", type=int, default=400, help="cap on early stopping")
    add_output_options(parser, "folder for runs.jsonl, summary.md, curves.png")
    parser.add_argument("--data_dir", default=str(Path(tempfile.gettempdir()) / "public_data"))
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "DATASET", "JSON"))
    args = parser.parse_args(argv)

    if args.worker:
        model, dataset, payload = args.worker
        options = json.loads(payload)
        result = run_one(model, dataset, options["config_dict"], options["config_files"])
        print(json.dumps(result))
        return

    from recbole_sasrec import convert

    data = Path(args.data)
    name = data.stem
    # with --replace, the runs a record there holds are reused (a search resumed)
    names = ["runs.jsonl", "summary.md", "curves.png"]
    out = output_folder(f"public_data-{name}", args.out, names, args.replace)
    convert(str(data), args.data_dir, name, "sequences", replace=True)
    item_file = Path(args.data_dir) / name / f"{name}.item"
    if args.attributes:
        convert(args.attributes, args.data_dir, name, "attributes", replace=True, report=print)
    else:
        item_file.unlink(missing_ok=True)  # a run without attributes reads no .item file
    record = out / "runs.jsonl"
    sets = parse_sets(args.set)
    label = args.label or (" ".join(args.set + args.config_files) or "defaults")
    done = {}
    if record.exists():
        for line in record.read_text().splitlines():
            r = json.loads(line)
            done[r["key"]] = r
    command = "python -m benchmarks.public_data " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{date.today()}, {machine()}\n{command}", flush=True)
    for model in args.models:
        for loss in args.losses:
            for seed in args.seeds:
                config_dict = {
                    "data_path": args.data_dir,
                    "epochs": args.max_epochs,
                    **PROTOCOL,
                    **loss_keys(loss),
                    **({"selected_features": ["attributes"]} if args.attributes else {}),
                    **sets,
                    "seed": seed,
                }
                # a config file by its content too: a run is reused only with the same keys
                files = [
                    [f, hashlib.sha256(Path(f).read_bytes()).hexdigest()] for f in args.config_files
                ]
                context = [model, name, config_dict, files]
                key = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16]
                if key not in done:
                    options = {"config_dict": config_dict, "config_files": args.config_files}
                    r = run_worker(
                        "benchmarks.public_data",
                        ["--data", args.data, "--worker", model, name, json.dumps(options)],
                    )
                    r.update(key=key, label=label, loss=loss, data=name, date=str(date.today()))
                    r.update(command=command, machine=machine(), settings=config_dict)
                    done[key] = r
                    with open(record, "a") as f:
                        f.write(json.dumps(r) + "\n")
                r = done[key]
                print(
                    f"{model} {loss} seed {seed}: valid {r['best_valid']['ndcg@10']:.4f}, test "
                    f"NDCG@10 {r['test_papers']['ndcg@10']:.4f} (RecBole's protocol "
                    f"{r['test_recbole']['ndcg@10']:.4f}), best epoch {r['best_epoch']} of "
                    f"{r['epochs']}, {r['seconds_to_best'] / 60:.1f} min to best",
                    flush=True,
                )
    runs = list(done.values())
    table = summary(runs, name, published(data, name))
    (out / "summary.md").write_text(table + "\n")
    plot(runs, out / "curves.png", name)
    print("\n" + table)


if __name__ == "__main__":
    main()
