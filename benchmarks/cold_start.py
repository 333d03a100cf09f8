"""Cold start on a public log: a seeded share of the catalogue held out of training, then ranked
from its attributes alone.

    python -m benchmarks.cold_start --data ../shared/data/Beauty.txt \\
        --attributes ../shared/data/Beauty_item2attributes.json --models SASRec LightSANs \\
        --seeds 2020 1 2 --cold 0.1 \\
        --config_files presets/short-histories.yaml presets/attributes.yaml

Per seed:

* **Cold items**: ``round(cold * items)`` items of the catalogue drawn uniformly over items (not
  over interactions) with ``numpy.random.default_rng(seed)``, from the items in first-seen order.
* **Training log**: every user's line with the cold items removed (a user left with none is
  left out), converted with ``--format sequences`` and ``--format attributes`` (its ``.item``
  file holds the warm items only). The model trains and is selected on it as
  ``benchmarks.public_data`` trains (RecBole's leave-one-out of that log, valid NDCG@10 under
  the literature's protocol). Its own test split is not used: it holds each user's last warm
  item, so the real test target is never trained on, cold or warm.
* **Test rows**, the same for every method: each user of the full log with at least 2 items,
  input their whole history but the last item (cold items included), target their real last
  item, every item of the catalogue ranked (warm and cold). Under the literature's protocol the
  input's items are removed from the ranking (a target among them is a miss), under RecBole's
  they are kept. The metrics (NDCG@10, HR@10) are split by whether the target is a cold item.
* **The model**: the checkpoint, with the cold items added by ``Recommender.add_items`` from
  the attribute JSON (a vector from their attributes alone; tokens no warm item has are left
  out), ranks with ``Recommender.recommend``. A cold item none of whose attributes a warm item
  has gets no vector: it is never ranked (a miss as a target) and is left out of the inputs.
* **Popularity**: an item's count in the test inputs, cold items' interactions not counted (they
  score 0): every interaction before the users' targets, so at least what the model trained on.
* **Attribute overlap**: an item's mean cosine similarity of attribute sets (|A n B| /
  sqrt(|A| |B|)) to the user's ``--recent`` newest input items; an item without attributes
  scores 0. Ties (common in both baselines) count at their expected rank: the target is at
  each of its tied places with equal chance.
* **Ceiling**: the same model, keys and seed trained on the full log; its scores on the same
  rows, split on the same cold and warm targets. Over all users it must equal RecBole's own
  test figure of that run, which the summary shows beside it.

Every run (one per model, seed and training log; the baselines per seed) is appended to
``<out>/runs.jsonl`` as it finishes and not run again (the same data, keys, config files'
contents and held-out share); the tables (mean +- sample standard deviation over seeds, the
issue's ratios) go to ``<out>/summary.md``.
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
import scipy.sparse as sp

from .cold_boost import BOOSTS, choose, evaluate_boosts, plot, valid_rows
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
from .public_data import PROTOCOL, loss_keys, run_one

K = 10
RECENT = 10  # history items the attribute-overlap baseline compares with
# each protocol's name in the records -> whether the input's items leave the ranking
PROTOCOLS = {"papers": True, "recbole": False}


# ---- the held-out items and the logs -----------------------------------------------------------
def catalogue(log: dict[str, list[str]]) -> list[str]:
    """The log's items in first-seen order."""
    return list(dict.fromkeys(item for items in log.values() for item in items))


def choose_cold(items: list[str], share: float, seed: int) -> set[str]:
    """``round(share * len(items))`` items (at least 1), drawn uniformly over ``items``."""
    n = max(1, round(share * len(items)))
    rng = np.random.default_rng(seed)
    return {items[i] for i in rng.choice(len(items), size=n, replace=False)}


def without_cold(log: dict[str, list[str]], cold: set[str]) -> dict[str, list[str]]:
    """Every user's items but the cold ones; users left with none are left out."""
    reduced = {user: [i for i in items if i not in cold] for user, items in log.items()}
    return {user: items for user, items in reduced.items() if items}


