"""Retraining from yesterday's model (``init_from``) against retraining from scratch.

    python -m benchmarks.warm_start --data ../shared/data/Beauty.txt \\
        --attributes ../shared/data/Beauty_item2attributes.json --models SASRec --seeds 2020 \\
        --config_files presets/short-histories.yaml presets/attributes.yaml

Yesterday's log is today's cut at ``--cut`` (0.95) of its interactions. The literature's files
carry no timestamps (a user's items are in order, the users are not), so the cut goes by
position: interaction j of a user with n items is at 'time' (j + 1) / n, and the newest
``1 - cut`` of all interactions by that time are removed (ties, e.g. every user's last item at
1, broken at random with the seed). On Beauty and Sports that takes the last item of part of
the users: yesterday lacks their newest purchases. The logs are 5-core, so nearly every user and
item is in yesterday's log already; new items and users are the tests' part
(tests/integration/test_warm_start.py).

Per (model, seed), each in its own process as ``benchmarks.public_data`` trains: yesterday's
model from scratch on the cut log; today's from scratch on the whole log; today's started from
yesterday's best checkpoint (``init_from``). Every run to RecBole's early stopping on valid
NDCG@10 under the literature's protocol, tested under both. Reported: the minutes each of today's
runs takes to reach the from-scratch run's best valid NDCG@10 (training and validation time,
from the first epoch: data loading is the same for both and left out), and where each ends.
``--warm_set KEY=VALUE`` changes the warm run alone (e.g. its ``learning_rate``: a model that
is already trained may want smaller steps than one that starts from random weights); each
setting is a warm run of its own beside the others, yesterday's and the scratch run reused.
Runs go to ``<out>/runs.jsonl`` as they finish (reused when the record holds them), tables to
``<out>/summary.md``, valid NDCG@10 against minutes to ``<out>/curves.png``; ``--tables_only``
rewrites those two from the record for every model and seed named (runs of several calls).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

from recbole_sasrec.integration.warm_start import PERTURB, SHRINK

from .common import (
    add_output_options,
    machine,
    mean_sd,
    output_folder,
    parse_sets,
    read_log,
    run_worker,
    write_log,
)
from .public_data import PROTOCOL


def cut_log(log: dict[str, list[str]], keep: float, seed: int) -> dict[str, list[str]]:
    """Each user's oldest items, the newest ``1 - keep`` of all interactions removed by
    position in the user's history ((j + 1) / n; ties at random with ``seed``)."""
    users = list(log)
    lengths = np.array([len(log[u]) for u in users])
    owner = np.repeat(np.arange(len(users)), lengths)  # [M]
    position = np.concatenate([np.arange(1, n + 1) / n for n in lengths])  # [M]
    tie = np.random.default_rng(seed).random(len(owner))
    order = np.lexsort((tie, position))  # oldest first
    removed = order[round(keep * len(owner)) :]
    cut = np.bincount(owner[removed], minlength=len(users))  # [U] items removed per user
    return {u: log[u][: n - c] for u, n, c in zip(users, lengths, cut, strict=True) if n - c > 0}


# (run, the log it trains on), in order: yesterday's first, which today's warm run starts from
RUNS = (("yesterday", "cut"), ("scratch", "full"), ("warm", "full"))


def reached(curve: list[list[float]], score: float) -> float | None:
    """Seconds at which ``curve`` ((seconds, valid NDCG@10) pairs) first reaches ``score``."""
    return next((t for t, v in curve if v >= score), None)


def warm_runs(runs: dict[str, dict], model: str, seed: int) -> dict[str, dict]:
    """The warm runs of (model, seed): their ``--warm_set`` (or 'as configured', with the
    shrink and perturb it ran with) -> record."""
    prefix = f"{model}-{seed}-warm"
    return {
        " ".join(r.get("warm_set", [])) or _as_configured(r["settings"]): r
        for key, r in runs.items()
        if key == prefix or key.startswith(prefix + " ")
    }


def _as_configured(settings: dict) -> str:
    if "init_shrink" not in settings:  # recorded while the default was a copy
        return "as configured (then a plain copy: init_shrink=1.0 init_perturb=0.0)"
    return (
        f"as configured (init_shrink={settings['init_shrink']} "
        f"init_perturb={settings['init_perturb']})"
    )


