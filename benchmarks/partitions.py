"""A log larger than one process should hold: ``prepare``'s cost, and memory per process when
each of N processes reads only its partitions (docs/usage.md, "Several machines").

    python -m benchmarks.partitions --sizes 10000000 20000000 40000000 --worlds 1 2 4 \
        --out results/partitions

Synthetic logs of the Amazon shape (``synthetic.py``: median user 6 items, a tail of hundreds;
``--items`` items). For each size, ``python -m recbole_sasrec prepare`` runs alone in a fresh
process (time, peak memory, as a user runs it). On the largest log (or each of
``--train_sizes``), N processes (``--worlds``) join one gloo group on this machine and each does
what ``run_recbole`` does: reads its partitions, builds its users' windows, validation and test
rows and the model, makes the allocator setting (``keep_freed_memory``), builds the trainer
(Adam as configured, DistributedDataParallel) and takes ``--steps`` steps of the trainer's own
loop over its batches; each reports its peak resident memory. N = 1 reads the whole ``.inter``
file (the path without partitions: the reference). Each result is appended to ``runs.jsonl``
under ``--out`` as it finishes (with ``--replace``, those already there are kept and not
rerun); the markdown table of them all is printed and written there at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from .common import (
    add_output_options,
    free_port,
    machine,
    output_folder,
    parse_sets,
    peak_rss_mib,
    rss_mib,
)

# preset: 'none': the property files' batches (these logs' short histories would get the
# short-histories preset's larger steps), as the one-process reference ran
KEYS = {"epochs": 1, "show_progress": False, "state": "WARNING", "eval_batch_size": 4096}
KEYS["preset"] = "none"


def make_log(root: Path, n: int, items: int) -> str:
    from .synthetic import SHAPES, draw_log, write_atomic_file

    name = f"amazon-{n}"
    if not (root / name / f"{name}.inter").is_file():
        user, item, stamp = draw_log(SHAPES["amazon"], interactions=n, items=items)
        write_atomic_file(root, name, user, item, stamp)
    return name


def prepare_cli(root: Path, name: str, out: Path, partitions: int) -> dict:
    """``python -m recbole_sasrec prepare`` as a user runs it, alone in a fresh process: its
    wall-clock and peak resident memory (``/usr/bin/time``-free: the wrapper's only child)."""
    command = [sys.executable, "-m", "recbole_sasrec", "prepare", "--data-path", str(root)]
    command += ["--dataset", name, "--out", str(out), "--partitions", str(partitions)]
    wrapper = (
        "import resource, subprocess, sys, time; start = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - start, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    shutil.rmtree(out / name, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True
    )
    seconds, peak = map(float, done.stdout.split())
    manifest = json.loads((out / name / "partitions.json").read_text())
    return {
        "seconds": seconds,
        "peak_mib": peak,
        "interactions": manifest["interactions"],
        "users": manifest["users"],
        "items": manifest["items"],
    }


class FirstSteps:
    """The first ``steps`` batches of a training loader, for the trainer's own epoch loop."""

    def __init__(self, loader, steps: int):
        self.loader, self.steps = loader, steps

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.steps)

    def __len__(self) -> int:
        return self.steps

    def __getattr__(self, name: str):  # shuffle, sampler: the loader's
        return getattr(self.__dict__["loader"], name)


def rank_worker(
    data_path: str, name: str, world: int, rank: int, port: int, steps: int, sets: dict
) -> dict:
    """One process of ``world`` as ``run_recbole`` runs it: the data and model it builds, the
    allocator setting it then makes, its trainer (Adam as configured, DistributedDataParallel
    when several), then ``steps`` steps of the trainer's own epoch loop."""
    import torch

    from recbole_sasrec import Config
    from recbole_sasrec.integration.allocator import apply_allocator_setting
    from recbole_sasrec.integration.distributed import leave
    from recbole_sasrec.integration.quick_start import prepare
    from recbole_sasrec.integration.trainer import get_trainer

    torch.set_num_threads(1)
    keys = dict(KEYS, data_path=data_path, **sets)
    if world > 1:
        keys.update(
            nproc=world,
            world_size=world,
            local_rank=rank,
            offset=0,
            init_method=f"tcp://127.0.0.1:{port}",
        )
    before = rss_mib()  # the interpreter with torch, RecBole and this package: every process's
    config = Config("SASRec", name, config_dict=keys)
    start = time.perf_counter()
    dataset, train, *_, model = prepare(config)
    built, after_data = time.perf_counter() - start, peak_rss_mib()
    apply_allocator_setting(config)  # as run_recbole makes it: once the data is loaded
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer._train_epoch(FirstSteps(train, steps), 0)
    table = sum(p.numel() for n, p in model.named_parameters() if "item" in n) * 4 / 2**20
    result = {
        "world": world,
        "rank": rank,
        "prepared": dataset.prepared is not None,
        "interactions": int(dataset.interactions_per_user().sum()),
        "windows": len(train._dataset),
        "build_s": built,
        "steps": steps,
        "before_data_mib": before,
        "peak_after_data_mib": after_data,
        "peak_mib": peak_rss_mib(),
        "item_table_mib": table,
    }
    leave(was_joined=False)
    return result


