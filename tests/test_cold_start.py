"""The cold-start benchmark: the held-out items never reach training, its baselines score what
they claim, and a run end to end splits every test user into cold or warm targets, its ceiling
agreeing with RecBole's own test figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import cold_boost, cold_start

N_USERS, N_ITEMS = 60, 30


def write_log(tmp_path):
    """Users walking a cycle of 30 items (5 to 10 each), and each item's category (of 3) and
    brand (of 5): the log file and the attribute JSON."""
    rng = np.random.default_rng(0)
    lines = []
    for u in range(1, N_USERS + 1):
        start, length = rng.integers(N_ITEMS), rng.integers(5, 11)
        lines.append(f"u{u} " + " ".join(f"{(start + t) % N_ITEMS + 1}" for t in range(length)))
    attributes = {str(i): [f"cat{i % 3}", f"brand{i % 5}"] for i in range(1, N_ITEMS + 1)}
    data, json_file = tmp_path / "tiny.txt", tmp_path / "tiny_attributes.json"
    data.write_text("\n".join(lines) + "\n")
    json_file.write_text(json.dumps(attributes))
    return data, json_file


def test_cold_items_never_reach_the_training_log(tmp_path):
    data, json_file = write_log(tmp_path)
    log = cold_start.read_log(data)
    attributes = json.loads(json_file.read_text())
    prepared = cold_start.prepare_seed(log, attributes, 0.1, 7, tmp_path / "d", "tiny")
    cold = prepared["cold"]
    assert len(cold) == 3 and cold == cold_start.choose_cold(cold_start.catalogue(log), 0.1, 7)
    folder = tmp_path / "d" / prepared["dataset"]
    inter = [line.split("\t") for line in (folder / f"{prepared['dataset']}.inter").open()]
    written = {row[1] for row in inter[1:]}
    assert written and not written & cold
    assert written == set(cold_start.catalogue(log)) - cold  # every warm item stays
    items = {line.split("\t")[0] for line in (folder / f"{prepared['dataset']}.item").open()}
    assert not items & cold
    removed = sum(len(v) for v in log.values()) - (len(inter) - 1)
    assert prepared["held_out"]["interactions_removed"] == removed
    # the test rows are the full log's: every user's real last item, cold ones included
    rows = json.loads(Path(prepared["rows_file"]).read_text())["rows"]
    assert [(u, h + [t]) for u, h, t in rows] == list(log.items())
    added = json.loads(Path(prepared["new_items"]).read_text())
    assert set(added) == cold and all(added[i] == attributes[i] for i in cold)


def test_a_cold_item_without_a_known_attribute_cannot_be_placed():
    attributes = {"1": ["a"], "2": ["b"], "3": ["a", "z"], "4": ["z"], "5": []}
    assert cold_start.placeable({"3", "4", "5"}, {"1", "2"}, attributes) == ["3"]


def test_attribute_overlap_scores_shared_attributes_above_none():
    items = ["shares", "none", "h1", "h2", "bare"]
    attributes = {"shares": ["x", "y"], "none": ["q"], "h1": ["x"], "h2": ["y", "w"], "bare": []}
    matrix = cold_start.attribute_matrix(items, attributes)
    (scores,) = cold_start.overlap_scores(matrix, [[2, 3]])
    # mean cosine to h1 and h2: (1 / sqrt(2) + 1 / 2) / 2
    assert scores[0] == pytest.approx((1 / np.sqrt(2) + 0.5) / 2)
    assert scores[0] > scores[1] == 0 and scores[4] == 0
    # only the `recent` newest items count: h2 alone
    (newest,) = cold_start.overlap_scores(matrix, [[2, 3]], recent=1)
    assert newest[0] == pytest.approx(0.5) and newest[2] == 0


def test_popularity_ranks_cold_items_last():
    rows = [("u1", ["a", "b", "c"], "d"), ("u2", ["a", "c"], "b"), ("u3", ["a"], "c")]
    items, cold = ["a", "b", "c", "d"], {"c"}
    scores = cold_start.popularity_scores(rows, items, cold)
    assert scores.tolist() == [3, 1, 0, 0]  # c, cold, counts nothing; d is never an input
    ndcg, hit = cold_start.tie_metrics(scores[None].repeat(3, 0), np.array([0, 1, 2]))
    # a and b first and second; c tied with d for places 3 and 4: half of each
    assert ndcg.tolist() == pytest.approx([1, 1 / np.log2(3), (1 / 2 + 1 / np.log2(5)) / 2])
    assert hit.tolist() == [1, 1, 1]
    assert cold_start.tie_metrics(scores[None], np.array([2]), k=2)[1].tolist() == [0]


def test_an_excluded_target_is_a_miss_and_ties_are_shared():
    scores = np.array([[5.0, -np.inf, 1.0, 1.0, 1.0, 1.0]])
    ndcg, hit = cold_start.tie_metrics(scores, np.array([1]))
    assert ndcg.tolist() == [0] and hit.tolist() == [0]
    ndcg, hit = cold_start.tie_metrics(scores, np.array([3]), k=3)  # places 2 to 5, 2 within 3
    assert hit.tolist() == [0.5]
    assert ndcg.tolist() == pytest.approx([(1 / np.log2(3) + 1 / np.log2(4)) / 4])


def test_a_run_splits_every_test_user_and_its_ceiling_agrees_with_recbole(tmp_path, monkeypatch):
    data, json_file = write_log(tmp_path)

    def in_process(module, args):  # the worker, without a process of its own (seconds)
        model, dataset, payload = args[args.index("--worker") + 1 :]
        return json.loads(json.dumps(cold_start.work(model, dataset, json.loads(payload))))

    monkeypatch.setattr(cold_start, "run_worker", in_process)
    out = tmp_path / "out"
    tiny = ["hidden_size=8", "inner_size=16", "n_layers=1", "n_heads=1", "train_batch_size=16"]
    tiny += ["MAX_ITEM_LIST_LENGTH=10", "show_progress=False", "state='WARNING'"]
    args = ["--data", str(data), "--attributes", str(json_file), "--models", "SASRec"]
    args += ["--seeds", "3", "--max_epochs", "1", "--out", str(out), "--set", *tiny]
    args += ["--data_dir", str(tmp_path / "data"), "--boosts", "0", "1000"]
    cold_start.main(args)
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    methods = ["attributes", "boosts", "cold", "full", "popularity"]
    assert sorted(r["method"] for r in runs) == methods
    for r in runs:
        for protocol in ("papers", "recbole"):
            m = r["metrics"][protocol]
            assert m["cold"]["users"] + m["warm"]["users"] == m["all"]["users"] == N_USERS
            assert m["cold"]["users"] == r["held_out"]["cold_targets"] > 0
    by = {r["method"]: r for r in runs}
    assert by["cold"]["added"] == by["cold"]["held_out"]["cold_items"] == 3
    full = by["full"]
    assert full["metrics"]["papers"]["all"]["ndcg@10"] == pytest.approx(
        full["training"]["test_papers"]["ndcg@10"], abs=1e-5
    )
    # the boosts: at 0 the cold run's own figures; a huge one puts the 3 cold items on top
    boosts = by["boosts"]
    assert boosts["test"]["0.0"] == by["cold"]["metrics"]
    for split in ("valid", "test"):
        low, high = (boosts[split][b]["recbole"]["cold"]["hit@10"] for b in ("0.0", "1000.0"))
        assert high == 1.0 >= low
    assert boosts["metrics"] == boosts["test"][str(boosts["chosen"])]
    valid_users = boosts["valid"]["0.0"]["papers"]["all"]["users"]
    assert valid_users == boosts["ceiling_valid"]["papers"]["all"]["users"] > 0
    assert (out / "boost.png").stat().st_size > 0
    summary = (out / "summary.md").read_text()
    assert "| SASRec | " in summary and "cold items added from attributes" in summary
    assert "boost chosen on validation" in summary and "| 1000 | " in summary
    # run again: every run is in the record, nothing is trained
    monkeypatch.setattr(cold_start, "run_worker", None)
    cold_start.main([*args, "--replace"])
    assert len((out / "runs.jsonl").read_text().splitlines()) == 5


def test_the_boost_chosen_is_the_least_that_reaches_the_cold_target_on_validation():
    def metrics(cold):
        return {"papers": {"cold": {"ndcg@10": cold}}}

    r = {"overlap_valid": metrics(0.01)}
    r["valid"] = {"0.0": metrics(0.001), "1.0": metrics(0.016), "2.0": metrics(0.03)}
    assert cold_boost.choose(r) == 1.0  # 0.016 >= 1.5 x 0.01; 2.0 reaches it too, at more cost
    r["valid"]["1.0"] = metrics(0.014)
    assert cold_boost.choose(r) == 2.0
    r["valid"]["2.0"] = metrics(0.012)  # none reaches it: the best cold figure
    assert cold_boost.choose(r) == 1.0
    rows = cold_boost.valid_rows({"a": ["1", "2", "3"], "b": ["1", "2"], "c": list("4567")})
    assert rows == [("a", ["1"], "2"), ("c", ["4", "5"], "6")]  # the last item never read
