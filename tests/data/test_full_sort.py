"""Full ranking: batches bounded by their scores, and the literature's protocol (eval_exclude_history) by hand, in one process and in two."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import TESTS, TINY, build, free_port

from recbole_sasrec import Config, ConfigError, convert
from recbole_sasrec.data import full_sort
from recbole_sasrec.data.full_sort import BoundedFullSortEvalDataLoader
from recbole_sasrec.integration.logs import run_logging
from recbole_sasrec.integration.quick_start import prepare
from recbole_sasrec.integration.trainer import get_trainer


def test_full_ranking_batches_are_bounded_by_their_scores(tiny, monkeypatch):
    config, net, _, valid, _ = build("SASRec", "cycle", tiny)
    assert isinstance(valid, BoundedFullSortEvalDataLoader)
    net.eval()
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    whole = trainer.evaluate(valid, load_best_model=False)
    monkeypatch.setattr(full_sort, "FULL_SORT_SCORES", 3 * valid._dataset.item_num)
    small = BoundedFullSortEvalDataLoader(config, valid._dataset, valid._sampler, shuffle=False)
    assert small.step == 3 and len(small) == -(-len(valid._dataset) // 3)
    assert trainer.evaluate(small, load_best_model=False) == whole


SEQUENCES = "u1 8 7 1 2\nu2 3 6 5 4\nu3 5 2 8 2\n"


EXPECTED = {
    True: {"hit@5": 2 / 3, "ndcg@5": (1 / math.log2(6) + 1 / math.log2(4)) / 3},
    False: {"hit@5": 1 / 3, "ndcg@5": (1 / math.log2(6)) / 3},
}


EXPECTED_VALID = {"hit@5": 2 / 3, "ndcg@5": (1 / math.log2(4) + 1) / 3}


EVALUATE = r"""
import json, os, sys
import torch
from recbole_sasrec import Config
from recbole_sasrec.integration.distributed import leave
from recbole_sasrec.integration.logs import run_logging
from recbole_sasrec.integration.quick_start import prepare
from recbole_sasrec.integration.trainer import get_trainer

cfg, out = json.loads(sys.argv[1]), sys.argv[2]
if "RANK" in os.environ:  # under torchrun
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    cfg.update(local_rank=local_rank, world_size=int(os.environ["WORLD_SIZE"]),
               nproc=int(os.environ["LOCAL_WORLD_SIZE"]), offset=rank - local_rank,
               init_method="env://")
else:
    rank = 0
config = Config("SASRec", "seq", config_dict=cfg)
with run_logging(config):
    dataset, train, valid, test, net = prepare(config)
    tokens = torch.tensor([0.0] + [float(t) for t in dataset.field2id_token["item_id"][1:]])
    net.full_sort_predict = lambda inter: tokens.expand(len(inter), -1).clone()
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    result = {"valid": dict(trainer.evaluate(valid, load_best_model=False)),
              "test": dict(trainer.evaluate(test, load_best_model=False))}
    test.exclude_history = False
    result["test_recbole"] = dict(trainer.evaluate(test, load_best_model=False))
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump(result, f)
leave(was_joined=False)  # no gloo thread alive at exit (it can abort the interpreter)
"""


@pytest.fixture
def seq(tmp_path):
    (tmp_path / "seq.txt").write_text(SEQUENCES)
    convert(str(tmp_path / "seq.txt"), str(tmp_path / "data"), "seq", "sequences")
    return dict(
        TINY,
        data_path=str(tmp_path / "data"),
        metrics=["Hit", "NDCG"],
        topk=[5],
        valid_metric="NDCG@5",
        metric_decimal_place=8,
        MAX_ITEM_LIST_LENGTH=2,  # shorter than the histories: removal reads the whole history
    )


def evaluate(tmp_path, config_dict: dict, processes: int = 1) -> list[dict]:
    script = tmp_path / "evaluate.py"
    script.write_text(EVALUATE)
    args = [str(script), json.dumps(config_dict), str(tmp_path)]
    if processes > 1:
        args = ["-m", "torch.distributed.run", f"--nproc_per_node={processes}", *args]
        args.insert(3, f"--master_port={free_port()}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(processes)]


def close(measured: dict, expected: dict) -> bool:
    return all(abs(measured[k] - v) < 1e-6 for k, v in expected.items())


@pytest.mark.parametrize("processes", [1, 2])
def test_earlier_items_are_removed_from_the_ranking_by_hand(tmp_path, seq, processes):
    for result in evaluate(tmp_path, dict(seq, eval_exclude_history=True), processes):
        assert close(result["test"], EXPECTED[True]), result
        assert close(result["valid"], EXPECTED_VALID), result
        assert close(result["test_recbole"], EXPECTED[False]), result


def test_off_is_recboles_full_ranking(tmp_path, seq):
    (result,) = evaluate(tmp_path, dict(seq, eval_exclude_history=False))
    assert close(result["test"], EXPECTED[False]) and result["test"] == result["test_recbole"]


@pytest.mark.parametrize("prefixes", [False, True])
def test_a_trained_model_selects_and_tests_under_the_protocol(tmp_path, tiny, prefixes):
    # every target a window of its own: about 14x the steps an epoch, so 2 epochs are plenty
    epochs = 2 if prefixes else tiny["epochs"]
    cfg = dict(tiny, eval_exclude_history=True, train_prefixes=prefixes, epochs=epochs)
    config = Config("LightSANs", "cycle", config_dict=cfg)
    with run_logging(config):
        _, train, valid, test, net = prepare(config)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        _, best = trainer.fit(train, valid, saved=True)
        papers = trainer.evaluate(test, load_best_model=True)
        test.exclude_history = False
        recbole = trainer.evaluate(test, load_best_model=False)
    # the cycle never repeats an item within a user's history: removing them only helps
    assert papers["hit@10"] >= recbole["hit@10"] and papers["hit@10"] > 0.5
    assert best["hit@10"] > 0.5


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"eval_args": {"mode": "uni100"}}, "eval_args mode is .*allowed: mode 'full'"),
        ({"train_all_positions": False}, "allowed: train_all_positions=True"),
        ({"eval_exclude_history": "yes"}, "eval_exclude_history='yes' must be True or False"),
    ],
)
def test_settings_it_cannot_serve_are_refused(tiny, extra, message):
    with pytest.raises(ConfigError, match=message):
        Config("SASRec", "cycle", config_dict={"eval_exclude_history": True, **tiny, **extra})


def test_history_windows_of_a_long_user_are_the_whole_history(tmp_path, seq):
    """Removal reads the whole earlier history, not the MAX_ITEM_LIST_LENGTH window."""
    config = Config("SASRec", "seq", config_dict=dict(seq, eval_exclude_history=True))
    with run_logging(config):
        dataset, _, _, test, _ = prepare(config)
        interaction, history, *_ = next(iter(test))
    tokens = dataset.field2id_token["item_id"]
    users = dataset.field2id_token["user_id"][interaction["user_id"].numpy()]
    rows, items = history
    removed = {u: sorted(tokens[items[rows == r].numpy()].tolist()) for r, u in enumerate(users)}
    assert removed == {"u1": ["1", "7", "8"], "u2": ["3", "5", "6"], "u3": ["2", "5", "8"]}
    assert torch.equal(interaction["item_length"], torch.tensor([2, 2, 2]))
