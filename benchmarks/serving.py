"""Serving an exported model: latency at batch 1, throughput at batch 256, memory and load time,
for eager PyTorch, TorchScript and ONNX Runtime, exact and approximate top-10.

    python -m benchmarks.serving --data ../shared/data/Beauty.txt
    python -m benchmarks.serving --model-file saved/SASRec-....pth --items 12101 200000 1000000

The model (hidden 64, 2 blocks, L 50) is trained for ``--epochs`` on the data file (the
literature's one-line-per-user format) unless ``--model-file`` is given; the sessions are the
most recent items of the log's users. Catalogues larger than the model's are synthetic: rows of
its trained item table drawn at random plus Gaussian noise of ``--noise`` times each
dimension's spread, so that they keep the trained table's geometry (approximate search is easy
on clustered tables and hard on isotropic noise, so the choice changes its recall). Every
figure is the median over ``--repeats`` timed requests after a warm-up; threads as given.
Writes results/serving/serving.{json,md} and a plot of latency against catalogue size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from recbole_sasrec.inference.checks import sha256

from .common import add_output_options, machine, output_folder, recent_sessions, rss_mib

TOP_K = 10


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def synthetic_items(items: np.ndarray, n: int, noise: float, seed: int = 0) -> np.ndarray:
    """The trained table extended to n rows: trained rows drawn at random plus noise x each
    dimension's spread (the trained rows, the sessions' items, stay first)."""
    if n <= len(items):
        return items[:n]
    rng = np.random.default_rng(seed)
    rows = items[1 + rng.integers(0, len(items) - 1, n - len(items))]
    spread = items[1:].std(axis=0)
    extra = rows + rng.normal(size=rows.shape).astype(np.float32) * noise * spread
    return np.concatenate([items, extra]).astype(np.float32)


def catalogue(folder: Path, n: int, noise: float) -> Path:
    """An exported folder whose table has n rows (``synthetic_items``), beside ``folder``."""
    items = np.load(folder / "items.npy")
    if n <= len(items):
        return folder
    bigger = folder.with_name(f"{folder.name}-{n}")
    bigger.mkdir(exist_ok=True)
    for name in ("encoder.onnx", "sessions.json", "bench.json", "encoder.pt"):
        (bigger / name).write_bytes((folder / name).read_bytes())
    np.save(bigger / "items.npy", synthetic_items(items, n, noise))
    tokens = json.loads((folder / "item_tokens.json").read_text())
    tokens += [f"synthetic-{i}" for i in range(len(tokens), n)]
    (bigger / "item_tokens.json").write_text(json.dumps(tokens))
    # the larger table and tokens are this folder's own: their hashes, as an export records them
    metadata = json.loads((folder / "metadata.json").read_text())
    for name in ("items.npy", "item_tokens.json"):
        metadata["files"][name] = sha256(bigger / name)
    (bigger / "metadata.json").write_text(json.dumps(metadata, indent=1))
    return bigger


def worker(folder: str, threads: int, backend: str, repeats: int):
    """One (backend, threads, catalogue) in a fresh process: its latencies and memory."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(threads)
    before = rss_mib()
    import onnxruntime  # noqa: F401  (the runtime's own memory is not the artifact's)

    from recbole_sasrec.inference import topk
    from recbole_sasrec.inference.artifact import Artifact

    imported = rss_mib()
    start = time.perf_counter()
    artifact = Artifact.load(folder, threads=threads)
    load_seconds = time.perf_counter() - start
    loaded = rss_mib()
    items, n_items = artifact.items, len(artifact.items)
    sessions = json.loads((Path(folder) / "sessions.json").read_text())
    encode = artifact.encode
    if backend != "onnx":
        import torch

        torch.set_num_threads(threads)
        model = (
            torch.jit.load(str(Path(folder) / "encoder.pt")) if backend == "torchscript" else None
        )
        if backend == "eager":
            from recbole_sasrec import load_model

            model = load_model(json.loads((Path(folder) / "bench.json").read_text())["model_file"])[
                1
            ]

        @torch.no_grad()
        def encode(batch):
            ids, lengths = artifact.windows(batch)
            if backend == "torchscript":  # the exported encoder: the items' vectors in
                return model(torch.from_numpy(items[ids]), torch.from_numpy(lengths)).numpy()
            return model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()

    def request(batch, approximate=None):
        users = encode(batch)
        excluded = [artifact.item_ids(s) for s in batch]
        if approximate is not None:
            return approximate.search(users, TOP_K, excluded)
        return topk.exact(users, items, TOP_K, excluded)

    result = {"backend": backend, "threads": threads, "items": n_items}
    for _ in range(5):
        request(sessions[:1])
    times, encode_times = [], []
    for i in range(repeats):
        one = [sessions[i % len(sessions)]]
        t0 = time.perf_counter()
        users = encode(one)
        t1 = time.perf_counter()
        topk.exact(users, items, TOP_K, [artifact.item_ids(one[0])])
        times.append(time.perf_counter() - t0)
        encode_times.append(t1 - t0)
    result["p50_ms"], result["p99_ms"] = percentiles(times)
    result["encode_p50_ms"], _ = percentiles(encode_times)
    batch = sessions[:256]
    request(batch)
    t0 = time.perf_counter()
    for _ in range(3):
        request(batch)
    result["batch256_per_s"] = 3 * len(batch) / (time.perf_counter() - t0)
    if backend == "onnx":
        result["load_s"] = load_seconds
        result["artifact_mib"] = loaded - imported
        result["items_mib"] = items.nbytes / 2**20
        result["imports_mib"] = imported - before
        if n_items >= 200_000:  # approximate search, built here on the synthetic table
            approximate = topk.ApproximateIndex.build(items)
            times, hits = [], []
            for i in range(repeats):
                one = [sessions[i % len(sessions)]]
                users = encode(one)
                excluded = [artifact.item_ids(one[0])]
                t0 = time.perf_counter()
                found, _ = approximate.search(users, TOP_K, excluded)
                times.append(time.perf_counter() - t0)
                exact, _ = topk.exact(users, items, TOP_K, excluded)
                hits.append(len(set(found[0]) & set(exact[0])) / TOP_K)
            result["ann_search_p50_ms"], result["ann_search_p99_ms"] = percentiles(times)
            result["ann_recall@10"] = float(np.mean(hits))
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a 'user item item ...' file (trains a model)")
    parser.add_argument("--model-file", help="a checkpoint to export instead of training")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--items", type=int, nargs="+", default=[0, 200_000, 1_000_000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=["eager", "torchscript", "onnx"])
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=300)
    add_output_options(parser, "folder for serving.json, .md, .png")
    parser.add_argument("--worker", nargs=3)
    args = parser.parse_args(argv)
    if args.worker:
        folder, threads, backend = args.worker
        worker(folder, int(threads), backend, args.repeats)
        return
    names = ["serving.json", "serving.md", "serving.png"]
    out = output_folder("serving", args.out, names, args.replace)
    with tempfile.TemporaryDirectory(prefix="serving-") as scratch:
        tmp = Path(scratch)
        folder, model_file, sessions = prepare(args, tmp)
        rows = []
        for n_items in args.items:
            sized = catalogue(folder, n_items, args.noise)
            for threads in args.threads:
                for backend in args.backends:
                    flags = [str(sized), str(threads), backend]
                    done = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.serving",
                            "--repeats",
                            str(args.repeats),
                            "--worker",
                            *flags,
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if done.returncode:
                        sys.exit(done.stderr[-3000:])
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        header = f"{date.today()}, {machine()}; model {model_file}; {len(sessions)} sessions"
        (out / "serving.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
        (out / "serving.md").write_text(table(rows, header))
        plot(rows, out / "serving.png")
        print(table(rows, header))


def prepare(args, tmp: Path):
    """Train (or take) a model, export it with TorchScript beside, and pick the sessions."""
    import torch

    from recbole_sasrec import convert, export, load_model, run_recbole
    from recbole_sasrec.inference.export import Encoder

    model_file = args.model_file
    if model_file is None:
        data = Path(args.data)
        convert(str(data), str(tmp / "data"), data.stem, "sequences")
        config = {
            "data_path": str(tmp / "data"),
            "epochs": args.epochs,
            "show_progress": False,
            "checkpoint_dir": str(tmp / "saved"),
            "MAX_ITEM_LIST_LENGTH": 50,
            "preset": "none",  # the defaults its records ran with, whatever the log's shape
        }
        model_file = run_recbole("SASRec", data.stem, config_dict=config)["model_file"]
    folder = export(model_file, tmp / "artifact")
    _, model, dataset = load_model(model_file)
    ids = torch.randint(1, model.n_items, (2, 50))
    with torch.no_grad():
        vectors = model.eval().item_vectors()[ids]  # the exported encoder's input, [2, 50, D]
    traced = torch.jit.trace(Encoder(model).eval(), (vectors, torch.tensor([50, 3])))
    traced.save(str(folder / "encoder.pt"))
    sessions = recent_sessions(dataset, count=1000)
    (folder / "sessions.json").write_text(json.dumps(sessions))
    (folder / "bench.json").write_text(json.dumps({"model_file": str(model_file)}))
    return folder, model_file, sessions


def table(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| items | threads | backend | p50 ms | p99 ms | encoder p50 ms | "
        "batch 256 /s | ANN p50 ms | ANN recall@10 | load s | artifact MiB | table MiB |",
        "| ---: | ---: | --- |" + " ---: |" * 9,
    ]
    for r in rows:
        cells = [
            r.get(k)
            for k in (
                "p50_ms",
                "p99_ms",
                "encode_p50_ms",
                "batch256_per_s",
                "ann_search_p50_ms",
                "ann_recall@10",
                "load_s",
                "artifact_mib",
                "items_mib",
            )
        ]
        text = ["" if c is None else f"{c:.3f}" if c < 10 else f"{c:.0f}" for c in cells]
        lines.append(
            f"| {r['items']} | {r['threads']} | {r['backend']} | " + " | ".join(text) + " |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for backend in sorted({r["backend"] for r in rows}):
        for threads in sorted({r["threads"] for r in rows}):
            sel = [r for r in rows if r["backend"] == backend and r["threads"] == threads]
            ax.plot(
                [r["items"] for r in sel],
                [r["p50_ms"] for r in sel],
                marker="o",
                label=f"{backend}, {threads} thread(s), exact",
            )
    ann = [r for r in rows if "ann_search_p50_ms" in r]
    if ann:
        ax.plot(
            [r["items"] for r in ann],
            [r["ann_search_p50_ms"] for r in ann],
            "k--",
            marker="x",
            label="HNSW search alone",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("batch-1 latency p50, ms (encode + top-10)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
