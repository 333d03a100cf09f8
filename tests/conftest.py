"""Shared fixtures: a tiny generated data set, an isolated working directory, quiet RecBole."""

from __future__ import annotations

import json
import math
import os
import socket
import sys
from pathlib import Path

import pytest
import torch

from recbole_sasrec import Config, convert, run_recbole
from recbole_sasrec.integration.quick_start import prepare

N_USERS, N_ITEMS = 60, 30
TESTS = Path(__file__).resolve().parent  # on PYTHONPATH for subprocesses: conftest imports
REPO = TESTS.parent


def write_cycle_dataset(
    root: Path,
    name: str = "cycle",
    n_users: int = N_USERS,
    n_items: int = N_ITEMS,
    min_len: int = 8,
    max_len: int = 20,
) -> Path:
    """Users walk a cycle of items (i -> i + 1), each from its own start and for its own length:
    the next item is fully predictable from the last one, so a working model far beats random."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(1, n_users + 1):
        start = int(torch.randint(0, n_items, (1,), generator=g))
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        for t in range(length):
            lines.append(f"u{u}\ti{(start + t) % n_items + 1}\t{1000 * u + t}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return root


def write_items(folder: Path, name: str = "cycle", skip=(), extra=()) -> None:
    """A .item file for the tiny cycle: a token_seq, a token, a float and a float_seq field
    per item (item 5's empty); ``skip``: items without a row; ``extra``: rows of items the log
    never names."""
    lines = ["item_id:token\tcats:token_seq\tbrand:token\tprice:float\tembedding:float_seq"]
    for i in range(1, N_ITEMS + 1):
        if i in skip:
            continue
        if i == 5:
            lines.append(f"i{i}\t\t\t\t")
            continue
        lines.append(f"i{i}\tc{i % 3} c{i % 5 + 3}\tb{i % 4}\t{1.5 * i}\t{i % 2} {i / 7:.3f}")
    lines += [f"{item}\tc1\tb1\t3.0\t1 0" for item in extra]
    (folder / name / f"{name}.item").write_text("\n".join(lines) + "\n")


FEATURES = ["cats", "brand", "price", "embedding"]  # the fields write_items writes


TINY = {
    "hidden_size": 32,
    "inner_size": 64,
    "n_layers": 2,
    "n_heads": 2,
    "hidden_dropout_prob": 0.1,
    "attn_dropout_prob": 0.1,
    "MAX_ITEM_LIST_LENGTH": 10,
    "learning_rate": 0.01,
    "epochs": 20,
    "stopping_step": 20,
    "train_batch_size": 16,
    "eval_batch_size": 256,
    "show_progress": False,
    "state": "WARNING",
    "load_col": None,
    "metrics": ["Hit", "NDCG", "MRR"],
    "valid_metric": "NDCG@10",
    "topk": [10],
    "preset": "none",  # the figures tests hold were fixed with the defaults, whatever the shape
}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Run in a temp dir (RecBole writes log/ and saved/ there) and hide pytest's argv from
    RecBole's command-line parser."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])


@pytest.fixture
def tiny(tmp_path):
    """config_dict for the tiny cycle data set; extend it per test."""
    root = write_cycle_dataset(tmp_path / "data")
    return dict(TINY, data_path=str(root), checkpoint_dir=str(tmp_path / "saved"))


def build(model: str, dataset: str, config_dict: dict):
    """Config, dataloaders and a fresh model, as run_recbole builds them."""
    config = Config(model=model, dataset=dataset, config_dict=config_dict)
    _, train, valid, test, net = prepare(config)
    return config, net, train, valid, test


# ---- shared by several test files ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def long_histories(tmp_path, tiny):
    """Users of 3 to 45 actions over 500 items (no item twice in a user's history), L = 10."""
    root = write_cycle_dataset(tmp_path / "long", n_users=40, n_items=500, min_len=3, max_len=45)
    return dict(tiny, data_path=str(root))


def log_lines(n_users=30, n_items=20, extra=0, step=3, length=(6, 5)) -> str:
    """SASRec text format: 'user item' per line, time order within a user, ids from 1. User u
    walks the cycle i -> i + 1 over n_items items from item step * u, for length[0] + u %
    length[1] actions, so the next item is known."""
    lines = []
    for u in range(1, n_users + 1):
        for t in range(length[0] + u % length[1]):
            lines.append(f"{u} {(step * u + t) % n_items + 1 + extra}")
    return "\n".join(lines) + "\n"


def item_attributes(n_items: int) -> dict[str, list[str]]:
    """Attributes of items 1..n_items of ``log_lines``: a parity, a category of three and a
    brand of five (item 4 has none)."""
    return {
        str(i): [] if i == 4 else [f"even{i % 2}", f"cat{i % 3}", f"brand{i % 5}"]
        for i in range(1, n_items + 1)
    }


def train_converted(
    root: Path,
    log: str,
    data_path: str,
    name: str,
    model: str = "SASRec",
    attributes: dict | None = None,
    **keys,
) -> dict:
    """Convert ``log`` into ``data_path`` and train ``model`` on it (TINY and ``keys``), from
    ``root``; ``attributes`` (item -> tokens): the .item file too, selected."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        (root / "log.txt").write_text(log)
        convert("log.txt", data_path, name)
        if attributes is not None:
            (root / "attributes.json").write_text(json.dumps(attributes))
            convert("attributes.json", data_path, name, "attributes")
            keys["selected_features"] = ["attributes"]
        config = dict(TINY, data_path=data_path, checkpoint_dir=str(root / "saved"), **keys)
        return run_recbole(model, name, config_dict=config)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def trained_relative(tmp_path_factory):
    """A converted data set under data/ and a model trained on it (relative data_path):
    (root, model file)."""
    root = tmp_path_factory.mktemp("trust")
    result = train_converted(root, log_lines(), "data", "toy", epochs=3)
    return root, result["model_file"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained on a converted log of 40 users over 30 items: (model file, root)."""
    root = tmp_path_factory.mktemp("own")
    log = log_lines(n_users=40, n_items=30, step=7, length=(8, 9))
    result = train_converted(root, log, str(root / "data"), "mylog")
    assert result["test_result"]["hit@10"] > 0.9  # trained on the converted file
    return result["model_file"], root


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


def train_gru4rec(tmp_path: Path) -> str:
    """A checkpoint of RecBole's GRU4Rec (a model that is not ours) on the tiny cycle."""
    root = write_cycle_dataset(tmp_path / "gru-data")
    cfg = dict(TINY, data_path=str(root), epochs=1, checkpoint_dir=str(tmp_path / "gru-saved"))
    for key in ("inner_size", "n_layers", "n_heads", "hidden_dropout_prob", "attn_dropout_prob"):
        cfg.pop(key)
    cfg.pop("preset")
    return run_recbole("GRU4Rec", "cycle", config_dict=cfg)["model_file"]


@pytest.fixture
def full_disk(monkeypatch):
    """Every write to a file ``atomic_open`` opens fails as on a full disk (ENOSPC)."""
    import recbole_sasrec.core.files as files

    real = files.os.fdopen

    def full(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)

        def write(_):
            raise OSError(28, "No space left on device")

        f.write = write
        return f

    monkeypatch.setattr(files.os, "fdopen", full)


def train_steps(net, batch, steps: int = 15) -> list[float]:
    """Adam steps on one batch, the same random draws (negatives, dropout) each step so that a
    falling loss is learning, not luck: the losses."""
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)
        loss = net.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
