"""Configuration: model resolution, override precedence, no leaking yaml keys, early errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import recbole.model.sequential_recommender as builtin
import yaml
from recbole.utils import InputType

from recbole_sasrec import Config, ConfigError, SASRec, get_model
from recbole_sasrec.base import properties_dir


def test_names_resolve_to_ours_then_recbole():
    assert get_model("SASRec") is SASRec
    assert get_model("RecBole.SASRec") is builtin.SASRec
    assert get_model("GRU4Rec") is builtin.GRU4Rec
    config = Config(model="RecBole.SASRec", dataset="ml-100k")
    assert config["model"] == "RecBole.SASRec"  # round-trips through get_model
    assert config["train_neg_sample_args"]["distribution"] == "none"  # CE works with no config


def test_precedence_cmd_over_dict_over_file_over_our_yaml(tmp_path, monkeypatch):
    assert (
        Config(model="SASRec", dataset="ml-100k")["train_batch_size"] == 128
    )  # our yaml > RecBole
    file = tmp_path / "a.yaml"
    file.write_text("train_batch_size: 64\nhidden_size: 32\n")
    assert Config("SASRec", "ml-100k", [str(file)])["train_batch_size"] == 64
    config = Config("SASRec", "ml-100k", [str(file)], {"train_batch_size": 32})
    assert (config["train_batch_size"], config["hidden_size"]) == (32, 32)
    cmd = ["--train_batch_size=16"]
    assert (
        Config("SASRec", "ml-100k", [str(file)], {"train_batch_size": 32}, command_line=cmd)[
            "train_batch_size"
        ]
        == 16
    )
    # the command line is what the caller passes: a library call never reads sys.argv
    monkeypatch.setattr(sys, "argv", ["my_script.py", "--train_batch_size=16", "--data=x"])
    assert Config("SASRec", "ml-100k", [str(file)])["train_batch_size"] == 64


def test_our_training_defaults_do_not_reach_recbole_models():
    for name in ("SASRec", "LightSANs"):
        ours, theirs = Config(name, "ml-100k"), Config(f"RecBole.{name}", "ml-100k")
        assert (ours["learning_rate"], ours["train_batch_size"]) == (0.004, 128)
        assert (theirs["learning_rate"], theirs["train_batch_size"]) == (0.001, 2048)  # RecBole's


def test_our_yaml_covers_recbole_keys_and_recbole_yaml_is_not_read(tmp_path, monkeypatch):
    import recbole

    recbole_yaml = yaml.safe_load(
        open(f"{recbole.__path__[0]}/properties/model/SASRec.yaml", encoding="utf-8")
    )
    ours = yaml.safe_load(open(properties_dir() / "SASRec.yaml", encoding="utf-8"))
    assert set(recbole_yaml) <= set(ours)

    # A model called SASRec whose yaml lacks inner_size: RecBole's inner_size must not leak in.
    partial = tmp_path / "SASRec.yaml"
    partial.write_text("hidden_size: 48\nloss_type: 'CE'\n")

    class Partial(SASRec):
        @classmethod
        def properties_file(cls):
            return partial

        @classmethod
        def check_config(cls, config):
            pass

    Partial.__name__ = "SASRec"
    config = Config(model=Partial, dataset="ml-100k")
    assert config["hidden_size"] == 48
    assert "inner_size" not in config


@pytest.mark.parametrize("loss_type", ["BPR", "BCE"])
def test_pairwise_losses_get_a_sampler_by_default(loss_type):
    config = Config("SASRec", "ml-100k", config_dict={"loss_type": loss_type})
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    assert config["train_neg_sample_args"]["sample_num"] == 1
    assert config["MODEL_INPUT_TYPE"] == InputType.PAIRWISE


@pytest.mark.parametrize(
    ("model", "overrides", "expected"),
    [
        ("Foo", {}, "model='Foo'"),
        ("SASRec", {"loss_type": "XE"}, "loss_type='XE'"),
        ("SASRec", {"hidden_act": "elu"}, "hidden_act='elu'"),
        ("SASRec", {"hidden_size": 65}, "hidden_size=65 is not divisible by n_heads=2"),
        ("SASRec", {"n_layers": 0}, "n_layers=0"),
        ("SASRec", {"hidden_size": -8}, "hidden_size=-8"),
        ("SASRec", {"inner_size": 0}, "inner_size=0"),
        ("SASRec", {"n_heads": 0}, "n_heads=0"),
        ("SASRec", {"hidden_dropout_prob": 1.0}, "hidden_dropout_prob=1.0"),
        ("SASRec", {"attn_dropout_prob": -0.1}, "attn_dropout_prob=-0.1"),
        ("SASRec", {"layer_norm_eps": 0}, "layer_norm_eps=0"),
        ("SASRec", {"train_all_positions": "yes"}, "train_all_positions='yes'"),
        (
            "SASRec",
            {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}},
            "train_neg_sample_args=",
        ),
        (
            "SASRec",
            {"loss_type": "BPR", "train_neg_sample_args": None},
            "train_neg_sample_args=None",
        ),
        (
            "SASRec",
            {"loss_type": "BCE", "train_neg_sample_args": {"distribution": "popularity"}},
            "distribution='popularity'",
        ),
    ],
)
def test_bad_configuration_fails_before_training(model, overrides, expected):
    with pytest.raises(ConfigError) as error:
        Config(model=model, dataset="ml-100k", config_dict=overrides)
    message = str(error.value)
    assert expected in message
    assert "allowed" in message or "must be" in message or "may be" in message


def test_partial_eval_args_keep_the_sequential_split():
    config = Config("SASRec", "ml-100k", config_dict={"eval_args": {"mode": "uni100"}})
    assert config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["mode"] == {"valid": "uni100", "test": "uni100"}


@pytest.mark.slow
def test_installed_wheel_carries_the_property_files(tmp_path):
    """`pip install .` puts properties/ inside the package; a run from elsewhere finds them."""
    repo = Path(__file__).resolve().parent.parent
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(pip + ["wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)], check=True)
    wheel = next(tmp_path.glob("recbole_sasrec-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        pip + ["install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True
    )
    probe = (
        "import recbole_sasrec.base as b; from recbole_sasrec import Config; "
        "print(b.properties_dir()); print(Config('LightSANs', 'ml-100k')['k_interests'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(target)},
    ).stdout.split()
    assert out[-2] == str(target / "recbole_sasrec" / "properties")
    assert out[-1] == "5"
