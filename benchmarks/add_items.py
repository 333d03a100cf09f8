"""New items added to a loaded artifact: the time to add them, and batch-1 latency before and after.

    python -m benchmarks.add_items                       # ml-100k, genres and year, 10,000 items
    python -m benchmarks.add_items --ann                 # also with the approximate index
    python -m benchmarks.add_items --model-file saved/SASRec-....pth --new-items 50000

SASRec (L 50) is trained for ``--epochs`` on ml-100k with its genres and release year as item
attributes (``selected_features: ['class', 'release_year']``, ``item_id_dropout`` 0.3) unless
``--model-file`` names a checkpoint with attributes, then exported. The new items are
synthesised from the data's ``.item`` rows: each copies a random item's attributes, has one of
its tokens swapped for another known token of the field (half of them), and a share
``--unseen`` gets a token never seen in training besides (left out of its vector, as
``add_items`` documents). The timing runs in a fresh process: ``Artifact.add_items`` on the
``.item`` file (reading, token mapping, vectors, the index if loaded), ``--adds`` times, each on a
freshly loaded artifact; then batch-1 top-10 requests (sessions: users' 50 most recent items)
alternate between the artifact as exported and the one with the new items, ``--repeats`` each.
Writes ``add_items.md`` and ``add_items.json`` under ``--out`` (default: a new folder
results/runs/add_items-<time>/; an existing file only with ``--replace``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from .common import add_output_options, machine, output_folder, recent_sessions, run_worker

TOP_K = 10
FEATURES = ["class", "release_year"]
LOAD_COL = {
    "inter": ["user_id", "item_id", "rating", "timestamp"],
    "item": ["item_id", "class", "release_year"],
}


def synthesise(item_file: Path, fields: list[str], n: int, unseen: float, seed: int, out: Path):
    """``n`` new items written to ``out`` as a .item file of the item id and ``fields``, each a
    perturbed copy of a row of ``item_file`` that has a value in some field."""
    lines = item_file.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    names = [h.split(":")[0] for h in header]
    columns = [names.index("item_id")] + [names.index(f) for f in fields]
    seq = [header[c].endswith(":token_seq") for c in columns[1:]]
    rows = [[line.split("\t")[c] for c in columns[1:]] for line in lines[1:] if line]
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    known = [
        sorted({t for r in rows for t in (r[f].split() if seq[f] else [r[f]]) if t})
        for f in range(len(fields))
    ]
    rng = np.random.default_rng(seed)
    written = ["\t".join(header[c] for c in columns)]
    for i in range(n):
        cells = []
        for f, cell in enumerate(rows[rng.integers(len(rows))]):
            tokens = cell.split() if seq[f] else [cell]
            if tokens and tokens[0] and rng.random() < 0.5:  # one token swapped for a known one
                tokens[rng.integers(len(tokens))] = known[f][rng.integers(len(known[f]))]
            if seq[f] and rng.random() < unseen:  # and a token never seen in training
                tokens.append(f"unseen-{fields[f]}-{i % 50}")
            cells.append(" ".join(dict.fromkeys(tokens)) if seq[f] else tokens[0])
        written.append("\t".join([f"new-{i}", *cells]))
    out.write_text("\n".join(written) + "\n", encoding="utf-8")
    return out


def prepare(args, tmp: Path) -> tuple[Path, str, Path, Path]:
    """Train (or take) the model, export it, write the new items and the sessions."""
    from recbole_sasrec import export, load_model, run_recbole

    model_file = args.model_file
    if model_file is None:
        config = {
            "selected_features": FEATURES,
            "load_col": LOAD_COL,
            "item_id_dropout": 0.3,
            "epochs": args.epochs,
            "MAX_ITEM_LIST_LENGTH": 50,
            "show_progress": False,
            "checkpoint_dir": str(tmp / "saved"),
        }
        model_file = run_recbole("SASRec", "ml-100k", config_dict=config)["model_file"]
    config, _, dataset = load_model(model_file)
    fields = list(config["selected_features"] or [])
    if not fields:
        raise SystemExit(f"--model-file {model_file}: trained without selected_features")
    folder = export(model_file, tmp / "artifact", ann=args.ann)
    item_file = Path(config["data_path"]) / f"{config['dataset']}.item"
    items = synthesise(item_file, fields, args.new_items, args.unseen, args.seed, tmp / "new.item")
    sessions = recent_sessions(dataset)
    (tmp / "sessions.json").write_text(json.dumps(sessions))
    return folder, model_file, items, tmp / "sessions.json"


def worker(folder: str, items: str, sessions_file: str, mode: str, args) -> None:
    """The timings of one mode (exact or approximate top-k), in this fresh process."""
    import threadpoolctl

    from recbole_sasrec.inference.artifact import Artifact

    threadpoolctl.threadpool_limits(args.threads)
    approximate = mode == "approximate"
    sessions = json.loads(Path(sessions_file).read_text())

    def load():
        return Artifact.load(folder, threads=args.threads, approximate=approximate)

    adds = []
    for _ in range(args.adds):
        grown = load()
        start = time.perf_counter()
        added = grown.add_items(items)
        adds.append(time.perf_counter() - start)
    before = load()
    new = set(added)
    for artifact in (before, grown):  # warm-up
        for session in sessions[:5]:
            artifact.recommend(session, k=TOP_K)
    times = {"before": [], "after": []}
    with_new = 0
    for i in range(args.repeats):
        session = sessions[i % len(sessions)]
        pair = [("before", before), ("after", grown)]
        for name, artifact in pair if i % 2 == 0 else pair[::-1]:  # neither always first
            start = time.perf_counter()
            top = artifact.recommend(session, k=TOP_K)
            times[name].append(time.perf_counter() - start)
            with_new += name == "after" and any(t in new for t, _ in top)
    p50 = {name: 1000 * float(np.percentile(t, 50)) for name, t in times.items()}
    result = {
        "mode": mode,
        "items_before": len(before.tokens) - 1,
        "items_added": len(added),
        "add_s": statistics.median(adds),
        "add_s_all": adds,
        "p50_before_ms": p50["before"],
        "p50_after_ms": p50["after"],
        "with_new_share": with_new / args.repeats,
    }
    print(json.dumps(result))


def table(rows: list[dict], header: str, adds: int, repeats: int) -> str:
    lines = [
        header,
        "",
        f"| top-k | items | added | add_items (s, median of {adds}) | batch-1 p50 before (ms) "
        f"| after (ms) | after / before | requests with a new item in the top {TOP_K} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['items_before']} | {r['items_added']} | {r['add_s']:.3f} | "
            f"{r['p50_before_ms']:.3f} | {r['p50_after_ms']:.3f} | "
            f"{r['p50_after_ms'] / r['p50_before_ms']:.3f} | {r['with_new_share']:.1%} |"
        )
    lines.append("")
    lines.append(f"p50 over {repeats} requests each, before and after alternating.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-file", help="a checkpoint with item attributes (else trained)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--new-items", type=int, default=10_000)
    parser.add_argument("--unseen", type=float, default=0.2, help="share with an unseen token")
    parser.add_argument("--adds", type=int, default=5, help="timed additions")
    parser.add_argument("--repeats", type=int, default=1000, help="timed requests, each side")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ann", action="store_true", help="also with the approximate index")
    parser.add_argument("--seed", type=int, default=0)
    add_output_options(parser, "folder for add_items.md and add_items.json")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("new_items", "adds", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.worker:
        worker(*args.worker, args)
        return
    out = output_folder("add_items", args.out, ["add_items.md", "add_items.json"], args.replace)
    with tempfile.TemporaryDirectory(prefix="add-items-") as scratch:
        tmp = Path(scratch)
        folder, model_file, items, sessions = prepare(args, tmp)
        flags = ["--adds", str(args.adds), "--repeats", str(args.repeats)]
        flags += ["--threads", str(args.threads)]
        rows = []
        for mode in ["exact", "approximate"] if args.ann else ["exact"]:
            worker_args = [*flags, "--worker", str(folder), str(items), str(sessions), mode]
            rows.append(run_worker("benchmarks.add_items", worker_args))
            print(json.dumps(rows[-1]), flush=True)
        header = (
            f"{date.today()}, {machine()}, {args.threads} thread(s) for serving; model {model_file}; "
            f"{args.new_items} new items ({args.unseen:.0%} with an unseen token), seed {args.seed}"
        )
        (out / "add_items.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
        (out / "add_items.md").write_text(table(rows, header, args.adds, args.repeats))
        print(table(rows, header, args.adds, args.repeats))


if __name__ == "__main__":
    main()
