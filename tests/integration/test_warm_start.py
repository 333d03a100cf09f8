"""init_from: a model started from yesterday's checkpoint on a grown log (new users, items and
attribute values), its rows matched by token."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY, item_attributes, log_lines, train_converted

from recbole_sasrec import Config, convert, run_recbole
from recbole_sasrec.core.keys import ConfigError
from recbole_sasrec.integration.quick_start import prepare

YESTERDAY, TODAY = dict(n_users=30, n_items=20), dict(n_users=40, n_items=24)
COPY = dict(init_shrink=1.0, init_perturb=0.0)  # yesterday's weights as they are (not the default)


def today_attributes() -> dict[str, list[str]]:
    """Items 1..24: those of yesterday as they were; 21..24 new, with a brand never seen."""
    attributes = item_attributes(24)
    for i in range(21, 25):
        attributes[str(i)] = [f"even{i % 2}", f"cat{i % 3}", "brand-new"]
    return attributes


@pytest.fixture(scope="module")
def yesterday(tmp_path_factory):
    """(root, checkpoints): SASRec trained on yesterday's log with and without attributes, and
    today's grown log converted beside it (data set 'today', its .item file)."""
    root = tmp_path_factory.mktemp("warm")
    data = str(root / "data")
    files = {}
    for name, attributes in (("featured", item_attributes(20)), ("plain", None)):
        result = train_converted(root, log_lines(**YESTERDAY), data, name, attributes=attributes)
        assert result["test_result"]["hit@10"] > 0.9  # it learned the cycle
        files[name] = result["model_file"]
    lightsans = train_converted(
        root, log_lines(**YESTERDAY), data, "lightsans", "LightSANs", item_attributes(20), epochs=2
    )
    files["LightSANs"] = lightsans["model_file"]
    (root / "today.txt").write_text(log_lines(**TODAY))
    convert(str(root / "today.txt"), data, "today")
    (root / "today.json").write_text(json.dumps(today_attributes()))
    convert(str(root / "today.json"), data, "today", "attributes")
    return root, files


def keys(root, init_from, **more) -> dict:
    return (
        dict(
            TINY,
            data_path=str(root / "data"),
            checkpoint_dir=str(root / "saved"),
            init_from=init_from,
        )
        | more
    )


def started(root, init_from, model="SASRec", **more):
    """(today's dataset, the model built for it from ``init_from``)."""
    config = Config(model=model, dataset="today", config_dict=keys(root, init_from, **more))
    _, train, _, _, net = prepare(config)
    return train._dataset, net


def yesterdays(path: str) -> tuple[dict, dict]:
    checkpoint = torch.load(path, weights_only=True)
    return checkpoint["state_dict"], checkpoint["data"]["vocabularies"]


def test_rows_follow_their_tokens_and_new_items_start_from_their_attributes(yesterday):
    root, files = yesterday
    dataset, net = started(root, files["featured"], selected_features=["attributes"], **COPY)
    old, vocab = yesterdays(files["featured"])
    state = net.state_dict()
    was = {token: i for i, token in enumerate(vocab["item_id"])}
    tokens = list(dataset.field2id_token["item_id"])
    assert len(tokens) == 25 and len(vocab["item_id"]) == 21  # 4 new items, and the pad
    for i, token in enumerate(tokens[1:], start=1):
        row = state["embedding.item.weight"][i]
        if token in was:
            torch.testing.assert_close(row, old["embedding.item.weight"][was[token]])
        else:  # a new item: no id row, its vector its attributes' alone
            assert int(token) > 20 and not row.any()
    table = "embedding.features.tables.attributes.weight"
    was_attr = {token: i for i, token in enumerate(vocab["attributes"])}
    for i, token in enumerate(dataset.field2id_token["attributes"][1:], start=1):
        if token in was_attr:
            torch.testing.assert_close(state[table][i], old[table][was_attr[token]])
        else:
            assert token == "brand-new" and state[table][i].abs().sum() > 0  # freshly drawn
    for key in ("blocks.0.attn.qkv.weight", "embedding.position.weight", "final_ln.weight"):
        torch.testing.assert_close(state[key], old[key])
    # what the data decides is today's: every item's attribute tokens, in today's ids
    assert state["embedding.features.attributes_values"].shape[0] == 25
    assert not torch.equal(
        state["embedding.item.weight"][: len(old["embedding.item.weight"])],
        old["embedding.item.weight"],
    )  # the ids moved: a copy by position would have been wrong


def test_lightsans_starts_from_its_checkpoint_too(yesterday):
    root, files = yesterday
    features = dict(selected_features=["attributes"], **COPY)
    dataset, net = started(root, files["LightSANs"], "LightSANs", **features)
    old, vocab = yesterdays(files["LightSANs"])
    state = net.state_dict()
    for key in ("position_embedding.weight", "blocks.1.attn.theta_k.weight", "final_ln.bias"):
        torch.testing.assert_close(state[key], old[key])
    tokens = list(dataset.field2id_token["item_id"])
    item = tokens.index("7")
    torch.testing.assert_close(
        state["embedding.item.weight"][item],
        old["embedding.item.weight"][vocab["item_id"].index("7")],
    )


