"""Hyper-parameter tuning: params files, model inference, hyperopt and Ray Tune searches."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml

from recbole_sasrec import ConfigError
from recbole_sasrec.checkpoint import load_checkpoint
from recbole_sasrec.tuning import (
    ExhaustiveSearch,
    load_search_space,
    objective_function,
    parse_params_file,
    resolve_model,
    run_hyperopt,
    run_ray,
)

REPO = Path(__file__).resolve().parent.parent
GRID = {"learning_rate": [0.01, 0.001], "n_layers": [1, 2]}  # 4 trials


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def space(tmp_path) -> Path:
    """A 2 x 2 grid named after SASRec."""
    lines = [f"{key} choice {values}" for key, values in GRID.items()]
    return write(tmp_path / "sasrec.test", "\n".join(lines) + "\n")


def assert_search_result(result, output_file: Path, n_trials: int) -> None:
    """Every trial listed in the file with finite metrics; the best is the best of them."""
    assert len(result.trials) == n_trials
    text = output_file.read_text()
    for i, trial in enumerate(result.trials, start=1):
        assert f"trial {i}: {trial.params_str} ({trial.status})" in text
        assert all(math.isfinite(v) for v in trial.valid_result.values()) and trial.valid_result
        assert math.isfinite(trial.valid_score)
        if trial.test_result is not None:
            assert all(math.isfinite(v) for v in trial.test_result.values())
    completed = [t for t in result.trials if t.test_result is not None]
    best = result.best
    assert best in completed
    assert best.valid_score == max(t.valid_score for t in completed)  # NDCG@10: bigger
    assert best.valid_score == best.valid_result["ndcg@10"]
    assert f"best trial {result.trials.index(best) + 1}: {best.params_str}" in text
    assert text.count("Test result:") == len(completed) + 1  # + the best, repeated at the end


# ---- the params file ----------------------------------------------------------------------
def test_repository_search_spaces_parse_for_their_models():
    sasrec = load_search_space(REPO / "hyper/sasrec.test", "SASRec")
    assert [p.key for p in sasrec] == [
        "learning_rate",
        "attn_dropout_prob",
        "hidden_dropout_prob",
        "n_heads",
        "n_layers",
    ]
    assert math.prod(len(p.grid()) for p in sasrec) == 120  # the full exhaustive search
    lightsans = load_search_space(REPO / "hyper/lightsans.test", "LightSANs")
    assert {p.key: p.args for p in lightsans}["num_layers"] == (1, 2, 3)  # alias of n_layers
    with pytest.raises(ConfigError, match=r"line 2 'num_layers choice \[1,2,3\]'.*n_layers"):
        load_search_space(REPO / "hyper/lightsans.test", "SASRec")  # SASRec has no alias


def test_values_kinds_and_skipped_lines(tmp_path):
    path = write(
        tmp_path / "s.test",
        "# comment\n\n"
        "hidden_act choice ['gelu', 'relu']\n"
        "hidden_dropout_prob uniform 0.1, 0.5\n"
        "n_layers quniform 1,3,1\n"
        "attn_dropout_prob quniform 0.1,0.3,0.1\n"
        "learning_rate loguniform -9.2,-4.6\n",
    )
    params = {p.key: p for p in parse_params_file(path)}
    assert params["hidden_act"].grid() == ["gelu", "relu"]
    assert params["hidden_act"].line_no == 3
    assert params["hidden_dropout_prob"].args == (0.1, 0.5)
    assert params["n_layers"].grid() == [1, 2, 3]
    assert all(type(v) is int for v in params["n_layers"].grid())  # ints for n_layers, not 2.0
    assert np.allclose(params["attn_dropout_prob"].grid(), [0.1, 0.2, 0.3])
    # hyperopt's loguniform bounds are logs; Tune's are the values themselves
    tune_lr = params["learning_rate"].tune()
    assert (tune_lr.lower, tune_lr.upper) == pytest.approx((math.exp(-9.2), math.exp(-4.6)))


@pytest.mark.parametrize(
    "line, reason",
    [
        ("learning_rate choice [0.01", "not a Python list literal"),
        ("learning_rate choice 0.01", "not a non-empty list"),
        ("learning_rate choice []", "not a non-empty list"),
        ("learning_rate uniform 0.1", "uniform takes 2 comma-separated numbers"),
        ("learning_rate uniform 0.5,0.1", "low=0.5 must be smaller than high=0.1"),
        ("learning_rate loguniform a,b", "are not all numbers"),
        ("n_layers quniform 1,3,0", "q=0 must be > 0"),
        ("learning_rate normal 0,1", "unknown kind 'normal'"),
        ("learning_rate", "expected '<key> <kind> <values>'"),
        ("hidden_act choice ['gelu']", "already tuned by line 2"),
    ],
)
def test_malformed_line_names_file_line_and_reason(tmp_path, line, reason):
    path = write(tmp_path / "sasrec.test", f"# ranges\nhidden_act choice ['relu']\n{line}\n")
    with pytest.raises(ConfigError) as error:
        parse_params_file(path)
    message = str(error.value)
    assert f"{path}: line 3 {line!r}" in message
    assert reason in message


@pytest.mark.parametrize(
    "line, model, hint",
    [
        ("n_layer choice [1, 2]", "SASRec", "did you mean 'n_layers'?"),
        (
            "k_interests choice [5, 10]",
            "SASRec",
            "SASRec's keys (adam_betas, adam_fused, attn_dropout_prob",
        ),
        ("lr choice [0.01]", "LightSANs", "LightSANs's keys ("),
    ],
)
def test_key_no_model_reads_is_refused(tmp_path, line, model, hint):
    path = write(tmp_path / "space.test", f"learning_rate choice [0.01]\n{line}\n")
    with pytest.raises(ConfigError) as error:
        load_search_space(path, model)
    key = line.split()[0]
    message = str(error.value)
    assert f"{path}: line 2 {line!r}: {key!r} is not a key {model}" in message
    assert hint in message


def test_builtin_models_are_checked_against_recbole_yaml(tmp_path):
    path = write(
        tmp_path / "gru.test", "dropout_prob choice [0.1, 0.3]\nembedding_size choice [64]\n"
    )
    assert [p.key for p in load_search_space(path, "GRU4Rec")] == ["dropout_prob", "embedding_size"]
    with pytest.raises(ConfigError, match="'dropout_prob' is not a key SASRec"):
        load_search_space(path, "SASRec")


# ---- which model --------------------------------------------------------------------------
def test_model_is_inferred_from_the_file_name_and_never_contradicted(tmp_path):
    assert resolve_model("hyper/sasrec.test", None) == "SASRec"
    assert resolve_model("hyper/lightsans.test", None) == "LightSANs"
    assert resolve_model("x/LightSANs.test", None) == "LightSANs"  # case-insensitive
    assert resolve_model("hyper/sasrec.test", "SASRec") == "SASRec"
    assert resolve_model("hyper/mine.test", "LightSANs") == "LightSANs"
    with pytest.raises(ConfigError, match="model='SASRec' disagrees with .*LightSANs's search"):
        resolve_model("hyper/lightsans.test", "SASRec")
    with pytest.raises(ConfigError, match="disagrees"):
        resolve_model("hyper/sasrec.test", "RecBole.SASRec")
    with pytest.raises(ConfigError, match="sasrec.test, lightsans.test .*--model=<name>"):
        resolve_model("hyper/mine.test", None)
    with pytest.raises(ConfigError, match="neither a model of recbole_sasrec nor of RecBole"):
        resolve_model("hyper/mine.test", "NoSuchModel")


# ---- exhaustive search --------------------------------------------------------------------
def fmin_points(params, algo, max_evals: int) -> list[tuple]:
    from hyperopt import STATUS_OK, fmin

    points = []

    def objective(values):
        points.append(tuple(values[p.key] for p in params))
        return {"loss": 0.0, "status": STATUS_OK}

    space = {p.key: p.hyperopt() for p in params}
    fmin(objective, space, algo=algo, max_evals=max_evals, rstate=np.random.default_rng(0))
    return points


def test_exhaustive_search_visits_every_grid_point_once(tmp_path):
    path = write(
        tmp_path / "s.test",
        "n_heads choice [1, 2, 4]\nhidden_act choice ['gelu', 'relu']\nn_layers quniform 1,3,1\n",
    )
    params = parse_params_file(path)
    grid = {(h, a, n) for h in (1, 2, 4) for a in ("gelu", "relu") for n in (1, 2, 3)}
    points = fmin_points(params, ExhaustiveSearch(params, seed=0), max_evals=100)
    assert len(points) == 18 and set(points) == grid  # all, once each, then fmin stops
    first = fmin_points(params, ExhaustiveSearch(params, seed=0), max_evals=5)
    assert first == points[:5]  # seeded order; max_evals cuts it
    assert fmin_points(params, ExhaustiveSearch(params, seed=1), max_evals=5) != first


def test_recbole_exhaustive_search_still_breaks_on_this_hyperopt(tmp_path):
    """Why ExhaustiveSearch exists; when this fails, RecBole's own search works again."""
    from recbole.trainer.hyper_tuning import exhaustive_search

    params = parse_params_file(write(tmp_path / "s.test", "n_heads choice [1, 2]\n"))
    with pytest.raises(AttributeError, match="integers"):
        fmin_points(params, partial(exhaustive_search, nbMaxSucessiveFailures=1000), 2)


