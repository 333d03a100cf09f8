"""Shared fixtures: a tiny generated data set, an isolated working directory, quiet RecBole."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from recbole_sasrec import Config
from recbole_sasrec.quick_start import prepare

N_USERS, N_ITEMS = 60, 30


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
