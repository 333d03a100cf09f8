"""``preset: 'auto'``: the short-histories preset's keys for a log of short histories, the
defaults otherwise; what the user gave always wins; the files in presets/ mean what they say."""

from __future__ import annotations

import logging

import pytest
import yaml
from conftest import REPO, free_port

from recbole_sasrec import Config, load_model, run
from recbole_sasrec.integration.presets import (
    SHORT_HISTORIES,
    SHORT_MEDIAN,
    choose_preset,
    median_history,
)
from recbole_sasrec.integration.quick_start import create_dataset, prepare

DEFAULTS = {"inner_size": 256, "positions_from_end": False, "train_batch_positions": 0}


def short(tiny: dict, **keys) -> dict:
    """The tiny cycle (histories of 8 to 20: median under SHORT_MEDIAN) without TINY's sizes."""
    given = {k: v for k, v in tiny.items() if k not in ("inner_size", "learning_rate")}
    given.pop("train_batch_size")
    given.pop("preset", None)
    return {**given, **keys}


def chosen(model: str, keys: dict, files=None) -> Config:
    config = Config(model, "cycle", files, keys)
    prepare(config)
    return config


def test_the_preset_file_holds_the_keys_applied():
    text = (REPO / "presets" / "short-histories.yaml").read_text()
    keys = yaml.safe_load(text)
    assert keys.pop("preset") == "none"
    assert keys == SHORT_HISTORIES


@pytest.mark.parametrize("model", ["SASRec", "LightSANs"])
def test_short_histories_get_the_preset_and_one_line_says_why(tiny, model, caplog):
    with caplog.at_level(logging.INFO):
        config = chosen(model, short(tiny))
    for key, value in SHORT_HISTORIES.items():
        assert config[key] == value, key
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("preset:")]
    assert len(lines) == 1 and "short-histories (median history" in lines[0]
    assert f"<= {SHORT_MEDIAN}" in lines[0]


def test_what_the_user_gave_wins(tiny, tmp_path):
    config = chosen("SASRec", short(tiny, learning_rate=0.01, train_batch_size=32))
    assert config["learning_rate"] == 0.01 and config["train_batch_size"] == 32
    assert config["train_batch_positions"] == 0  # a batch size given keeps windows per batch
    assert config["inner_size"] == 64 and config["positions_from_end"] is True
    file = tmp_path / "mine.yaml"
    file.write_text("inner_size: 128\n")
    config = chosen("SASRec", short(tiny), [str(file)])
    assert config["inner_size"] == 128 and config["learning_rate"] == 0.001


def test_none_and_the_preset_files_keep_their_own_keys(tiny):
    config = chosen("SASRec", short(tiny, preset="none"))
    for key, value in DEFAULTS.items():
        assert config[key] == value, key
    assert config["learning_rate"] == 0.004
    paper = REPO / "presets" / "sasrec-paper.yaml"
    config = chosen("SASRec", short(tiny, eval_args={"mode": "full"}), [str(paper)])
    assert config["inner_size"] == 50 and config["positions_from_end"] is False
    assert config["train_batch_positions"] == 0 and config["learning_rate"] == 0.001


def test_long_histories_keep_the_defaults(tmp_path, caplog):
    """ml-100k (every user at least 20 ratings, median 65): the defaults, said in one line."""
    with caplog.at_level(logging.INFO):
        config = Config("SASRec", "ml-100k", None, {"state": "INFO", "show_progress": False})
        dataset = create_dataset(config)
        assert median_history(dataset) > SHORT_MEDIAN
        assert choose_preset(config, dataset) is None
    for key, value in DEFAULTS.items():
        assert config[key] == value, key
    assert any("preset: the defaults (median history" in r.getMessage() for r in caplog.records)


def test_several_processes_train_with_one_choice(tiny):
    """Rank 0's choice is every process's (broadcast); the checkpoint records it."""
    keys = short(tiny, epochs=1)
    result = run("SASRec", "cycle", config_dict=keys, nproc=2, port=free_port())
    config, *_ = load_model(result["model_file"])
    for key, value in SHORT_HISTORIES.items():
        assert config[key] == value, key
