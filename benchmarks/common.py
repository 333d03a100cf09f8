"""What the benchmark scripts share: where a run writes (never over a committed result unless
told), the machine line, memory readings, ml-100k subsets, a timed trainer, workers in fresh
processes, and mean +- spread over seeds."""

from __future__ import annotations

import collections
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from recbole_sasrec.integration.inputs import parse_value  # noqa: F401  (re-exported for the scripts)

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
RUNS = Path("results") / "runs"  # a run's own folder by default (results/ holds committed ones)


def add_output_options(parser, what: str) -> None:
    """``--out`` (default: a new folder of this run) and ``--replace``."""
    parser.add_argument(
        "--out", default=None, help=f"{what} (default: a new folder results/runs/<script>-<time>/)"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="write over files of the same name already in --out (and reuse a record of "
        "finished runs there)",
    )


def output_folder(script: str, out: str | None, names: Iterable[str], replace: bool) -> Path:
    """The folder a run writes ``names`` into, made now, before any work: ``out``, or a new
    ``results/runs/<script>-<date>-<time>/``. Exits naming the files that already exist there,
    unless ``replace``: a committed result is never overwritten by a run that was not told to."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder, n = RUNS / f"{script}-{stamp}", 1
        while folder.exists():  # two runs in one second
            n += 1
            folder = RUNS / f"{script}-{stamp}-{n}"
    else:
        folder = Path(out)
    refuse_existing([folder / name for name in names], replace)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def output_file(script: str, out: str | None, name: str, replace: bool) -> Path:
    """A run's one output file: ``out``, or ``name`` in a new folder (``output_folder``)."""
    if out is None:
        return output_folder(script, None, [name], replace) / name
    path = Path(out)
    refuse_existing([path], replace)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def refuse_existing(paths: Iterable[Path], replace: bool) -> None:
    """``sys.exit`` naming those of ``paths`` that exist, unless ``replace``."""
    there = [str(p) for p in paths if p.exists()]
    if there and not replace:
        sys.exit(
            f"error: {', '.join(there)} already exist(s) (a committed result?); allowed: --out "
            f"another folder or file, or --replace to write over it"
        )


def machine() -> str:
    """'2 cores, AMD EPYC ..., torch 2.13.0+cpu, 2 threads' (and the GPU, if one is used)."""
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads{gpu}"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a process group's rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_sets(items: list[str]) -> dict:
    """['hidden_size=32', 'loss_type=BCE'] -> {'hidden_size': 32, 'loss_type': 'BCE'}."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--set {item!r}: expected KEY=VALUE")
        pairs[key] = parse_value(value)
    return pairs


def ml100k_rows() -> list[list[str]]:
    """ml-100k's interactions as shipped in the recbole wheel: [user, item, rating, timestamp]."""
    import recbole

    source = Path(recbole.__path__[0]) / "dataset_example" / "ml-100k" / "ml-100k.inter"
    return [line.split("\t") for line in source.read_text().splitlines()[1:]]


def read_log(path: Path) -> dict[str, list[str]]:
    """A 'user item item ...' file (the literature's format): user -> item tokens, oldest first."""
    log = {}
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        fields = line.split()
        if fields:
            log[fields[0]] = fields[1:]
    return log


def write_log(log: dict[str, list[str]], path: Path) -> Path:
    """``log`` (user -> item tokens) as a 'user item item ...' file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{user} {' '.join(items)}\n" for user, items in log.items()))
    return path


def recent_sessions(dataset, length: int = 50, count: int | None = None) -> list[list[str]]:
    """Each user's ``length`` most recent items of a RecBole data set, as item tokens, oldest
    first; ``count``: that many users drawn at random (seed 0), else every user in id order."""
    tokens = dataset.field2id_token[dataset.iid_field]
    frame = dataset.inter_feat
    users = frame[dataset.uid_field].to_numpy()
    order = np.lexsort((frame[dataset.time_field].to_numpy(), users))
    items, users = frame[dataset.iid_field].to_numpy()[order], users[order]
    ends = np.flatnonzero(np.r_[users[1:] != users[:-1], True]) + 1
    starts = np.r_[0, ends[:-1]]
    picked = range(len(ends))
    if count is not None:
        rng = np.random.default_rng(0)
        picked = rng.choice(len(ends), size=min(count, len(ends)), replace=False)
    return [tokens[items[max(starts[u], ends[u] - length) : ends[u]]].tolist() for u in picked]


def write_first_users(root: Path, users: int) -> str:
    """ml-100k restricted to its first ``users`` user ids (1..users), every interaction kept."""
    name = f"ml-100k-first{users}"
    (root / name).mkdir(parents=True, exist_ok=True)
    with open(root / name / f"{name}.inter", "w") as f:
        f.write(INTER_HEADER)
        for user, item, _, stamp in ml100k_rows():
            if int(user) <= users:
                f.write(f"{user}\t{item}\t{stamp}\n")
    return name


PROGRESS = "progress: "  # a worker's stderr lines that run_worker shows as they come


def timed_trainer(base: type, progress: str | None = None) -> type:
    """The model's trainer, recording how long each training and evaluation pass takes and the
    valid metrics after each (with the wall-clock seconds since ``started``). With ``progress``
    (a metric, e.g. 'ndcg@10'), a line on stderr after each validation."""

    class Timed(base):
        def __init__(self, config, model):
            super().__init__(config, model)
            self.train_seconds, self.eval_seconds, self.curve = [], [], []
            self.started = time.perf_counter()

        def _train_epoch(self, *args, **kwargs):
            start = time.perf_counter()
            loss = super()._train_epoch(*args, **kwargs)
            self.train_seconds.append(time.perf_counter() - start)
            return loss

        def _valid_epoch(self, *args, **kwargs):
            start = time.perf_counter()
            score, result = super()._valid_epoch(*args, **kwargs)
            now = time.perf_counter()
            self.eval_seconds.append(now - start)
            self.curve.append((now - self.started, dict(result)))
            if progress:
                scores = [r[progress] for _, r in self.curve]
                best = scores.index(max(scores))
                print(
                    f"{PROGRESS}epoch {len(self.train_seconds)}: valid {progress} "
                    f"{result[progress]:.4f} (best {scores[best]:.4f} at validation {best + 1}), "
                    f"{self.train_seconds[-1]:.1f} s training, {(now - self.started) / 60:.1f} min",
                    file=sys.stderr,
                    flush=True,
                )
            return score, result

    return Timed


def run_worker(module: str, args: list[str]) -> dict:
    """``python -m <module> <args>`` in a fresh process (its peak memory its own); the JSON on
    its last line of output. Its progress lines (``PROGRESS``) are shown as they come; exits with
    the worker's error if it fails."""
    # stdout to a file: a full pipe would block the worker while stderr is read here
    with tempfile.TemporaryFile("w+") as out:
        with subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.PIPE, text=True
        ) as worker:
            tail = collections.deque(maxlen=200)  # the stderr a failure is reported with
            for line in worker.stderr:
                if line.startswith(PROGRESS):
                    print("  " + line[len(PROGRESS) :], end="", file=sys.stderr, flush=True)
                else:
                    tail.append(line)
        out.seek(0)
        stdout = out.read()
    if worker.returncode:
        sys.exit(f"{module} {' '.join(args)} failed:\n{''.join(tail)[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def mean_sd(values: list[float], digits: int = 4) -> str:
    """'0.0561 +- 0.0021 (3)': mean, sample standard deviation and count ('0.0561 (1)' alone)."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1)"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f} ({len(values)})"
