"""A prepared log against the same log read whole, trained in 1 and N processes: the metrics
(the same to the last digit for a fixed seed and world size) and the training time per epoch;
with ``--old``, today's distributed path of an earlier checkout beside them, in one run.

    git worktree add /tmp/old 61cbc5f
    python -m benchmarks.prepared_runs --dataset ml-100k --nprocs 1 2 --epochs 5 --old /tmp/old \
        --out results/partitions/ml-100k

Every run: SASRec, the package's defaults, a fixed seed and ``--epochs`` epochs without early
stopping, validation after each; each process 1 thread (``--threads``). Prints a markdown table
and writes it with the JSON rows under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from recbole_sasrec.data.partitions import prepare

from .common import add_output_options, free_port, machine, output_folder

WORKER = r"""
import json, sys, time
import torch
import recbole_sasrec
from recbole_sasrec import Config
from recbole_sasrec.integration.distributed import leave
from recbole_sasrec.integration.quick_start import prepare
from recbole_sasrec.integration.trainer import get_trainer
from benchmarks.common import timed_trainer

data_path, dataset, world, rank, port, epochs, seed, threads = sys.argv[1:9]
world, rank, threads = int(world), int(rank), int(threads)
torch.set_num_threads(threads)
keys = dict(data_path=data_path, epochs=int(epochs), stopping_step=1000, seed=int(seed),
            show_progress=False, state="WARNING", checkpoint_dir=sys.argv[9],
            load_col={"inter": ["user_id", "item_id", "timestamp"]})
if world > 1:
    keys.update(nproc=world, world_size=world, local_rank=rank, offset=0,
                init_method=f"tcp://127.0.0.1:{port}")
config = Config("SASRec", dataset, config_dict=keys)
_, train, valid, test, model = prepare(config)
trainer = timed_trainer(get_trainer(config["MODEL_TYPE"], config["model"]))(config, model)
trainer.fit(train, valid, saved=True, show_progress=False)
result = trainer.evaluate(test, load_best_model=True)
if rank == 0:
    print(json.dumps({"test": dict(result), "train_seconds": trainer.train_seconds,
                      "code": recbole_sasrec.__file__, "steps": len(train)}))
leave(was_joined=False)
"""


def train(code: str, data_path: str, dataset: str, world: int, args, saved: str) -> dict:
    """One training run of ``world`` processes with the package at ``code``."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(WORKER)
    here = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": f"{code}:{here}"}
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, f.name, data_path, dataset, str(world), str(rank), str(port)]
            + [str(args.epochs), str(args.seed), str(args.threads), saved],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in range(world)
    ]
    outs = [p.communicate() for p in procs]
    os.unlink(f.name)
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode:
            sys.exit(f"worker failed:\n{err[-3000:]}")
    return json.loads(outs[0][0].strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None, help="holds <dataset>/ (default: RecBole's)")
    parser.add_argument("--nprocs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--old", default=None, help="an earlier checkout: today's path beside")
    parser.add_argument("--work", default="/tmp/prepared_runs")
    add_output_options(parser, "the folder of table.md and runs.json")
    args = parser.parse_args(argv)
    out = output_folder("prepared_runs", args.out, ["table.md", "runs.json"], args.replace)
    command = "python -m benchmarks.prepared_runs " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print(f"{date.today()}, {machine()}\n{command}", flush=True)
    data_path = args.data_path
    if data_path is None:  # the copy of ml-100k inside the recbole wheel
        import recbole

        data_path = str(Path(recbole.__file__).parent / "dataset_example")
    work = Path(args.work)
    prepared = work / "prepared"
    prepare(data_path, args.dataset, prepared, args.partitions, replace=True, report=lambda s: None)
    here = str(Path(__file__).resolve().parent.parent)
    paths = [("log read whole", here, data_path), ("prepared log", here, str(prepared))]
    if args.old:
        paths.insert(0, ("log read whole, earlier checkout", args.old, data_path))
    rows = []
    for world in args.nprocs:
        for label, code, path in paths:
            saved = str(work / f"saved-{len(rows)}")
            r = train(code, path, args.dataset, world, args, saved)
            r.update(label=label, world=world)
            rows.append(r)
            per = sum(r["train_seconds"]) / len(r["train_seconds"])
            print(f"{world} x {label}: test {r['test']}, {per:.2f} s / epoch", flush=True)
    metrics = list(rows[0]["test"])
    lines = [
        "| processes | data | code | steps / epoch | s / epoch | " + " | ".join(metrics) + " |",
        "| ---: | --- | --- | ---: | ---: | " + " | ".join("---:" for _ in metrics) + " |",
    ]
    for r in rows:
        per = sum(r["train_seconds"]) / len(r["train_seconds"])
        code = "earlier" if "earlier" in r["label"] else "this"
        lines.append(
            f"| {r['world']} | {r['label'].split(',')[0]} | {code} | {r['steps']} | {per:.2f} | "
            + " | ".join(f"{r['test'][m]:.4f}" for m in metrics)
            + " |"
        )
    text = (
        f"Measured {date.today()} on {machine().rsplit(',', 1)[0]}, {args.threads} thread(s) "
        f"per process.\nCommand: {command}\n\n" + "\n".join(lines) + "\n"
    )
    (out / "table.md").write_text(text)
    (out / "runs.json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
