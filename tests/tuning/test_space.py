"""Params files: kinds, skipped lines, malformed lines and keys no model reads, and which model a file tunes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import REPO, write

from recbole_sasrec import ConfigError
from recbole_sasrec.tuning import (
    load_search_space,
    parse_params_file,
    resolve_model,
)


def test_repository_search_spaces_parse_for_their_models():
    sasrec = load_search_space(REPO / "hyper/sasrec.test", "SASRec")
    assert [p.key for p in sasrec] == [
        "learning_rate",
        "attn_dropout_prob",
        "hidden_dropout_prob",
        "n_heads",
        "n_layers",
    ]
    assert math.prod(len(p.grid()) for p in sasrec) == 120  # the full exhaustive search
    lightsans = load_search_space(REPO / "hyper/lightsans.test", "LightSANs")
    assert {p.key: p.args for p in lightsans}["num_layers"] == (1, 2, 3)  # alias of n_layers
    with pytest.raises(ConfigError, match=r"line 2 'num_layers choice \[1,2,3\]'.*n_layers"):
        load_search_space(REPO / "hyper/lightsans.test", "SASRec")  # SASRec has no alias


def test_values_kinds_and_skipped_lines(tmp_path):
    path = write(
        tmp_path / "s.test",
        "# comment\n\n"
        "hidden_act choice ['gelu', 'relu']\n"
        "hidden_dropout_prob uniform 0.1, 0.5\n"
        "n_layers quniform 1,3,1\n"
        "attn_dropout_prob quniform 0.1,0.3,0.1\n"
        "learning_rate loguniform -9.2,-4.6\n",
    )
    params = {p.key: p for p in parse_params_file(path)}
    assert params["hidden_act"].grid() == ["gelu", "relu"]
    assert params["hidden_act"].line_no == 3
    assert params["hidden_dropout_prob"].args == (0.1, 0.5)
    assert params["n_layers"].grid() == [1, 2, 3]
    assert all(type(v) is int for v in params["n_layers"].grid())  # ints for n_layers, not 2.0
    assert np.allclose(params["attn_dropout_prob"].grid(), [0.1, 0.2, 0.3])
    # hyperopt's loguniform bounds are logs; Tune's are the values themselves
    tune_lr = params["learning_rate"].tune()
    assert (tune_lr.lower, tune_lr.upper) == pytest.approx((math.exp(-9.2), math.exp(-4.6)))


@pytest.mark.parametrize(
    "line, reason",
    [
        ("learning_rate choice [0.01", "not a Python list literal"),
        ("learning_rate choice 0.01", "not a non-empty list"),
        ("learning_rate choice []", "not a non-empty list"),
        ("learning_rate uniform 0.1", "uniform takes 2 comma-separated numbers"),
        ("learning_rate uniform 0.5,0.1", "low=0.5 must be smaller than high=0.1"),
        ("learning_rate loguniform a,b", "are not all numbers"),
        ("n_layers quniform 1,3,0", "q=0 must be > 0"),
        ("learning_rate normal 0,1", "unknown kind 'normal'"),
        ("learning_rate", "expected '<key> <kind> <values>'"),
        ("hidden_act choice ['gelu']", "already tuned by line 2"),
    ],
)
def test_malformed_line_names_file_line_and_reason(tmp_path, line, reason):
    path = write(tmp_path / "sasrec.test", f"# ranges\nhidden_act choice ['relu']\n{line}\n")
    with pytest.raises(ConfigError) as error:
        parse_params_file(path)
    message = str(error.value)
    assert f"{path}: line 3 {line!r}" in message
    assert reason in message


@pytest.mark.parametrize(
    "line, model, hint",
    [
        ("n_layer choice [1, 2]", "SASRec", "did you mean 'n_layers'?"),
        (
            "k_interests choice [5, 10]",
            "SASRec",
            "SASRec's keys (adam_betas, adam_fused, attn_dropout_prob",
        ),
        ("lr choice [0.01]", "LightSANs", "LightSANs's keys ("),
    ],
)
def test_key_no_model_reads_is_refused(tmp_path, line, model, hint):
    path = write(tmp_path / "space.test", f"learning_rate choice [0.01]\n{line}\n")
    with pytest.raises(ConfigError) as error:
        load_search_space(path, model)
    key = line.split()[0]
    message = str(error.value)
    assert f"{path}: line 2 {line!r}: {key!r} is not a key {model}" in message
    assert hint in message


def test_builtin_models_are_checked_against_recbole_yaml(tmp_path):
    path = write(
        tmp_path / "gru.test", "dropout_prob choice [0.1, 0.3]\nembedding_size choice [64]\n"
    )
    assert [p.key for p in load_search_space(path, "GRU4Rec")] == ["dropout_prob", "embedding_size"]
    with pytest.raises(ConfigError, match="'dropout_prob' is not a key SASRec"):
        load_search_space(path, "SASRec")


def test_model_is_inferred_from_the_file_name_and_never_contradicted(tmp_path):
    assert resolve_model("hyper/sasrec.test", None) == "SASRec"
    assert resolve_model("hyper/lightsans.test", None) == "LightSANs"
    assert resolve_model("x/LightSANs.test", None) == "LightSANs"  # case-insensitive
    assert resolve_model("hyper/sasrec-short.test", None) == "SASRec"  # a variant's space
    assert resolve_model("hyper/lightsans_beauty.test", None) == "LightSANs"
    assert resolve_model("hyper/sasrecs.test", "LightSANs") == "LightSANs"  # not a prefix match
    assert resolve_model("hyper/sasrec.test", "SASRec") == "SASRec"
    assert resolve_model("hyper/mine.test", "LightSANs") == "LightSANs"
    with pytest.raises(ConfigError, match="model='SASRec' disagrees with .*LightSANs's search"):
        resolve_model("hyper/lightsans.test", "SASRec")
    with pytest.raises(ConfigError, match="disagrees"):
        resolve_model("hyper/sasrec.test", "RecBole.SASRec")
    with pytest.raises(ConfigError, match=r"sasrec\[-<anything>\].test, lightsans.*--model=<name>"):
        resolve_model("hyper/mine.test", None)
    with pytest.raises(ConfigError, match="neither a model of recbole_sasrec nor of RecBole"):
        resolve_model("hyper/mine.test", "NoSuchModel")