def test_rows(log: dict[str, list[str]]) -> list[tuple[str, list[str], str]]:
    """(user, input: every item but the last, target: the last), users with 2 items or more."""
    return [(user, items[:-1], items[-1]) for user, items in log.items() if len(items) > 1]


def placeable(cold: set[str], warm: set[str], attributes: dict[str, list[str]]) -> list[str]:
    """The cold items with an attribute some warm item has: the ones ``add_items`` can place."""
    known = {a for item in warm for a in attributes.get(item, [])}
    return sorted(i for i in cold if any(a in known for a in attributes.get(i, [])))


# ---- metrics -----------------------------------------------------------------------------------
def tie_metrics(scores: np.ndarray, targets: np.ndarray, k: int = K) -> tuple[np.ndarray, ...]:
    """Expected NDCG@k and HR@k [B] of each row's target among scores [B, N] (-inf: not
    ranked), ties broken uniformly at random; a target scored -inf is a miss."""
    own = scores[np.arange(len(targets)), targets][:, None]  # [B, 1]
    above = (scores > own).sum(1)
    tied = (scores == own).sum(1)  # the target among them
    gain = np.r_[0.0, np.cumsum(1 / np.log2(np.arange(k) + 2))]  # [k + 1]: of the first p places
    lo, hi = np.minimum(above, k), np.minimum(above + tied, k)
    missed = np.isneginf(own[:, 0])
    ndcg = np.where(missed, 0.0, (gain[hi] - gain[lo]) / tied)
    hit = np.where(missed, 0.0, (hi - lo) / tied)
    return ndcg, hit


def by_target(ndcg: np.ndarray, hit: np.ndarray, cold_target: np.ndarray) -> dict:
    """Mean NDCG@10 and HR@10 over the users whose target is cold, warm, and all of them."""
    masks = {"cold": cold_target, "warm": ~cold_target, "all": np.ones_like(cold_target)}
    out = {}
    for group, mask in masks.items():
        n = int(mask.sum())
        out[group] = {
            "users": n,
            f"ndcg@{K}": float(ndcg[mask].mean()) if n else None,
            f"hit@{K}": float(hit[mask].mean()) if n else None,
        }
    return out


# ---- the baselines -----------------------------------------------------------------------------
def popularity_scores(rows, items: list[str], cold: set[str]) -> np.ndarray:
    """[N]: each item's count in the rows' inputs, cold items 0."""
    index = {item: i for i, item in enumerate(items)}
    seen = [index[i] for _, history, _ in rows for i in history if i not in cold]
    return np.bincount(seen, minlength=len(items)).astype(np.float64)


def attribute_matrix(items: list[str], attributes: dict[str, list[str]]) -> sp.csr_matrix:
    """[N, A]: each item's attribute set as a row of unit length (no attributes: a zero row)."""
    vocabulary: dict[str, int] = {}
    rows, cols = [], []
    for r, item in enumerate(items):
        for a in attributes.get(item, []):
            rows.append(r)
            cols.append(vocabulary.setdefault(a, len(vocabulary)))
    ones = np.ones(len(rows))
    matrix = sp.csr_matrix((ones, (rows, cols)), shape=(len(items), max(1, len(vocabulary))))
    norms = np.sqrt(np.asarray(matrix.sum(1)).ravel())  # binary rows: the norm is sqrt(|A|)
    return sp.diags(1 / np.maximum(norms, 1)) @ matrix


def overlap_scores(matrix: sp.csr_matrix, histories: list[list[int]], recent: int = RECENT):
    """[B, N]: each item's mean cosine similarity to the ``recent`` newest items of each
    history (item indices, oldest first)."""
    rows, cols, weights = [], [], []
    for b, history in enumerate(histories):
        newest = history[-recent:]
        rows += [b] * len(newest)
        cols += newest
        weights += [1 / len(newest)] * len(newest)
    mean = sp.csr_matrix((weights, (rows, cols)), shape=(len(histories), matrix.shape[0]))
    profiles = (mean @ matrix).toarray()  # [B, A]
    return np.asarray((matrix @ profiles.T).T)  # [B, N]