def launch(args_list: list[list[str]]) -> list[dict]:
    """Processes started together (one group), each's JSON line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.partitions", *a],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for a in args_list
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            sys.exit(f"worker failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def table(prep: list[dict], ranks: list[dict]) -> str:
    lines = [
        "| interactions | users | items | prepare s | s / M interactions | prepare peak MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in prep:
        per = r["seconds"] / (r["interactions"] / 1e6)
        lines.append(
            f"| {r['interactions']:,} | {r['users']:,} | {r['items']:,} | {r['seconds']:.1f} | "
            f"{per:.2f} | {r['peak_mib']:.0f} |"
        )
    lines += [
        "",
        "| log | processes | reads | rank | interactions | windows | MiB before data | "
        "peak MiB after data | peak MiB after steps | item table MiB |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ranks:
        reads = "its partitions" if r["prepared"] else "the whole .inter file"
        lines.append(
            f"| {r['size']:,} | {r['world']} | {reads} | {r['rank']} | {r['interactions']:,} | "
            f"{r['windows']:,} | {r.get('before_data_mib', float('nan')):.0f} | "
            f"{r['peak_after_data_mib']:.0f} | {r['peak_mib']:.0f} | "
            f"{r['item_table_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=[10_000_000, 20_000_000, 40_000_000]
    )
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--worlds", nargs="+", type=int, default=[4, 2, 1])
    parser.add_argument(
        "--train_sizes", nargs="*", type=int, default=None, help="default: the largest size"
    )
    parser.add_argument("--steps", type=int, default=10, help="training steps per process")
    parser.add_argument("--data", default="/tmp/partitions-bench", help="logs written here")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="every rank's")
    add_output_options(parser, "the folder of table.md and runs.jsonl")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        data_path, name, world, rank, port, steps, sets = args.worker[1:]
        given = (data_path, name, int(world), int(rank), int(port), int(steps), json.loads(sets))
        result = rank_worker(*given)
        print(json.dumps(result))
        return

    sets = json.dumps(parse_sets(args.set))
    out = output_folder("partitions", args.out, ["table.md", "runs.jsonl"], args.replace)
    root, prepared = Path(args.data) / "logs", Path(args.data) / "prepared"
    command = "python -m benchmarks.partitions " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{date.today()}, {machine()}\n{command}", flush=True)
    record = out / "runs.jsonl"
    done = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []

    def keep(row: dict) -> None:  # each result as it finishes
        row.update(date=str(date.today()), machine=machine(), command=command)
        done.append(row)
        with open(record, "a") as f:
            f.write(json.dumps(row) + "\n")

    for n in args.sizes:
        name = make_log(root, n, args.items)
        if not (prepared / name).is_dir() or not any(
            r["kind"] == "prepare" and r["interactions"] == n for r in done
        ):
            r = prepare_cli(root, name, prepared, args.partitions)
            keep(dict(r, kind="prepare"))
            print(f"prepare {n:,}: {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB", flush=True)
    for n in args.train_sizes or [max(args.sizes)]:
        name = make_log(root, n, args.items)
        for world in args.worlds:
            if any(r["kind"] == "ranks" and r["size"] == n and r["world"] == world for r in done):
                continue
            if world == 1:  # today's path: one process reading the whole file (the reference)
                runs = launch(
                    [["--worker", "rank", str(root), name, "1", "0", "0", f"{args.steps}", sets]]
                )
            else:
                port = free_port()
                runs = launch(
                    [
                        ["--worker", "rank", str(prepared), name, str(world), str(r), str(port)]
                        + [str(args.steps), sets]
                        for r in range(world)
                    ]
                )
            for r in runs:
                keep(dict(r, kind="ranks", size=n))
            peak = max(r["peak_mib"] for r in runs)
            print(f"{n:,}, {world} process(es): peak {peak:.0f} MiB a process", flush=True)
    latest = {r["interactions"]: r for r in done if r["kind"] == "prepare"}  # the last of each
    prep = [latest[n] for n in sorted(latest)]
    ranks = sorted(
        (r for r in done if r["kind"] == "ranks"), key=lambda r: (r["size"], -r["world"], r["rank"])
    )
    text = f"Measured {date.today()} on {machine()}.\nCommand: {command}\n\n{table(prep, ranks)}\n"
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
