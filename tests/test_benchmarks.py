"""Benchmark helpers whose mistakes would go unseen in a table: the sweep's grid (the points the
defaults are chosen from), the synthetic logs (their order, their popularity baseline) and the
workers every run goes through (their result, their progress, their errors)."""

import json
import textwrap
from pathlib import Path

import pytest
import torch

from benchmarks.sweep import grid_points, parse_grid, split_values


def test_values_split_at_commas_outside_brackets():
    assert split_values("[0.9,0.999],[0.9,0.98]") == ["[0.9,0.999]", "[0.9,0.98]"]
    assert split_values("{'mode':'full','x':[1,2]},3") == ["{'mode':'full','x':[1,2]}", "3"]
    assert parse_grid(["learning_rate=0.001,0.004", "adam_betas=[0.9,0.98]"]) == {
        "learning_rate": ["0.001", "0.004"],
        "adam_betas": ["[0.9,0.98]"],
    }


def test_product_and_one_at_a_time():
    grid = {"a": ["0", "1", "2"], "b": ["x", "y"]}
    assert grid_points(grid) == [(a, b) for a in "012" for b in "xy"]
    # the base, then one key away from it at a time: 1 + 2 + 1 points
    assert grid_points(grid, one_at_a_time=True) == [("0", "x"), ("1", "x"), ("2", "x"), ("0", "y")]


def test_synthetic_order_is_opt_in_and_learnable():
    from benchmarks.synthetic import SHAPES, draw_log

    plain = draw_log(SHAPES["amazon"], users=300, items=500, seed=7)
    again = draw_log(SHAPES["amazon"], users=300, items=500, seed=7, sequential=0.0)
    ordered = draw_log(SHAPES["amazon"], users=300, items=500, seed=7, sequential=0.6)
    for a, b in zip(plain, again, strict=True):
        assert (a == b).all()  # the default log is the one the shape benchmarks measured
    assert (plain[0] == ordered[0]).all() and (plain[2] == ordered[2]).all()

    def repeat_share(user, item):
        """Share of consecutive same-user pairs (a, b) seen before in the log."""
        same = user[1:] == user[:-1]
        pairs = list(zip(item[:-1][same].tolist(), item[1:][same].tolist(), strict=True))
        return 1 - len(set(pairs)) / len(pairs)

    # popular pairs repeat by chance (16% here); with order, pairs from 3 successors repeat too
    assert repeat_share(ordered[0], ordered[1]) > repeat_share(plain[0], plain[1]) + 0.1


def test_popularity_ranking_of_a_log():
    import numpy as np

    from benchmarks.synthetic import popularity_ndcg

    # item 3 is the most frequent training item (4 times), item 2 next (2); users 1 and 3 end on
    # item 3 (rank 1: NDCG 1), user 2 on item 2 (rank 2: 1/log2(3)); validation items not counted
    user = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
    item = np.array([3, 3, 2, 5, 3, 3, 2, 5, 2, 3, 1, 5, 3])
    assert np.isclose(popularity_ndcg(user, item), (2 + 1 / np.log2(3)) / 3)


WORKER = """
import json, sys
for i in range(20000):  # more than a pipe holds: the worker must not block on it
    print("log line", i)
print("progress: epoch 1: valid 0.1", file=sys.stderr, flush=True)
print("something RecBole logs", file=sys.stderr)
if sys.argv[1] == "fail":
    sys.exit("the worker's error")
print(json.dumps({"answer": 42}))
"""


def test_a_worker_shows_its_progress_and_returns_its_last_line(tmp_path, monkeypatch, capsys):
    from benchmarks.common import run_worker

    (tmp_path / "fake_worker.py").write_text(textwrap.dedent(WORKER))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert run_worker("fake_worker", ["ok"]) == {"answer": 42}
    shown = capsys.readouterr().err
    assert "  epoch 1: valid 0.1" in shown and "RecBole" not in shown

    with pytest.raises(SystemExit) as failed:
        run_worker("fake_worker", ["fail"])
    assert "the worker's error" in str(failed.value) and "RecBole logs" in str(failed.value)