# ---- errors before the first trial ----------------------------------------------------------
def test_errors_before_any_training(tiny, tmp_path, space, monkeypatch):
    continuous = write(tmp_path / "lightsans.test", "learning_rate uniform 0.001,0.01\n")
    with pytest.raises(ConfigError, match="exhaustive search needs a finite grid"):
        run_hyperopt(continuous, dataset="cycle", config_dict=tiny)
    with pytest.raises(ConfigError, match="config_dict/command line key 'epoch'.*'epochs'"):
        run_hyperopt(space, dataset="cycle", config_dict=dict(tiny, epoch=1))
    with pytest.raises(ConfigError, match="algo='grid' is not supported"):
        run_hyperopt(space, dataset="cycle", config_dict=tiny, algo="grid")
    assert not (tmp_path / "log").exists()  # no trial started


def test_command_line_refuses_before_training(tmp_path):
    bad = write(tmp_path / "sasrec.test", "n_layers choice [1, 2\n")
    run = partial(subprocess.run, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = run([sys.executable, str(REPO / "run_hyper.py"), f"--params_file={bad}"])
    assert out.returncode != 0
    assert f"{bad}: line 1 'n_layers choice [1, 2'" in out.stderr
    out = run(
        [
            sys.executable,
            str(REPO / "run_hyper.py"),
            f"--params_file={bad}",
            "--max_evals=1",
            "--tool=Ray",
        ]
    )
    assert out.returncode == 2 and "--max_evals cannot be used with --tool=Ray" in out.stderr
    # a key the file tunes, fixed on the command line, would be replaced by every trial's value
    space = write(tmp_path / "lightsans.test", "n_layers choice [1, 2]\n")
    out = run(
        [sys.executable, str(REPO / "run_hyper.py"), f"--params_file={space}", "--n_layers=3"]
    )
    assert out.returncode == 1
    assert "--n_layers=3 would be fixed for every trial" in out.stderr
    assert not (tmp_path / "log").exists()  # no trial started


def test_command_line_tunes_the_file_s_model(tiny, space, tmp_path):
    config_file = write(tmp_path / "tiny.yaml", yaml.safe_dump(tiny))
    command = [
        sys.executable,
        str(REPO / "run_hyper.py"),
        f"--params_file={space}",
        "--dataset=cycle",
        f"--config_files={config_file}",
        "--algo=random",
        "--max_evals=2",
        "--epochs=1",  # any other --key=value is fixed for every trial
        "--output_file=cli.result",
    ]
    out = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = (tmp_path / "cli.result").read_text()
    assert text.startswith("# SASRec on cycle: Hyperopt random search, 2 trials")
    assert text.count("Test result:") == 3  # 2 trials + the best
    assert "best params:  {'learning_rate': " in out.stdout
    checkpoints = list(Path(tiny["checkpoint_dir"]).glob("SASRec-*.pth"))
    assert checkpoints  # RecBole names them by the second: two trials may share one
    assert all(load_checkpoint(str(c))["config"]["epochs"] == 1 for c in checkpoints)


# ---- trials -------------------------------------------------------------------------------
def test_objective_reports_after_every_validation(tiny):
    reports = []
    cfg = dict(tiny, epochs=3, n_layers=1)
    result = objective_function(
        None, model="SASRec", dataset="cycle", fixed_config=cfg, epoch_reporter=reports.append
    )
    assert [r["validation"] for r in reports] == [1, 2, 3]
    assert all(r["valid_score"] == r["valid_ndcg@10"] for r in reports)
    assert result["best_valid_score"] == max(r["valid_score"] for r in reports)
    assert result["model"] == "SASRec" and math.isfinite(result["test_result"]["ndcg@10"])


def test_lightsans_num_layers_alias_reaches_the_model(tiny):
    cfg = dict(tiny, epochs=1, k_interests=2)
    cfg.pop("n_layers")  # both given and different would be refused
    objective_function({"num_layers": 3}, model="LightSANs", dataset="cycle", fixed_config=cfg)
    (checkpoint,) = Path(tiny["checkpoint_dir"]).glob("LightSANs-*.pth")
    state = load_checkpoint(str(checkpoint))["state_dict"]
    assert {k.split(".")[1] for k in state if k.startswith("blocks.")} == {"0", "1", "2"}


def test_hyperopt_exhaustive_search_on_tiny_data(tiny, space, tmp_path):
    output, plot = tmp_path / "out.result", tmp_path / "trials.html"
    result = run_hyperopt(
        space,
        dataset="cycle",
        config_dict=dict(tiny, epochs=2),
        output_file=output,
        display_file=plot,
    )
    assert result.model == "SASRec"  # from the file name
    grid = {(lr, n) for lr in GRID["learning_rate"] for n in GRID["n_layers"]}
    assert {(t.params["learning_rate"], t.params["n_layers"]) for t in result.trials} == grid
    assert all(t.status == "completed" for t in result.trials)
    assert_search_result(result, output, n_trials=4)
    assert "SASRec tuning process" in plot.read_text()


def test_a_search_leaves_the_caller_s_process_as_it_was(tiny, space, tmp_path, monkeypatch):
    root = logging.getLogger()
    mine = io.StringIO()
    handler = logging.StreamHandler(mine)
    root.addHandler(handler)
    monkeypatch.setattr(root, "level", logging.ERROR)
    # a caller's own arguments: neither read as configuration nor refused as unknown keys
    monkeypatch.setattr(sys, "argv", ["my_script.py", "--n_layers=3", "--not_a_key=1"])
    import torch._dynamo  # noqa: F401  torch's optimisers import it once per process, which sets

    # TORCHINDUCTOR_CACHE_DIR: torch's own doing, so done before the snapshot
    before = (root.handlers[:], root.level, sys.stdout, sys.stderr, dict(os.environ))
    try:
        result = run_hyperopt(
            space, dataset="cycle", config_dict=dict(tiny, epochs=1), max_evals=2, output_file=None
        )
        after = (root.handlers[:], root.level, sys.stdout, sys.stderr, dict(os.environ))
    finally:
        root.removeHandler(handler)
    assert after == before
    assert {t.params["n_layers"] for t in result.trials} <= set(GRID["n_layers"])
    assert mine.getvalue() == ""  # the trials logged to their own files, not to the caller's
    logs = list((tmp_path / "log" / "SASRec").glob("*.log"))
    assert len(logs) == len(result.trials)  # one file of its own per trial


@pytest.mark.parametrize("algo", ["random", "bayes"])
def test_hyperopt_random_and_bayes_are_seeded(tiny, space, tmp_path, algo):
    output = tmp_path / "out.result"
    cfg = dict(tiny, epochs=1)
    first = run_hyperopt(
        space, dataset="cycle", config_dict=cfg, algo=algo, max_evals=3, output_file=output
    )
    assert_search_result(first, output, n_trials=3)  # repeated draws are listed too
    for trial in first.trials:
        assert trial.params["learning_rate"] in GRID["learning_rate"]
        assert trial.params["n_layers"] in GRID["n_layers"]
    again = run_hyperopt(
        space, dataset="cycle", config_dict=cfg, algo=algo, max_evals=3, output_file=None
    )
    assert [t.params for t in again.trials] == [t.params for t in first.trials]
    assert [t.valid_result for t in again.trials] == [t.valid_result for t in first.trials]


# ---- Ray Tune -----------------------------------------------------------------------------
def tune_reports(storage: Path) -> dict[tuple, list[dict]]:
    """Every report each trial made, from Ray's result.json files, by (learning_rate, n_layers)."""
    reports = {}
    for result_file in storage.glob("*/*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines()]
        config = rows[0]["config"]
        reports[(config["learning_rate"], config["n_layers"])] = rows
    return reports


@pytest.fixture
def no_ray_left():
    yield
    ray.shutdown()  # a failing test must not leave its Ray connection to the next one


def test_ray_exhaustive_search_on_local_ray(tiny, space, tmp_path, no_ray_left):
    output, storage = tmp_path / "out.result", tmp_path / "ray_results"
    epochs = 2
    result = run_ray(
        space,
        dataset="cycle",
        config_dict=dict(tiny, epochs=epochs),
        num_cpus=2,
        storage_path=storage,
        output_file=output,
    )
    assert not ray.is_initialized()  # the Ray it started is shut down
    assert result.tool == "Ray" and result.model == "SASRec"
    grid = {(lr, n) for lr in GRID["learning_rate"] for n in GRID["n_layers"]}
    assert {(t.params["learning_rate"], t.params["n_layers"]) for t in result.trials} == grid
    assert_search_result(result, output, n_trials=4)
    # one checkpoint per trial, each in its own folder (RecBole names them by the second)
    checkpoints = list(Path(tiny["checkpoint_dir"]).glob("*/SASRec-*.pth"))
    completed = [t for t in result.trials if t.test_result is not None]
    assert len({c.parent for c in checkpoints}) == len(checkpoints) >= len(completed)
    reports = tune_reports(storage)
    assert set(reports) == grid
    for trial in result.trials:
        rows = reports[(trial.params["learning_rate"], trial.params["n_layers"])]
        per_epoch = [r for r in rows if "validation" in r]
        assert [r["validation"] for r in per_epoch] == list(range(1, len(per_epoch) + 1))
        if trial.test_result is not None:  # every epoch reported, then the final result
            assert len(per_epoch) == epochs and len(rows) == epochs + 1
            assert rows[-1]["valid_score"] == max(r["valid_score"] for r in per_epoch)
        else:  # ASHA stopped it at a validation report
            assert trial.status.startswith("stopped early by ASHA")
            assert len(rows) == len(per_epoch) <= epochs


@pytest.fixture
def ray_head():
    """A Ray head on this machine, as `ray start --head` makes one; yields its address.

    ``--block`` keeps the head's processes in one process group that the teardown ends by its
    id (``ray stop`` would end every Ray process on the machine, not only this one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = Path(sys.executable).parent / "ray"
    command = [
        str(ray_cli),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    head = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in head.stdout:
            lines.put(line)
        lines.put(None)  # ray start exited

    threading.Thread(target=read, daemon=True).start()
    try:
        seen: list[str] = []
        while not any("Ray runtime started" in line for line in seen):
            line = lines.get(timeout=120)  # the head says when it is up
            if line is None:
                pytest.fail("ray start --head exited:\n" + "".join(seen))
            seen.append(line)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        # `ray start` points later plain ray.init() calls at this (now dead) cluster
        pointer = Path("/tmp/ray/ray_current_cluster")
        if pointer.is_file() and pointer.read_text().strip().endswith(f":{port}"):
            pointer.unlink()


def test_ray_search_on_an_existing_cluster(
    tiny, space, tmp_path, ray_head, monkeypatch, no_ray_left
):
    calls = []
    real_init = ray.init
    monkeypatch.setattr(ray, "init", lambda *a, **kw: calls.append(kw) or real_init(*a, **kw))
    output = tmp_path / "out.result"
    result = run_ray(
        space,
        dataset="cycle",
        config_dict=dict(tiny, epochs=1),
        algo="random",
        num_samples=2,
        ray_address=ray_head,
        storage_path=tmp_path / "ray_results",
        output_file=output,
    )
    assert calls == [{"address": ray_head}]  # joined the head, started no Ray of its own
    assert not ray.is_initialized()
    assert_search_result(result, output, n_trials=2)