def baselines(rows, items, cold, attributes, recent: int = RECENT, batch: int = 512) -> dict:
    """Popularity and attribute overlap on the rows, both protocols: method -> metrics."""
    index = {item: i for i, item in enumerate(items)}
    histories = [[index[i] for i in history] for _, history, _ in rows]
    targets = np.array([index[t] for *_, t in rows])
    cold_target = np.array([t in cold for *_, t in rows])
    popularity = popularity_scores(rows, items, cold)
    matrix = attribute_matrix(items, attributes)
    scorers = {
        "popularity": lambda part: np.broadcast_to(popularity, (len(part), len(items))),
        "attributes": lambda part: overlap_scores(matrix, part, recent),
    }
    out = {}
    for method, scorer in scorers.items():
        out[method] = {}
        for protocol, exclude in PROTOCOLS.items():
            ndcg, hit = np.zeros(len(rows)), np.zeros(len(rows))
            for lo in range(0, len(rows), batch):
                part = histories[lo : lo + batch]
                scores = np.array(scorer(part), dtype=np.float64)  # [B, N], a copy
                if exclude:
                    sizes = [len(h) for h in part]
                    scores[np.repeat(np.arange(len(part)), sizes), np.concatenate(part)] = -np.inf
                ndcg[lo : lo + batch], hit[lo : lo + batch] = tie_metrics(
                    scores, targets[lo : lo + batch]
                )
            out[method][protocol] = by_target(ndcg, hit, cold_target)
    return out


# ---- the models (in a worker process each) ----------------------------------------------------
def evaluate_model(
    model_file: str, new_items: str | None, rows, cold: set[str], boost: float = 0.0
) -> dict:
    """The checkpoint (the cold items added from ``new_items``, the attribute JSON, with
    ``boost``) on the rows, both protocols: its top 10 by ``Recommender.recommend``."""
    from recbole_sasrec import Recommender

    rec = Recommender(model_file)
    added = rec.add_items(new_items, format="json", boost=boost) if new_items else []
    known = set(rec.dataset.field2id_token[rec.iid_field][1:].tolist()) | set(added)
    inputs = [[i for i in history if i in known] for _, history, _ in rows]
    targets = [t for *_, t in rows]
    cold_target = np.array([t in cold for t in targets])
    metrics = {}
    for protocol, exclude in PROTOCOLS.items():
        ndcg, hit = np.zeros(len(rows)), np.zeros(len(rows))
        for lo in range(0, len(rows), 512):
            part = [r for r in range(lo, min(lo + 512, len(rows))) if inputs[r]]
            tops = rec.recommend(
                item_sequences=[inputs[r] for r in part], k=K, exclude_seen=exclude
            )
            for r, top in zip(part, tops, strict=True):
                ranked = [x.item for x in top]
                if targets[r] in ranked:
                    ndcg[r], hit[r] = 1 / np.log2(ranked.index(targets[r]) + 2), 1.0
        metrics[protocol] = by_target(ndcg, hit, cold_target)
    return {"added": len(added), "without_input": sum(not s for s in inputs), "metrics": metrics}


def run_model(model: str, dataset: str, options: dict) -> dict:
    """Train as ``benchmarks.public_data`` does, then evaluate the best checkpoint."""
    folder = Path(options["config_dict"]["checkpoint_dir"])
    for stale in folder.glob("*.pth"):  # an earlier, unfinished run's
        stale.unlink()
    training = run_one(model, dataset, options["config_dict"], options["config_files"])
    (model_file,) = folder.glob("*.pth")
    test = json.loads(Path(options["rows"]).read_text())
    metrics = evaluate_model(str(model_file), options["new_items"], test["rows"], set(test["cold"]))
    return {"model_file": str(model_file), "training": training, **metrics}


