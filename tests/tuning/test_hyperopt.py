"""Searches with hyperopt: exhaustive, random and bayes, errors before the first trial, trials written as they end."""

from __future__ import annotations

import io
import logging
import math
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import GRID, REPO, assert_search_result, write

from recbole_sasrec import ConfigError
from recbole_sasrec.integration.checkpoint import load_checkpoint
from recbole_sasrec.tuning import (
    ExhaustiveSearch,
    objective_function,
    parse_params_file,
    run_hyperopt,
)


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


def test_hyperopt_exhaustive_search_on_tiny_data(tiny, space, tmp_path, capsys):
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
    # each trial shows each validation as it ends, with the score it was given
    lines = [line for line in capsys.readouterr().out.splitlines() if "  validation " in line]
    assert [line.split(":")[0].strip() for line in lines] == ["validation 1", "validation 2"] * 4
    assert max(float(line.split()[-1]) for line in lines) == pytest.approx(
        result.best.valid_score, abs=1e-6
    )


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


def test_a_point_drawn_again_is_listed_with_its_result_and_not_trained_again(
    tiny, tmp_path, monkeypatch
):
    from recbole_sasrec.tuning import hyperopt as driver

    space = tmp_path / "sasrec.test"
    space.write_text("n_layers choice [1, 2]\n")  # 4 random draws from 2 points: repeats
    trained = []
    real = driver.objective_function

    def objective(params, *args, **kwargs):
        trained.append(params["n_layers"])
        return real(params, *args, **kwargs)

    monkeypatch.setattr(driver, "objective_function", objective)
    result = driver.run_hyperopt(
        space, dataset="cycle", config_dict=dict(tiny, epochs=1), algo="random", max_evals=4
    )
    drawn = [t.params["n_layers"] for t in result.trials]
    assert len(drawn) == 4 and sorted(trained) == sorted(set(drawn))  # each point trained once
    first = {}
    for trial in result.trials:
        key = trial.params["n_layers"]
        if key in first:
            assert trial.status == driver.REPEAT
            assert trial.valid_result == first[key].valid_result
            assert trial.test_result == first[key].test_result
        else:
            assert trial.status == "completed"
            first[key] = trial


def test_search_writes_every_trial_as_it_ends(tiny, tmp_path, monkeypatch):
    from recbole_sasrec.tuning import hyperopt as driver

    space = tmp_path / "sasrec.test"
    space.write_text("n_heads choice [3, 5, 2]\n")  # 3, 5 do not divide hidden_size 32
    output = tmp_path / "out.result"
    seen, ran = [], []
    real = driver.objective_function

    def objective(params, *args, **kwargs):
        seen.append(output.read_text() if output.exists() else "")
        ran.append(params["n_heads"])
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the third trial
        return real(params, *args, **kwargs)

    monkeypatch.setattr(driver, "objective_function", objective)
    with pytest.raises(KeyboardInterrupt):
        driver.run_hyperopt(
            space, dataset="cycle", config_dict=dict(tiny, epochs=1), output_file=output
        )
    text = output.read_text()
    assert text.startswith("# SASRec on cycle: Hyperopt exhaustive search, 2 trials")
    trials = [line for line in text.splitlines() if line.startswith("trial ")]
    # the two that ended before Ctrl-C, in the order they ran; whatever the seeded order, one
    # at least is an invalid point: recorded as failed, and the search went on
    assert len(trials) == 2 and len(ran) == 3
    for i, (line, n_heads) in enumerate(zip(trials, ran, strict=False), start=1):
        assert line.startswith(f"trial {i}: n_heads:{n_heads} (")
        status = (
            "completed"
            if n_heads == 2
            else f"failed: ConfigError: hidden_size=32 is not divisible by n_heads={n_heads}"
        )
        assert line[len(f"trial {i}: n_heads:{n_heads} (") :].startswith(status), line
    best = f"best trial {ran.index(2) + 1}: n_heads:2" if 2 in ran[:2] else "best trial: none"
    assert best in text
    assert seen[1].count("trial 1:") == 1  # written before the second trial began


def test_run_hyper_takes_its_own_options_literally(tiny, tmp_path):
    import yaml

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(dict(tiny, epochs=1)))
    space = tmp_path / "sasrec.test"
    space.write_text("n_layers choice [1]\n")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_hyper.py"),
            f"--params_file={space}",
            "--dataset=cycle",
            f"--config_files={config_file}",
            "--output_file=int.result",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "int.result").read_text().count("(completed)") == 2  # the trial + best


def test_a_search_whose_every_trial_fails_names_the_first_error(tiny, tmp_path):
    space = write(tmp_path / "sasrec.test", "n_heads choice [3, 5]\n")  # neither divides 32
    output = tmp_path / "out.result"
    with pytest.raises(ConfigError) as error:
        run_hyperopt(space, dataset="cycle", config_dict=tiny, output_file=output)
    first = next(line for line in output.read_text().splitlines() if line.startswith("trial 1:"))
    n_heads = first.split("n_heads:")[1].split(" ")[0]
    assert str(error.value) == (
        f"all 2 trial(s) failed, so there is no best; the first (n_heads:{n_heads}) failed: "
        f"ConfigError: hidden_size=32 is not divisible by n_heads={n_heads}; with hidden_size=32, "
        f"n_heads may be one of [1, 2, 4, 8, 16, 32]"
    )