def test_without_attributes_new_items_get_a_fresh_row(yesterday):
    root, files = yesterday
    dataset, net = started(root, files["plain"])
    _, vocab = yesterdays(files["plain"])
    new = [i for i, t in enumerate(dataset.field2id_token["item_id"]) if t not in vocab["item_id"]]
    rows = net.state_dict()["embedding.item.weight"][new]
    assert len(new) == 4 and (rows.norm(dim=1) > 0).all()


@pytest.mark.parametrize(
    "given, shrink, perturb",
    [({}, 0.8, 0.01), ({"init_shrink": 0.5, "init_perturb": 0.1}, 0.5, 0.1)],
    ids=["default", "given"],
)
def test_shrink_and_perturb_blends_the_copied_weights_with_a_fresh_initialisation(
    yesterday, given, shrink, perturb
):
    root, files = yesterday
    features = dict(selected_features=["attributes"])
    dataset, net = started(root, files["featured"], **features, **given)
    _, fresh = started(root, None, **features)  # the same seed: the same fresh initialisation
    old, vocab = yesterdays(files["featured"])
    state, new = net.state_dict(), fresh.state_dict()
    for key in ("blocks.0.attn.qkv.weight", "embedding.position.weight", "final_ln.weight"):
        torch.testing.assert_close(state[key], shrink * old[key] + perturb * new[key])
    was = {token: i for i, token in enumerate(vocab["item_id"])}
    for i, token in enumerate(dataset.field2id_token["item_id"][1:], start=1):
        row = state["embedding.item.weight"][i]
        if token in was:  # a row matched by token: blended with its own fresh row
            expected = shrink * old["embedding.item.weight"][was[token]]
            torch.testing.assert_close(row, expected + perturb * new["embedding.item.weight"][i])
        else:  # a new item still starts from its attributes alone
            assert not row.any()
    # what the data decides is not a weight: today's, untouched
    values = "embedding.features.attributes_values"
    torch.testing.assert_close(state[values], new[values])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"init_shrink": 0.5}, r"init_shrink=0.5 acts on the weights init_from copies.*0\.8"),
        ({"init_perturb": 0.0}, r"init_perturb=0.0 acts on the weights init_from copies"),
        ({"init_shrink": 0.0}, r"init_shrink=0.0 must be a number in \(0, 1\]"),
        ({"init_perturb": -0.1}, r"init_perturb=-0.1 must be a number in \[0, inf\)"),
    ],
)
def test_shrink_and_perturb_values_and_their_need_of_init_from_are_checked(change, message):
    with pytest.raises(ConfigError, match=message):
        run_recbole("SASRec", "ml-100k", config_dict=change)


def test_a_started_model_knows_the_cycle_a_fresh_one_does_not(yesterday):
    root, files = yesterday
    still = dict(learning_rate=1e-9, epochs=1)  # what it knew before any step
    scores = {}
    for start in (files["plain"], None):
        what = still | (COPY if start else {})
        result = run_recbole("SASRec", "today", config_dict=keys(root, start, **what), saved=False)
        scores[start] = result["test_result"]["hit@10"]
    assert scores[files["plain"]] > 0.6 > scores[None] + 0.3


@pytest.mark.parametrize(
    "change, named",
    [
        ({"hidden_size": 16}, r"hidden_size=32.*hidden_size=16"),
        ({"selected_features": ["attributes"]}, r"selected_features=\[\].*\['attributes'\]"),
    ],
)
def test_another_width_or_features_are_refused_before_the_data_loads(yesterday, change, named):
    root, files = yesterday
    config = keys(root, files["plain"], **change) | {"data_path": str(root / "nowhere")}
    with pytest.raises(ConfigError, match=r"init_from=.*was trained with " + named):
        run_recbole("SASRec", "today", config_dict=config)


def test_another_model_is_refused(yesterday):
    root, files = yesterday
    with pytest.raises(ConfigError, match=r"model='SASRec'.*model='LightSANs'"):
        run_recbole("LightSANs", "today", config_dict=keys(root, files["plain"]))


@pytest.mark.parametrize(
    "change, named",
    [
        ({"n_layers": 3}, r"blocks\.2\..*: not in the checkpoint"),
        (
            {"inner_size": 32},
            r"blocks\.0\.mlp\.fc1\.weight: \[64, 32\] in the checkpoint, \[32, 32\] now",
        ),
    ],
)
def test_weights_of_another_shape_are_refused_naming_them(yesterday, change, named):
    root, files = yesterday
    with pytest.raises(ConfigError, match=r"init_from=.*do not fit the model built now: " + named):
        started(root, files["plain"], **change)


def test_a_missing_or_older_checkpoint_is_refused(yesterday, tmp_path):
    root, files = yesterday
    with pytest.raises(ConfigError, match=r"init_from='nothing.pth': model_file=.* not exist"):
        started(root, "nothing.pth")
    checkpoint = torch.load(files["plain"], weights_only=True)
    del checkpoint["data"]["vocabularies"]
    older = str(tmp_path / "older.pth")
    torch.save(checkpoint, older)
    with pytest.raises(ConfigError, match=r"records no vocabularies .*retrain once"):
        started(root, older)


def test_init_from_must_be_a_path():
    with pytest.raises(ConfigError, match=r"init_from=3 must be the path of a checkpoint"):
        Config(model="SASRec", dataset="ml-100k", config_dict={"init_from": 3})