def work(model: str, dataset: str, options: dict) -> dict:
    """A worker's task: the boosts of trained checkpoints evaluated, or a model trained."""
    if "boosts" in options:
        return evaluate_boosts(options)
    return run_model(model, dataset, options)


# ---- one seed's files --------------------------------------------------------------------------
def prepare_seed(log, attributes, share: float, seed: int, data_dir: Path, name: str) -> dict:
    """Write the seed's training log (converted), the cold items' attributes and the test rows;
    what was held out."""
    from recbole_sasrec import convert

    items = catalogue(log)
    cold = choose_cold(items, share, seed)
    reduced = without_cold(log, cold)
    dataset = f"{name}-cold{share:g}-seed{seed}"
    sequences = write_log(reduced, data_dir / "logs" / f"{dataset}.txt")
    convert(str(sequences), str(data_dir), dataset, "sequences", replace=True)
    attribute_file = data_dir / "logs" / f"{dataset}-attributes.json"
    attribute_file.write_text(json.dumps({i: attributes.get(i, []) for i in catalogue(reduced)}))
    convert(str(attribute_file), str(data_dir), dataset, "attributes", replace=True)
    placed = placeable(cold, set(items) - cold, attributes)
    new_items = data_dir / "logs" / f"{dataset}-cold-items.json"
    new_items.write_text(json.dumps({i: attributes[i] for i in placed}))
    rows = test_rows(log)
    rows_file = data_dir / "logs" / f"{dataset}-test.json"
    valid = valid_rows(log)
    rows_file.write_text(json.dumps({"rows": rows, "valid_rows": valid, "cold": sorted(cold)}))
    cold_targets = sum(t in cold for *_, t in rows)
    held = {
        "items": len(items),
        "cold_items": len(cold),
        "cold_items_placeable": len(placed),
        "interactions_removed": sum(len(v) for v in log.values())
        - sum(len(v) for v in reduced.values()),
        "users_without_training_items": len(log) - len(reduced),
        "test_users": len(rows),
        "cold_targets": cold_targets,
    }
    return {
        "dataset": dataset,
        "cold": cold,
        "rows": rows,
        "valid_rows": valid,
        "items": items,
        "rows_file": str(rows_file),
        "new_items": str(new_items) if placed else None,
        "held_out": held,
    }


# ---- the tables --------------------------------------------------------------------------------
def label(r: dict) -> str:
    if r["method"] == "popularity":
        return "popularity"
    if r["method"] == "attributes":
        return f"attribute overlap (last {r['recent']}, cosine)"
    if r["method"] == "cold":
        return f"{r['model']}, cold items added from attributes"
    if r["method"] == "boosts":
        return f"{r['model']}, cold items added, boost chosen on validation"
    return f"{r['model']} trained with every item (ceiling)"


def metric(r: dict, protocol: str, group: str, name: str = f"ndcg@{K}"):
    return r["metrics"][protocol][group][name]


def mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def ratio(a: float | None, b: float | None, target: float) -> str:
    if a is None or b is None or a == b == 0:
        return "n/a"
    value = a / b if b else float("inf")
    return f"{value:.2f} ({'met' if value >= target else 'not met'}; target >= {target:g})"


