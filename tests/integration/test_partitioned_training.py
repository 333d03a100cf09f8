"""Training on a prepared log, each process reading only its partitions: the same metrics as the
log read whole in 1 and 2 processes; metrics gathered from 1, 2 and 3 processes are those one
process computes over every user; two torchrun nodes on 127.0.0.1; a process that fails stops the run
with its rank named and no checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import TESTS, TINY, free_port, write_cycle_dataset

from recbole_sasrec import load_data_and_model, run, run_recbole
from recbole_sasrec.data.partitions import prepare
from recbole_sasrec.integration.trainer import get_trainer

# learning slowly, so that the metrics are not all 1.0 (the cycle is easy)
KEYS = dict(TINY, epochs=2, learning_rate=0.001, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """(the log's data_path, the same log prepared in 6 partitions)."""
    root = tmp_path_factory.mktemp("partitioned")
    data = write_cycle_dataset(root / "data", n_users=60, min_len=3, max_len=30)
    prepare(data, "cycle", root / "prepared", 6, chunk_rows=50, report=lambda line: None)
    return str(data), str(root / "prepared")


@pytest.fixture(scope="module")
def trained(logs, tmp_path_factory):
    """``trained("whole" | "prepared", nproc)``: each run once for the module (several tests
    compare the same runs)."""
    runs = {}

    def get(which: str, nproc: int) -> dict:
        if (which, nproc) not in runs:
            path = logs[0] if which == "whole" else logs[1]
            folder = tmp_path_factory.mktemp(f"{which}{nproc}")
            runs[which, nproc] = train(path, nproc, folder, which)
        return runs[which, nproc]

    return get


def train(data_path: str, nproc: int, tmp_path, tag: str) -> dict:
    keys = dict(KEYS, data_path=data_path, checkpoint_dir=str(tmp_path / f"saved-{tag}"))
    if nproc == 1:
        return run_recbole("SASRec", "cycle", config_dict=keys)
    return run("SASRec", "cycle", config_dict=keys, nproc=nproc, port=free_port())


@pytest.mark.parametrize("nproc", [1, 2])
def test_a_prepared_log_trains_as_the_log_read_whole(trained, nproc):
    a, b = trained("whole", nproc), trained("prepared", nproc)
    assert 0 < a["test_result"]["ndcg@10"] < 1  # learning, not saturated: a real comparison
    assert a["test_result"] == b["test_result"]
    assert a["best_valid_result"] == b["best_valid_result"]


@pytest.mark.parametrize("nproc", [1, 2, 3])
def test_processes_report_what_one_process_computes_over_every_user(trained, nproc):
    result = trained("prepared", nproc)
    # the checkpoint loads in one process, which reads every partition
    config, model, dataset, _, valid, test = load_data_and_model(result["model_file"])
    assert dataset.prepared is not None and dataset.user_num == 61
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert result["best_valid_result"] == dict(trainer.evaluate(valid, load_best_model=False))
    assert result["test_result"] == dict(trainer.evaluate(test, load_best_model=False))


NODE = r"""
import json, os, sys
from recbole_sasrec import run_recbole

keys, out = json.loads(sys.argv[1]), sys.argv[2]
rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
keys.update(local_rank=local_rank, world_size=int(os.environ["WORLD_SIZE"]),
            nproc=int(os.environ["LOCAL_WORLD_SIZE"]), offset=rank - local_rank,
            init_method="env://")
result = run_recbole("SASRec", "cycle", config_dict=keys)
with open(f"{out}/node{rank}.json", "w") as f:
    json.dump({"test": dict(result["test_result"]), "valid": dict(result["best_valid_result"])}, f)
"""


def test_two_torchrun_nodes_each_read_their_partitions(logs, trained, tmp_path):
    """Two machines, simulated: two torchrun groups of one process on 127.0.0.1."""
    _, prepared = logs
    script = tmp_path / "node.py"
    script.write_text(NODE)
    port = free_port()
    keys = dict(KEYS, data_path=prepared, checkpoint_dir=str(tmp_path / "saved-nodes"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node_rank={node}",
                "--nproc_per_node=1",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(script),
                json.dumps(keys),
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for node in (0, 1)
    ]
    logs_ = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs_[0][-3000:] + logs_[1][-3000:]
    results = [json.loads((tmp_path / f"node{r}.json").read_text()) for r in (0, 1)]
    assert results[0] == results[1]
    # the log read whole in two processes of one machine: the same metrics
    assert results[0]["test"] == dict(trained("whole", 2)["test_result"])


def test_a_process_that_fails_stops_the_run_naming_its_rank(logs, tmp_path):
    _, prepared = logs
    broken = tmp_path / "broken"
    os.makedirs(broken)
    os.symlink(os.path.join(prepared, "cycle"), broken / "link")
    folder = broken / "cycle"
    os.makedirs(folder)
    for name in os.listdir(broken / "link"):
        if name != "part-00003.parquet":  # read by process 1 of 2
            os.symlink(broken / "link" / name, folder / name)
    with pytest.raises(Exception, match=r"part-00003.parquet is missing .*read by process 1"):
        train(str(broken), 2, tmp_path, "broken")
    assert not (tmp_path / "saved-broken").exists() or not os.listdir(tmp_path / "saved-broken")