def summary(runs: dict[str, dict], models: list[str], seeds: list[int], header: str) -> str:
    lines = [
        header,
        "",
        "| model | seed | warm run's keys | scratch: best valid, min to best | warm: min to "
        "scratch's best (share) | warm: best valid, min to best | test NDCG@10 scratch / warm "
        "(literature's) | (RecBole's) | yesterday: best valid, min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    shares = defaultdict(list)
    for model in models:
        for seed in seeds:
            s, y = (runs.get(f"{model}-{seed}-{name}") for name in ("scratch", "yesterday"))
            if s is None or y is None:
                continue
            target = s["best_valid"]["ndcg@10"]
            for keys, w in warm_runs(runs, model, seed).items():
                t = reached(w["curve"], target)
                share = None if t is None else t / s["seconds_to_best"]
                shares[model, keys].append(share)
                when = "not reached" if t is None else f"{t / 60:.1f} ({share:.0%})"
                lines.append(
                    f"| {model} | {seed} | {keys} | {target:.4f}, {s['seconds_to_best'] / 60:.1f} "
                    f"| {when} | {w['best_valid']['ndcg@10']:.4f}, "
                    f"{w['seconds_to_best'] / 60:.1f} | {s['test_papers']['ndcg@10']:.4f} / "
                    f"{w['test_papers']['ndcg@10']:.4f} | {s['test_recbole']['ndcg@10']:.4f} / "
                    f"{w['test_recbole']['ndcg@10']:.4f} | {y['best_valid']['ndcg@10']:.4f}, "
                    f"{y['seconds_to_best'] / 60:.1f} |"
                )
    lines.append("")
    for (model, keys), values in shares.items():
        reached_ = [v for v in values if v is not None]
        lines.append(
            f"{model}, warm run {keys}: reached the from-scratch best in "
            f"{mean_sd([100 * v for v in reached_], 0)} % of the scratch run's time to best "
            f"({len(reached_)} of {len(values)} seeds reached it)"
        )
    return "\n".join(lines)


def plot(runs: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, r in sorted(runs.items()):
        if "-yesterday" in key:  # validated on another log
            continue
        minutes = [t / 60 for t, _ in r["curve"]]
        ax.plot(minutes, [v for _, v in r["curve"]], alpha=0.8, label=key)
    ax.set_xlabel("minutes of training and validation")
    ax.set_ylabel("valid NDCG@10 (literature's protocol)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a 'user item item ...' file")
    parser.add_argument("--attributes", default=None, help="item -> attributes JSON: features on")
    parser.add_argument("--models", nargs="+", default=["SASRec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 1, 2])
    parser.add_argument("--cut", type=float, default=0.95, help="share of the log yesterday had")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="every run")
    parser.add_argument(
        "--warm_set", nargs="*", default=[], metavar="KEY=VALUE", help="the warm run only"
    )
    parser.add_argument("--config_files", nargs="*", default=[], help="yaml files, every run")
    parser.add_argument("--max_epochs", type=int, default=400, help="cap on early stopping")
    add_output_options(parser, "folder for runs.jsonl, summary.md, curves.png")
    parser.add_argument("--data_dir", default=str(Path(tempfile.gettempdir()) / "warm_start"))
    parser.add_argument(
        "--tables_only",
        action="store_true",
        help="write summary.md and curves.png from <out>/runs.jsonl for --models and --seeds "
        "(every warm run recorded), training nothing",
    )
    args = parser.parse_args(argv)
    if not 0 < args.cut < 1:
        sys.exit(f"--cut {args.cut}: allowed: a share in (0, 1), e.g. 0.95")

    from recbole_sasrec import convert

    data, name = Path(args.data), Path(args.data).stem
    out = output_folder(f"warm_start-{name}", args.out, ["runs.jsonl", "summary.md"], args.replace)
    record = out / "runs.jsonl"
    runs = {}
    if record.exists():
        runs = {r["run"]: r for r in map(json.loads, record.read_text().splitlines())}
    command = "python -m benchmarks.warm_start " + " ".join(sys.argv[1:] if argv is None else argv)
    header = f"{date.today()}, {machine()}\n\n{command}"
    print(header, flush=True)
    log, folder = read_log(data), Path(args.data_dir)
    sets = parse_sets(args.set)
    for seed in [] if args.tables_only else args.seeds:
        names = {"full": name, "cut": f"{name}-cut{round(100 * args.cut)}-{seed}"}
        cut = cut_log(log, args.cut, seed)
        kept = sum(map(len, cut.values()))
        print(
            f"seed {seed}: yesterday's log {kept} of {sum(map(len, log.values()))} interactions, "
            f"{len(cut)} of {len(log)} users",
            flush=True,
        )
        for which, lines in (("full", log), ("cut", cut)):
            written = write_log(lines, folder / f"{names[which]}.txt")
            convert(str(written), str(folder), names[which], "sequences", replace=True)
            if args.attributes:
                convert(args.attributes, str(folder), names[which], "attributes", replace=True)
        for model in args.models:
            for run, which in RUNS:
                key = f"{model}-{seed}-{run}"
                if run == "warm" and args.warm_set:
                    key += " " + " ".join(args.warm_set)
                config_dict = {
                    "data_path": str(folder),
                    "checkpoint_dir": str(folder / "saved" / key),
                    "epochs": args.max_epochs,
                    **PROTOCOL,
                    **({"selected_features": ["attributes"]} if args.attributes else {}),
                    **sets,
                    "seed": seed,
                }
                if run == "warm":  # the package's shrink and perturb recorded, unless set
                    config_dict["init_from"] = runs[f"{model}-{seed}-yesterday"]["model_file"]
                    config_dict.update(init_shrink=SHRINK, init_perturb=PERTURB)
                    config_dict.update(parse_sets(args.warm_set))
                files = [
                    [f, hashlib.sha256(Path(f).read_bytes()).hexdigest()] for f in args.config_files
                ]
                context = [model, names[which], config_dict, files, args.cut]
                digest = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()
                if runs.get(key, {}).get("digest") != digest[:16]:
                    options = {"config_dict": config_dict, "config_files": args.config_files}
                    r = run_worker(
                        "benchmarks.public_data",
                        ["--data", str(data), "--worker", model, names[which], json.dumps(options)],
                    )
                    r.update(run=key, digest=digest[:16], date=str(date.today()), command=command)
                    r.update(warm_set=args.warm_set if run == "warm" else [])
                    r.update(machine=machine(), settings=config_dict, data=names[which])
                    runs[key] = r
                    with open(record, "a") as f:
                        f.write(json.dumps(r) + "\n")
                r = runs[key]
                print(
                    f"{key}: valid {r['best_valid']['ndcg@10']:.4f} at epoch {r['best_epoch']} of "
                    f"{r['epochs']}, {r['seconds_to_best'] / 60:.1f} min to best; test NDCG@10 "
                    f"{r['test_papers']['ndcg@10']:.4f}",
                    flush=True,
                )
    table = summary(runs, args.models, args.seeds, header)
    (out / "summary.md").write_text(table + "\n")
    plot(runs, out / "curves.png", f"{name}: from scratch and from yesterday's model")
    print("\n" + table)


if __name__ == "__main__":
    main()
