"""Configuration: model resolution, priorities, defaults, and every bad key or value refused before loading."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import recbole.model.sequential_recommender as builtin
import yaml
from conftest import REPO
from recbole.utils import InputType

from recbole_sasrec import (
    Config,
    ConfigError,
    SASRec,
    get_model,
    run_recbole,
)
from recbole_sasrec.integration.registry import model_keys


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


def test_our_keys_cover_recbole_s_and_recbole_s_yaml_is_not_read():
    import recbole

    recbole_yaml = yaml.safe_load(
        open(f"{recbole.__path__[0]}/properties/model/SASRec.yaml", encoding="utf-8")
    )
    assert set(recbole_yaml) <= {key.name for key in model_keys(SASRec)}

    # A model called SASRec that declares no inner_size: RecBole's inner_size must not leak in.
    class Partial(SASRec):
        KEYS = tuple(
            dataclasses.replace(key, default=48) if key.name == "hidden_size" else key
            for key in SASRec.KEYS
            if key.name != "inner_size"
        )

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
        ("SASRec", {"topk": [0]}, "topk=[0] must be a positive integer or a list of them"),
        ("LightSANs", {"topk": 10.5}, "topk=10.5 must be"),
        ("SASRec", {"metrics": ["Recall", "FooMetric"]}, "'FooMetric' is not a metric"),
        ("RecBole.SASRec", {"metrics": "NDCGG"}, "allowed: a list of AUC, AveragePopularity"),
        ("SASRec", {"eval_args": {"order": "RO"}}, "eval_args order='RO'"),
        ("SASRec", {"eval_args": "{mode:uni100}"}, "eval_args='{mode:uni100}' is not a mapping"),
        ("SASRec", {"negative_sampler": "popularity"}, "is not used by loss_type='CE'"),
        ("SASRec", {"loss_type": "BCE", "negative_sampler": "in_batch"}, "not used by"),
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


def test_misspelled_keys_are_refused_before_loading(tiny, tmp_path):
    with pytest.raises(ConfigError, match="'n_layer' is not a key.*did you mean 'n_layers'"):
        run_recbole("SASRec", "cycle", config_dict=dict(tiny, n_layer=1))
    with pytest.raises(ConfigError, match="'hiden_size'.*did you mean 'hidden_size'"):
        run_recbole("SASRec", "cycle", config_dict=dict(tiny, hiden_size=32))
    assert not (tmp_path / "log").exists()  # refused before anything ran
    # a deliberate extra key, declared, passes
    cfg = dict(tiny, epochs=1, my_tag="x", extra_keys=["my_tag"])
    assert run_recbole("SASRec", "cycle", config_dict=cfg, saved=False)["test_result"]


def test_run_py_refuses_a_misspelled_key(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--n_layer=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 1
    assert "command line --n_layer: 'n_layer' is not a key SASRec" in out.stderr
    assert "did you mean 'n_layers'" in out.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"eval_args": {"mode": "uni0"}}, "uni<N> needs N >= 1"),
        ({"epochs": 0}, "epochs=0 must be a positive integer"),
        ({"valid_metric": "Recall@20"}, "valid_metric='Recall@20' is not computed"),
        ({"train_batch_size": 0}, "train_batch_size=0 must be a positive integer"),
        ({"learning_rate": -0.1}, "learning_rate=-0.1 must be a number > 0"),
        ({"learning_rate": "fast"}, "learning_rate='fast' must be a number > 0"),
    ],
)
def test_bad_training_settings_are_refused_before_loading(tiny, tmp_path, overrides, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[")):
        run_recbole("SASRec", "cycle", config_dict=dict(tiny, **overrides))
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize(
    ("model", "expected"), [(3, "model=3 is neither"), (dict, "not a RecBole")]
)
def test_a_model_that_is_not_a_name_or_a_model_class(tiny, model, expected):
    with pytest.raises(ConfigError, match=expected):
        run_recbole(model, "cycle", config_dict=tiny)


def test_a_yaml_error_names_the_file_and_line(tiny, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: [0.1\nhidden_size: 32\n")
    with pytest.raises(ConfigError, match=r"config file '.*bad.yaml', line \d: not valid YAML"):
        run_recbole("SASRec", "cycle", config_file_list=[str(bad)], config_dict=tiny)
    with pytest.raises(ConfigError, match="config file 'nowhere.yaml' does not exist"):
        run_recbole("SASRec", "cycle", config_file_list=["nowhere.yaml"], config_dict=tiny)


# ---- ml-100k: the user's copy when a data_path is given ---------------------------------------
def test_a_data_path_holding_ml_100k_is_read_instead_of_recbole_s(tmp_path):
    from conftest import N_USERS, write_cycle_dataset

    from recbole_sasrec.integration.quick_start import create_dataset

    root = write_cycle_dataset(tmp_path / "mine", name="ml-100k")
    config = Config("SASRec", "ml-100k", config_dict={"data_path": str(root)})
    assert config["data_path"] == str(root / "ml-100k")
    assert create_dataset(config).user_num - 1 == N_USERS  # the cycle's users, not 943


def test_without_a_data_path_ml_100k_is_recbole_s_copy():
    import os

    import recbole

    bundled = os.path.join(recbole.__path__[0], "dataset_example", "ml-100k")
    assert os.path.realpath(Config("SASRec", "ml-100k")["data_path"]) == os.path.realpath(bundled)


def test_a_data_path_without_ml_100k_is_refused_naming_both(tmp_path):
    import os

    import recbole

    bundled = os.path.join(recbole.__path__[0], "dataset_example", "ml-100k")
    with pytest.raises(ConfigError) as error:
        Config("SASRec", "ml-100k", config_dict={"data_path": str(tmp_path)})
    assert str(error.value) == (
        f"data_path={str(tmp_path)!r} holds no {tmp_path}/ml-100k/ml-100k.inter; allowed: a "
        f"data_path holding ml-100k/ml-100k.inter (or a log prepared by python -m "
        f"recbole_sasrec prepare), or no data_path for RecBole's own copy ({bundled})"
    )
    (tmp_path / "ml-100k").mkdir()  # a prepared ml-100k is read from its parts
    (tmp_path / "ml-100k" / "partitions.json").write_text("{}")
    config = Config("SASRec", "ml-100k", config_dict={"data_path": str(tmp_path)})
    assert config["data_path"] == str(tmp_path / "ml-100k")


# ---- values of the wrong type: refused, or converted on purpose -----------------------------
def test_numpy_scalars_are_taken_as_python_numbers():
    import numpy as np

    config = Config(
        "SASRec",
        "ml-100k",
        config_dict={"n_layers": np.int64(3), "adam_betas": [np.float64(0.9), 0.98]},
    )
    assert config["n_layers"] == 3 and type(config["n_layers"]) is int
    assert config["adam_betas"] == [0.9, 0.98] and type(config["adam_betas"][0]) is float


@pytest.mark.parametrize("layers", [2.0, 2.5, True])
def test_a_float_or_a_bool_for_an_integer_is_refused(layers):
    with pytest.raises(ConfigError) as error:
        Config("SASRec", "ml-100k", config_dict={"n_layers": layers})
    assert str(error.value) == f"n_layers={layers!r} must be a positive integer (1, 2, ...)"


def test_one_config_file_as_a_string_is_one_file(tmp_path):
    file = tmp_path / "a.yaml"
    file.write_text("n_layers: 3\n")
    assert Config("SASRec", "ml-100k", config_file_list=str(file))["n_layers"] == 3
    with pytest.raises(ConfigError) as error:
        Config("SASRec", "ml-100k", config_file_list=3)
    assert str(error.value) == (
        "config_file_list=3 must be a list of yaml file paths, e.g. ['a.yaml', 'b.yaml']"
    )


@pytest.mark.parametrize(
    ("model", "overrides", "expected"),
    [
        (
            "SASRec",
            {"eval_args": {"split": "LS"}},
            "eval_args split='LS' must be a mapping of one method; e.g. {'LS': "
            "'valid_and_test'} or {'RS': [0.8, 0.1, 0.1]}",
        ),
        (
            "SASRec",
            {"eval_args": {"split": {"RS": "0.8,0.1,0.1"}}},
            "eval_args split={'RS': '0.8,0.1,0.1'}: RS takes a list of three ratios (train, "
            "valid, test), numbers >= 0, e.g. {'RS': [0.8, 0.1, 0.1]}",
        ),
        (
            "RecBole.GRU4Rec",
            {"eval_args": {"split": {"LS": "valid"}}},
            "eval_args split={'LS': 'valid'}: LS (leave one out) takes one of valid_and_test, "
            "valid_only, test_only",
        ),
        (
            "LightSANs",
            {"eval_args": {"mode": ["uni100"]}},
            "eval_args mode=['uni100'] must be a mode name or a mapping of valid and test to "
            "mode names, e.g. 'uni100' or {'valid': 'full', 'test': 'uni100'}",
        ),
        (
            "SASRec",
            {"eval_args": {"group_by": ["user"]}},
            "eval_args group_by=['user']: allowed: 'user', or None (RS only)",
        ),
        (
            "SASRec",
            {"load_col": {"inter": "user_id"}},
            "load_col={'inter': 'user_id'}: 'inter' must be a list of field names (or '*' for "
            "every field), e.g. {'inter': ['user_id']}",
        ),
        (
            "RecBole.SASRec",
            {"unload_col": {"inter": "rating"}},
            "unload_col={'inter': 'rating'}: 'inter' must be a list of field names, e.g. "
            "{'inter': ['rating']}",
        ),
        (
            "SASRec",
            {"MAX_ITEM_LIST_LENGTH": 10.0},
            "MAX_ITEM_LIST_LENGTH=10.0 must be a positive integer (1, 2, ...)",
        ),
        ("SASRec", {"seed": 2.5}, "seed=2.5 must be an integer >= 0 (numpy's seeds are integers)"),
    ],
)
def test_a_string_or_a_float_where_a_list_or_an_int_belongs_is_refused(model, overrides, expected):
    with pytest.raises(ConfigError) as error:
        Config(model, "ml-100k", config_dict=overrides)
    assert str(error.value) == expected


# ---- a model too large for the machine ----------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "keys", "count"),
    [
        (
            {"hidden_size": 10**9},
            "hidden_size=1000000000, inner_size=256, n_layers=2, MAX_ITEM_LIST_LENGTH=50",
            (50 * 10**9 + 2 * (4 * 10**18 + 2 * 256 * 10**9)),
        ),
        (
            {"n_layers": 10**6},
            "hidden_size=64, inner_size=256, n_layers=1000000, MAX_ITEM_LIST_LENGTH=50",
            50 * 64 + 10**6 * (4 * 64 * 64 + 2 * 64 * 256),
        ),
    ],
)
def test_a_model_larger_than_the_memory_is_refused_before_data_loads(overrides, keys, count):
    import torch

    from recbole_sasrec.integration.memory import device_memory

    have, what = device_memory(torch.device("cpu"))
    with pytest.raises(ConfigError) as error:
        Config("SASRec", "ml-100k", config_dict=overrides)
    assert str(error.value) == (
        f"{keys} make a model of at least {count:.3g} parameters, {count * 4 / 2**30:.3g} GiB in "
        f"float32, more than the {have / 2**30:.3g} GiB of this machine's {what}; allowed: "
        f"smaller values of these keys (training needs several times the parameters' memory)"
    )


def test_run_py_refuses_a_port_that_is_not_a_number_before_any_work(tmp_path):
    # a word and a number out of range through run.py's own parser, a process each; the
    # other refusals (0, a float, a bool) are the library's: test_run_refuses_...
    for port in ("abc", "70000"):
        out = subprocess.run(
            [sys.executable, str(REPO / "run.py"), f"--port={port}"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert out.returncode == 2
        assert out.stderr.strip().splitlines()[-1] == (
            f"run.py: error: argument --port: port={port!r} is not a port number; allowed: an "
            f"integer from 1 to 65535, e.g. 5678 (command line: --port=5678)"
        )
        assert not (tmp_path / "log").exists()  # nothing ran


@pytest.mark.parametrize("port", ["abc", 5678.5, True, 0])
def test_run_refuses_a_port_that_is_not_a_port_number(tiny, port):
    from recbole_sasrec import run

    with pytest.raises(ConfigError) as error:
        run("SASRec", "cycle", config_dict=tiny, nproc=2, port=port)
    assert str(error.value) == (
        f"port={port!r} is not a port number; allowed: an integer from 1 to 65535, e.g. 5678 "
        f"(command line: --port=5678)"
    )