def test_item_table_spread_tells_a_collapsed_table_from_a_spread_one():
    from benchmarks.item_table import spread

    g = torch.Generator().manual_seed(0)
    spread_items = torch.randn(500, 64, generator=g)
    one_way = torch.randn(64, generator=g) + 0.05 * torch.randn(500, 64, generator=g)
    wide, narrow = spread(spread_items), spread(one_way)
    assert wide["first_direction"] < 0.1 and abs(wide["cosine_to_mean"]) < 0.2
    assert narrow["first_direction"] > 0.9 and narrow["cosine_to_mean"] > 0.9
    assert spread(-one_way)["cosine_to_mean"] > 0.9  # one way, whichever way


# ---- where a run writes: never over a committed result unless told ----------------------------
class WorkStarted(Exception):
    """Raised by a benchmark's first expensive step: the run got past its output check."""


def no_work(*args, **kwargs):
    raise WorkStarted


# script, its required arguments, the files it writes, its first expensive steps
SCRIPTS = [
    ("compare", [], ["compare-ml-100k-5ep.md"], ["run_worker"]),
    ("data_prep", [], ["data_prep.json"], ["make", "run_worker"]),
    ("plain_sasrec", ["--data", "x.txt"], None, ["run_worker"]),
    ("public_data", ["--data", "Beauty.txt"], ["summary.md"], ["run_worker"]),
    ("recommend_batch", [], ["recommend_batch.md"], ["make", "measure"]),
    ("scale", [], ["scale.png"], []),
    ("serving", ["--data", "x.txt"], ["serving.md"], ["prepare"]),
    ("shapes", [], ["shapes.md"], ["make", "run_worker"]),
    ("anomaly", [], None, ["prepare"]),
    ("attributes_cost", ["--data", "x.txt", "--attributes", "a.json"], None, ["convert"]),
    ("add_items", [], ["add_items.md"], ["prepare"]),
    ("cold_start", ["--data", "x.txt", "--attributes", "a.json"], ["summary.md"], ["read_log"]),
    ("warm_start", ["--data", "x.txt"], ["summary.md"], ["read_log"]),
    ("partitions", [], ["table.md"], ["make_log"]),
    ("prepared_runs", [], ["table.md"], ["prepare"]),
    ("item_table", ["A=a.pth"], None, ["item_table"]),  # last: it has no default output
]


@pytest.fixture
def no_benchmark_work(monkeypatch):
    import importlib
    import subprocess

    import recbole_sasrec

    for script, _, _, steps in SCRIPTS:
        module = importlib.import_module(f"benchmarks.{script}")
        for step in steps:
            monkeypatch.setattr(module, step, no_work)
    monkeypatch.setattr(subprocess, "run", no_work)  # scale's workers
    monkeypatch.setattr(recbole_sasrec, "convert", no_work)  # public_data's first step


@pytest.mark.parametrize(("script", "args", "names", "steps"), SCRIPTS)
def test_a_benchmark_refuses_to_overwrite_a_result_before_any_work(
    tmp_path, no_benchmark_work, script, args, names, steps
):
    import importlib

    main = importlib.import_module(f"benchmarks.{script}").main
    if names is None:  # one file, named by --out
        existing = tmp_path / "result.md"
        out = existing
    else:
        out, existing = tmp_path / "results", tmp_path / "results" / names[0]
        out.mkdir()
    existing.write_text("committed\n")
    with pytest.raises(SystemExit) as refused:
        main([*args, "--out", str(out)])
    assert str(refused.value) == (
        f"error: {existing} already exist(s) (a committed result?); allowed: --out another "
        f"folder or file, or --replace to write over it"
    )
    assert existing.read_text() == "committed\n"
    with pytest.raises(WorkStarted):  # told to: the run goes on
        main([*args, "--out", str(out), "--replace"])


@pytest.mark.parametrize(("script", "args", "names", "steps"), SCRIPTS[:-1])
def test_a_benchmark_writes_to_a_new_folder_of_its_own_by_default(
    tmp_path, no_benchmark_work, monkeypatch, script, args, names, steps
):
    """Run from the repository as a user would: results/ (committed) is left alone."""
    import importlib

    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "results" / f"{script}.md"
    committed.parent.mkdir()
    committed.write_text("committed\n")
    with pytest.raises(WorkStarted):
        importlib.import_module(f"benchmarks.{script}").main(args)
    (run,) = (tmp_path / "results" / "runs").iterdir()
    assert run.name.startswith(f"{script}-") and list(run.iterdir()) == []
    assert committed.read_text() == "committed\n"
    assert {p.name for p in (tmp_path / "results").iterdir()} == {f"{script}.md", "runs"}