def summary(runs: list[dict], name: str, share: float, header: str) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    order = {"popularity": 0, "attributes": 1}  # then the models as they ran
    for r in sorted(runs, key=lambda r: order.get(r["method"], 2)):
        groups[label(r)].append(r)
    lines = [f"# Cold start on {name}: {share:.0%} of the catalogue held out of training", ""]
    lines += [header, ""]
    names = {"papers": "the literature's protocol (earlier items removed)"}
    names["recbole"] = "RecBole's protocol (earlier items kept)"
    for protocol, title in names.items():
        lines += [f"## Test, {title}", ""]
        lines += [
            "| method | cold NDCG@10 | cold HR@10 | warm NDCG@10 | warm HR@10 | all NDCG@10 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for what, rs in groups.items():
            cells = [
                mean_sd([metric(r, protocol, group, m) for r in rs])
                for group, m in [
                    ("cold", f"ndcg@{K}"),
                    ("cold", f"hit@{K}"),
                    ("warm", f"ndcg@{K}"),
                    ("warm", f"hit@{K}"),
                    ("all", f"ndcg@{K}"),
                ]
            ]
            lines.append(f"| {what} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## The issue's targets (the literature's protocol, ratios of the means over seeds)"]
    lines += [
        "",
        "| model | cold NDCG@10 / attribute overlap's | cold NDCG@10 / popularity's "
        "| warm NDCG@10 / the ceiling's |",
        "| --- | --- | --- | --- |",
    ]

    def of(method: str, model: str | None, group: str) -> float | None:
        picked = [r for r in runs if r["method"] == method and r["model"] == model]
        return mean([metric(r, "papers", group) for r in picked])

    for model in dict.fromkeys(r["model"] for r in runs if r["model"]):
        for method, what in (("cold", model), ("boosts", f"{model}, boost chosen on validation")):
            if not any(r["method"] == method and r["model"] == model for r in runs):
                continue
            cold = of(method, model, "cold")
            cells = [
                ratio(cold, of("attributes", None, "cold"), 1.5),
                ratio(cold, of("popularity", None, "cold"), 5),
                ratio(of(method, model, "warm"), of("full", model, "warm"), 0.95),
            ]
            lines.append(f"| {what} | " + " | ".join(cells) + " |")
    lines += boost_table([r for r in runs if r["method"] == "boosts"])
    lines += ["", "## Held out, per seed", ""]
    lines += [
        "| seed | items | cold items | placeable from attributes | interactions removed "
        "| users without training items | test users | cold targets |",
        "| ---: |" + " ---: |" * 7,
    ]
    for seed, held in sorted({r["seed"]: r["held_out"] for r in runs}.items()):
        lines.append(f"| {seed} | " + " | ".join(f"{v:,}" for v in held.values()) + " |")
    lines += ["", "## Training", ""]
    lines += [
        "| run | epochs | best epoch | minutes to best | all-user NDCG@10 here "
        "| RecBole's test NDCG@10 (ceiling: must agree) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for what, rs in groups.items():
        if rs[0]["method"] not in ("cold", "full"):
            continue
        theirs = "-"  # the cold runs' RecBole test split is the reduced log's, not these rows
        if rs[0]["method"] == "full":
            theirs = mean_sd([r["training"]["test_papers"][f"ndcg@{K}"] for r in rs])
        cells = [
            mean_sd([r["training"]["epochs"] for r in rs], 1),
            mean_sd([r["training"]["best_epoch"] for r in rs], 1),
            mean_sd([r["training"]["seconds_to_best"] / 60 for r in rs], 1),
            mean_sd([metric(r, "papers", "all") for r in rs]),
            theirs,
        ]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def boost_table(records: list[dict]) -> list[str]:
    """Per model: each boost's cold and warm NDCG@10 on validation and test (the literature's
    protocol, means over seeds), and the boost each seed chose (``cold_boost.choose``)."""
    if not records:
        return []
    lines = ["", "## The boost of added items, chosen on validation (the literature's protocol)"]
    lines += ["", "The rule, validation only: `benchmarks/cold_boost.py`. Curves: boost.png.", ""]
    for model in dict.fromkeys(r["model"] for r in records):
        rs = [r for r in records if r["model"] == model]
        chosen = ", ".join(f"seed {r['seed']}: {r['chosen']:g}" for r in rs)
        overlap = mean_sd([metric_of(r["overlap_valid"], "cold") for r in rs])
        ceiling = mean_sd([metric_of(r["ceiling_valid"], "warm") for r in rs])
        lines += [
            f"{model}, chosen: {chosen}. Validation: attribute overlap's cold NDCG@10 {overlap}, "
            f"the ceiling's warm NDCG@10 {ceiling}.",
            "",
            "| boost | valid cold | valid warm | test cold | test warm |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for b in sorted({float(b) for r in rs for b in r["valid"]}):
            cells = [
                mean_sd([metric_of(r[split][str(b)], group) for r in rs if str(b) in r[split]])
                for split, group in (("valid", "cold"), ("valid", "warm"))
                + (("test", "cold"), ("test", "warm"))
            ]
            lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def metric_of(metrics: dict, group: str) -> float | None:
    return metrics["papers"][group][f"ndcg@{K}"]


# ---- the run -----------------------------------------------------------------------------------
def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def key_of(context: list) -> str:
    return hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16]


def show(r: dict) -> str:
    cells = []
    for group in ("cold", "warm"):
        m = r["metrics"]["papers"][group]
        value = "n/a" if m[f"ndcg@{K}"] is None else f"{m[f'ndcg@{K}']:.4f}"
        cells.append(f"{group} NDCG@10 {value} ({m['users']} users)")
    return f"seed {r['seed']}, {label(r)}: " + ", ".join(cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a 'user item item ...' file")
    parser.add_argument("--attributes", required=True, help="item -> attributes JSON")
    parser.add_argument("--models", nargs="+", default=["SASRec", "LightSANs"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2020, 1, 2])
    parser.add_argument("--cold", type=float, default=0.1, help="share of the items held out")
    parser.add_argument("--recent", type=int, default=RECENT, help="attribute overlap's items")
    parser.add_argument("--loss", default="CE", help="as benchmarks.public_data's --losses")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="every run")
    parser.add_argument("--config_files", nargs="*", default=[], help="yaml files, every run")
    parser.add_argument("--max_epochs", type=int, default=400, help="cap on early stopping")
    parser.add_argument(
        "--boosts",
        nargs="*",
        type=float,
        default=BOOSTS,
        help="added items' score boosts to choose from on validation (none: no choice)",
    )
    add_output_options(parser, "folder for runs.jsonl and summary.md")
    parser.add_argument("--data_dir", default=str(Path(tempfile.gettempdir()) / "cold_start"))
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "DATASET", "JSON"))
    args = parser.parse_args(argv)
    if not 0 < args.cold < 1:
        parser.error(f"--cold {args.cold}: the share of items held out must be in (0, 1)")
    if args.recent < 1:
        parser.error(f"--recent {args.recent}: must be at least 1")

    if args.worker:
        model, dataset, payload = args.worker
        print(json.dumps(work(model, dataset, json.loads(payload))))
        return

    from recbole_sasrec import convert
    from recbole_sasrec.data.attributes import read_attribute_json
    from recbole_sasrec.data.convert import ConvertError

    data, name = Path(args.data), Path(args.data).stem
    out = output_folder(f"cold_start-{name}", args.out, ["runs.jsonl", "summary.md"], args.replace)
    log = read_log(data)
    attributes = read_attribute_json(Path(args.attributes), ConvertError)
    data_dir = Path(args.data_dir)
    convert(str(data), str(data_dir), name, "sequences", replace=True)
    convert(args.attributes, str(data_dir), name, "attributes", replace=True)
    sets, loss = parse_sets(args.set), loss_keys(args.loss)
    inputs = [digest(args.data), digest(args.attributes), args.cold]
    files = [[f, digest(f)] for f in args.config_files]
    record = out / "runs.jsonl"
    done = {}
    if record.exists():  # with --replace: the runs recorded there are reused
        for line in record.read_text().splitlines():
            r = json.loads(line)
            done[r["key"]] = r
    command = "python -m benchmarks.cold_start " + " ".join(sys.argv[1:] if argv is None else argv)
    header = f"{date.today()}, {machine()}\n{command}"
    print(header, flush=True)

    def finish(r: dict, key: str, seed: int, held: dict) -> None:
        r.update(key=key, seed=seed, cold=args.cold, held_out=held, data=name)
        r.update(date=str(date.today()), command=command, machine=machine())
        done[key] = r
        with open(record, "a") as f:
            f.write(json.dumps(r) + "\n")

    def boosted(model: str, seed: int, prepared: dict, keys: dict, held: dict) -> None:
        """The boosts of ``model``'s cold run evaluated (a worker), one chosen on validation."""
        key = key_of(["boosts", keys["cold"], keys["full"], args.boosts, args.recent])
        if key not in done:
            options = {
                "boosts": args.boosts,
                "rows": prepared["rows_file"],
                "new_items": prepared["new_items"],
                "cold_model": done[keys["cold"]]["model_file"],
                "full_model": done[keys["full"]]["model_file"],
            }
            r = run_worker(
                "benchmarks.cold_start",
                ["--data", args.data, "--attributes", args.attributes]
                + ["--worker", model, prepared["dataset"], json.dumps(options)],
            )
            valid = baselines(
                prepared["valid_rows"], prepared["items"], prepared["cold"], attributes, args.recent
            )
            r.update(method="boosts", model=model, boosts=args.boosts)
            r.update(overlap_valid=valid["attributes"], popularity_valid=valid["popularity"])
            r["chosen"] = choose(r)
            r["metrics"] = r["test"][str(r["chosen"])]
            finish(r, key, seed, held)
        r = done[key]
        print(f"{show(r)}; boost {r['chosen']:g} chosen on validation", flush=True)

    for seed in args.seeds:
        prepared = prepare_seed(log, attributes, args.cold, seed, data_dir, name)
        held = prepared["held_out"]
        print(f"seed {seed}: held out {json.dumps(held)}", flush=True)
        key = key_of(["baselines", name, *inputs, seed, args.recent])
        if key + "-popularity" not in done:
            scores = baselines(
                prepared["rows"], prepared["items"], prepared["cold"], attributes, args.recent
            )
            for method, metrics in scores.items():
                r = {"method": method, "model": None, "recent": args.recent, "metrics": metrics}
                finish(r, f"{key}-{method}", seed, held)
        for method in ("popularity", "attributes"):
            print(show(done[f"{key}-{method}"]), flush=True)
        for model in args.models:
            keys = {}
            for method in ("cold", "full"):
                dataset = prepared["dataset"] if method == "cold" else name
                config_dict = {
                    "data_path": str(data_dir),
                    "epochs": args.max_epochs,
                    **PROTOCOL,
                    **loss,
                    "selected_features": ["attributes"],
                    **sets,
                    "seed": seed,
                }
                key = key_of([method, model, name, *inputs, seed, config_dict, files])
                if key not in done:
                    config_dict["checkpoint_dir"] = str(data_dir / "checkpoints" / key)
                    options = {
                        "config_dict": config_dict,
                        "config_files": args.config_files,
                        "rows": prepared["rows_file"],
                        "new_items": prepared["new_items"] if method == "cold" else None,
                    }
                    r = run_worker(
                        "benchmarks.cold_start",
                        ["--data", args.data, "--attributes", args.attributes]
                        + ["--worker", model, dataset, json.dumps(options)],
                    )
                    r.update(method=method, model=model, loss=args.loss, settings=config_dict)
                    finish(r, key, seed, held)
                print(show(done[key]), flush=True)
                keys[method] = key
            if args.boosts and prepared["new_items"]:
                boosted(model, seed, prepared, keys, held)
    table = summary(list(done.values()), name, args.cold, header)
    (out / "summary.md").write_text(table)
    records = [r for r in done.values() if r["method"] == "boosts"]
    if records:
        plot(records, out / "boost.png", f"{name}: the boost of items added from attributes")
    print("\n" + table)


if __name__ == "__main__":
    main()
