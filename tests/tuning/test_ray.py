"""Searches with Ray Tune: a local Ray and an existing cluster."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import ray
from conftest import GRID, assert_search_result

from recbole_sasrec.tuning import (
    run_ray,
)


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