def test_two_runs_in_one_second_get_two_folders(tmp_path, monkeypatch):
    from benchmarks.common import output_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda fmt: "20260101-120000")
    first = output_folder("scale", None, ["scale.md"], False)
    second = output_folder("scale", None, ["scale.md"], False)
    assert first == Path("results/runs/scale-20260101-120000")
    assert second == Path("results/runs/scale-20260101-120000-2")
    assert first.is_dir() and second.is_dir()


def test_recent_sessions_are_each_users_newest_items_oldest_first():
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from benchmarks.common import recent_sessions

    # user 1: items 3, 1, 2 at times 5, 1, 3; user 2: item 4; rows out of order
    frame = pd.DataFrame({"u": [1, 2, 1, 1], "i": [3, 4, 1, 2], "t": [5.0, 2.0, 1.0, 3.0]})
    dataset = SimpleNamespace(
        field2id_token={"i": np.array(["[PAD]", "a", "b", "c", "d"])},
        inter_feat=frame,
        uid_field="u",
        iid_field="i",
        time_field="t",
    )
    assert recent_sessions(dataset) == [["a", "b", "c"], ["d"]]
    assert recent_sessions(dataset, length=2) == [["b", "c"], ["d"]]
    (one,) = recent_sessions(dataset, count=1)  # a user drawn at random
    assert one in (["a", "b", "c"], ["d"])
    assert sorted(recent_sessions(dataset, count=5)) == [["a", "b", "c"], ["d"]]  # at most all


def test_warm_start_cuts_each_users_newest_items_by_position():
    from benchmarks.warm_start import cut_log

    log = {"a": list("abcdefghij"), "b": list("klmno"), "c": list("pqrst")}  # 20 interactions
    cut = cut_log(log, 0.85, seed=0)  # 3 removed: the three users' last items (time 1)
    assert cut == {"a": log["a"][:-1], "b": log["b"][:-1], "c": log["c"][:-1]}
    # 5: those three, a's 9th (time 0.9), and one of the three at 0.8 (a's 8th, b's, c's 4th)
    cut = cut_log(log, 0.75, seed=0)
    assert all(items == log[u][: len(items)] for u, items in cut.items())  # oldest kept
    lengths = [len(cut[u]) for u in "abc"]
    assert lengths in ([7, 4, 4], [8, 3, 4], [8, 4, 3])
    assert cut_log(log, 0.75, seed=0) == cut  # seeded


def test_warm_start_tables_only_trains_nothing_and_names_each_warm_runs_shrink(
    tmp_path, monkeypatch
):
    import benchmarks.warm_start as warm_start

    monkeypatch.setattr(warm_start, "run_worker", no_work)
    monkeypatch.setattr(warm_start, "read_log", lambda path: {})

    def record(run, best, curve, settings=None, warm_set=()):
        return {
            "run": run,
            "best_valid": {"ndcg@10": best},
            "seconds_to_best": curve[-1][0],
            "curve": curve,
            "test_papers": {"ndcg@10": 0.06},
            "test_recbole": {"ndcg@10": 0.04},
            "settings": settings or {},
            "warm_set": list(warm_set),
        }

    shrunk = {"init_shrink": 0.8, "init_perturb": 0.01}
    runs = [
        record("SASRec-1-yesterday", 0.07, [[60, 0.07]]),
        record("SASRec-1-scratch", 0.075, [[60, 0.07], [400, 0.075]]),
        record("SASRec-1-warm", 0.074, [[60, 0.074]], {"init_from": "y.pth"}),  # before the keys
        record("SASRec-1-warm x", 0.076, [[60, 0.076]], {"init_from": "y.pth", **shrunk}),
        record(
            "SASRec-1-warm init_shrink=0.5", 0.077, [[100, 0.077]], warm_set=["init_shrink=0.5"]
        ),
    ]
    runs[3]["warm_set"] = []  # 'as configured' at today's default
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    warm_start.main(
        ["--data", "x.txt", "--seeds", "1", "--out", str(tmp_path), "--replace", "--tables_only"]
    )
    table = (tmp_path / "summary.md").read_text()
    assert (
        "as configured (then a plain copy: init_shrink=1.0 init_perturb=0.0) | 0.0750, 6.7 | not reached"
        in table
    )
    assert "as configured (init_shrink=0.8 init_perturb=0.01) | 0.0750, 6.7 | 1.0 (15%)" in table
    assert "| init_shrink=0.5 | 0.0750, 6.7 | 1.7 (25%)" in table
