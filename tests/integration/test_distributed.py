"""Training in several CPU processes through torch.distributed (gloo): each its users' windows, identical weights, the same metrics everywhere, a checkpoint that loads in one process; torchrun and run(nproc=2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FEATURES, TESTS, TINY, build, free_port, write_cycle_dataset, write_items

from recbole_sasrec import ConfigError, load_data_and_model, run
from recbole_sasrec.integration.trainer import get_trainer

WORKER = r"""
import hashlib, json, os, sys
import torch
from recbole_sasrec import Config
from recbole_sasrec.core.fields import SEGMENT_USERS, SEGMENTS
from recbole_sasrec.integration.distributed import leave
from recbole_sasrec.integration.logs import run_logging
from recbole_sasrec.integration.quick_start import prepare
from recbole_sasrec.integration.trainer import get_trainer

model, cfg, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
cfg.update(local_rank=local_rank, world_size=int(os.environ["WORLD_SIZE"]),
           nproc=int(os.environ["LOCAL_WORLD_SIZE"]), offset=rank - local_rank,
           init_method="env://")
config = Config(model, "cycle", config_dict=cfg)
steps, sums = [], []
with run_logging(config):
    _, train, valid, test, net = prepare(config)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    real_loss, real_step = net.calculate_loss, trainer.optimizer.step

    def loss(batch):
        keys = []
        if SEGMENTS in batch.interaction:  # packed rows: the windows of each row, unpadded
            for seg, users, items in zip(batch[SEGMENTS], batch[SEGMENT_USERS],
                                         batch["item_id_list"], strict=True):
                for s in range(1, int(seg.max()) + 1):
                    at = seg == s
                    keys.append(f"{int(users[at][0])}:{items[at].tolist()}")
        else:
            for u, items in zip(batch["user_id"].tolist(), batch["item_id_list"].tolist(),
                                strict=True):
                keys.append(f"{u}:{[i for i in items if i]}")
        steps.append(keys)
        return real_loss(batch)

    def step(*args, **kwargs):
        result = real_step(*args, **kwargs)
        flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        sums.append(hashlib.sha256(flat.numpy().tobytes()).hexdigest())
        return result

    net.calculate_loss, trainer.optimizer.step = loss, step
    _, best = trainer.fit(train, valid, saved=True, show_progress=False)
    result = trainer.evaluate(test, load_best_model=True)
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump({"steps": steps, "sums": sums, "valid": dict(best), "test": dict(result),
               "model_file": trainer.saved_model_file, "windows": len(train._dataset),
               "batches": len(train)}, f)
leave(was_joined=False)  # prepare() joined it: wait for the other rank, then leave
"""


@pytest.fixture
def data(tmp_path):
    root = write_cycle_dataset(tmp_path / "data", n_users=60, min_len=3, max_len=30)
    return dict(
        TINY,
        data_path=str(root),
        checkpoint_dir=str(tmp_path / "saved"),
        epochs=4,
        stopping_step=10,
        hidden_dropout_prob=0.0,
        attn_dropout_prob=0.0,
    )


@pytest.mark.parametrize("name", ["SASRec", "LightSANs-attributes"])
def test_two_gloo_processes_under_torchrun(tmp_path, data, name):
    if name.endswith("-attributes"):  # item vectors of ids and attributes, on both ranks alike
        name = name.removesuffix("-attributes")
        write_items(Path(data["data_path"]))
        data = dict(data, selected_features=FEATURES)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(script),
        name,
        json.dumps(data),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    (tmp_path / "torchrun.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    # (a) each process trains the windows of its own users, as many steps as the other; over
    # an epoch, every window exactly once
    per_epoch = ranks[0]["batches"]
    assert ranks[1]["batches"] == per_epoch
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == per_epoch * data["epochs"]
    users = [{key.split(":")[0] for key in sum(r["steps"], [])} for r in ranks]
    assert users[0] and users[1] and not users[0] & users[1]
    for epoch in range(data["epochs"]):
        seen = []
        for step in range(epoch * per_epoch, (epoch + 1) * per_epoch):
            a, b = ranks[0]["steps"][step], ranks[1]["steps"][step]
            assert a and b
            seen += a + b
        assert len(seen) == len(set(seen)) == ranks[0]["windows"] + ranks[1]["windows"]
    # (b) identical weights after every step
    assert ranks[0]["sums"] == ranks[1]["sums"]
    # (c) every process reports the metrics of all rows: the same numbers
    assert ranks[0]["test"] == ranks[1]["test"] and ranks[0]["valid"] == ranks[1]["valid"]
    # ... and learns what one process learns from the same data and epochs (no longer batch
    # for batch: each process draws its own users' batches)
    config, net, train, valid, test = build(name, "cycle", data)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    trainer.fit(train, valid, saved=False, show_progress=False)
    one = trainer.evaluate(test, load_best_model=False)
    assert ranks[0]["test"]["ndcg@10"] >= one["ndcg@10"] - 0.05 > 0.5
    # (d) the checkpoint rank 0 wrote loads in one process
    _, model, *_ = load_data_and_model(ranks[0]["model_file"])
    assert type(model).__name__ == name


def test_run_with_two_processes(tmp_path, data):
    """run(nproc=2) reports the validation and test metrics of all users: those one process
    gets evaluating the checkpoint the two wrote."""
    result = run("SASRec", "cycle", config_dict=dict(data, epochs=2), nproc=2, port=free_port())
    config, model, _, _, valid, test = load_data_and_model(result["model_file"])
    assert config["single_spec"] and model.training is False
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert result["best_valid_result"] == dict(trainer.evaluate(valid, load_best_model=False))
    assert result["test_result"] == dict(trainer.evaluate(test, load_best_model=False))


def test_a_port_in_use_is_named_before_any_process_starts(data):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port={port!r} on 127.0.0.1 is in use"):
            run("SASRec", "cycle", config_dict=data, nproc=2, ip="127.0.0.1", port=port)


def test_a_run_leaves_the_process_group_it_joined_and_keeps_the_callers(monkeypatch):
    """A group left alive at exit can abort the interpreter (gloo's threads); run_recbole
    leaves the one it joined, never one its caller had; a finished run waits for the other
    processes first, a failed one does not (they may never come)."""
    import torch.distributed as dist

    from recbole_sasrec.integration.distributed import leave

    waits = []
    barrier = dist.barrier
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: waits.append(1) or barrier(*a, **k))
    init = f"tcp://127.0.0.1:{free_port()}"
    dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)
    leave(was_joined=True)  # the caller's group
    assert dist.is_initialized() and not waits
    leave(was_joined=False)  # the run's own
    assert not dist.is_initialized() and waits == [1]
    leave(was_joined=False)  # nothing to leave
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
    )
    leave(was_joined=False, finished=False)  # a failed run leaves without waiting
    assert not dist.is_initialized() and waits == [1]
