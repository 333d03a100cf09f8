"""Items never seen in training, added to a trained model from their attributes alone: their
vectors, their ranking for every user, sessions that hold them, the same in an exported artifact
and through export --items, and every refusal before anything changes."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import (
    FEATURES,
    TINY,
    item_attributes,
    log_lines,
    train_converted,
    write_cycle_dataset,
    write_items,
)

from recbole_sasrec import ConfigError, Recommender, export, run_recbole
from recbole_sasrec.__main__ import main
from recbole_sasrec.inference.artifact import Artifact, ArtifactError


@pytest.fixture(scope="module")
def featured(tmp_path_factory):
    """SASRec on the tiny cycle with a token_seq, a token, a float and a float_seq field,
    item_id_dropout 0.3: (model file, the data set's folder)."""
    root = tmp_path_factory.mktemp("new-items")
    data = write_cycle_dataset(root / "data")
    write_items(data)
    config = dict(
        TINY,
        data_path=str(data),
        checkpoint_dir=str(root / "saved"),
        selected_features=FEATURES,
        item_id_dropout=0.3,
        epochs=3,
        MAX_ITEM_LIST_LENGTH=6,
    )
    cwd = os.getcwd()
    os.chdir(root)  # RecBole's log/ there
    try:
        model_file = run_recbole("SASRec", "cycle", config_dict=config)["model_file"]
    finally:
        os.chdir(cwd)
    return model_file, data / "cycle"


@pytest.fixture(scope="module")
def exported(featured, tmp_path_factory):
    """The trained model exported with an index."""
    return export(featured[0], tmp_path_factory.mktemp("export") / "model", ann=True)


def item_file(tmp_path, folder, rows: list[str], header: str | None = None):
    """A .item file of new items, with the data's header unless given."""
    header = header or (folder / "cycle.item").read_text().splitlines()[0]
    path = tmp_path / "new.item"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def copies(folder, names: dict[str, str]) -> list[str]:
    """Rows of new items, each with a known item's attributes: {new token: known token}."""
    lines = (folder / "cycle.item").read_text().splitlines()[1:]
    cells = dict(line.split("\t", 1) for line in lines)
    return [f"{new}\t{cells[known]}" for new, known in names.items()]


@pytest.fixture
def new_items(featured, tmp_path):
    """n7 and n8: new items with the attributes of i7 and i8."""
    return item_file(tmp_path, featured[1], copies(featured[1], {"n7": "i7", "n8": "i8"}))


def user_vector(rec, ids: list[int]) -> np.ndarray:
    """The model's state after a sequence of item ids (rows of the grown table), [D]."""
    with torch.no_grad():
        seq = torch.from_numpy(rec._table[ids])[None]  # [1, T, D]
        return rec.model(seq, torch.tensor([len(ids)]))[0].numpy()


def test_new_items_with_known_attributes_get_those_items_attribute_part(featured, new_items):
    rec = Recommender(featured[0])
    known = rec.item_ids(["i7", "i8"])
    assert rec.add_items(new_items) == ["n7", "n8"]
    added = rec.item_ids(["n7", "n8"])
    assert added == [31, 32]  # after the 30 trained items and the pad
    with torch.no_grad():
        attributes = rec.model.embedding.features(torch.tensor(known)).numpy()
        id_rows = rec.model.embedding.item.weight[known].numpy()
    np.testing.assert_allclose(rec._table[added], attributes, rtol=1e-5, atol=1e-6)
    # the trained items differ from them by their id rows alone (no id row for a new item)
    np.testing.assert_allclose(rec._table[known] - rec._table[added], id_rows, atol=1e-6)


def test_a_new_item_is_ranked_for_every_user_at_its_inner_product(featured, new_items, tmp_path):
    rec = Recommender(featured[0])
    rec.add_items(new_items)
    n = len(rec._item_tokens) - 1  # 32 items
    (ranked,) = rec.recommend(users=["u1"], k=n, exclude_seen=False)
    scores = {r.item: r.score for r in ranked}  # every item, best first
    history = rec.history("u1")[-rec.max_len :]
    h = user_vector(rec, history)
    with torch.no_grad():  # the table's rows are what the model looks up itself
        by_ids = rec.model(torch.tensor([history]), torch.tensor([len(history)]))[0].numpy()
    np.testing.assert_allclose(h, by_ids, rtol=1e-6, atol=1e-7)
    for token in ("n7", "n8"):
        (i,) = rec.item_ids([token])
        np.testing.assert_allclose(scores[token], h @ rec._table[i], rtol=1e-5)
    table = rec.recommend_all(k=n, exclude_seen=False, batch_size=7)
    assert table.groupby("user")["item"].apply(lambda s: {"n7", "n8"} <= set(s)).all()
    row = table[(table["user"] == "u1") & (table["item"] == "n7")]
    np.testing.assert_allclose(row["score"], scores["n7"], rtol=1e-5)
    rec.write_recommendations(tmp_path / "top.csv", k=n, exclude_seen=False, batch_size=7)
    written = pd.read_csv(tmp_path / "top.csv", dtype={"user": str, "item": str})
    pd.testing.assert_frame_equal(written, table, check_dtype=False, rtol=1e-5, atol=1e-6)


def test_sessions_holding_new_items_are_encoded_from_their_vectors(featured, new_items):
    rec = Recommender(featured[0])
    rec.add_items(new_items)
    session = ["i3", "n7", "i9"]
    (ranked,) = rec.recommend(item_sequences=[session], k=5)
    ids = rec.item_ids(session)
    scores = rec._table @ user_vector(rec, ids)
    scores[[0, *ids]] = -np.inf  # the pad and the session's own items
    top = np.argsort(-scores, kind="stable")[:5]
    assert [r.item for r in ranked] == rec._item_tokens[top].tolist()
    np.testing.assert_allclose([r.score for r in ranked], scores[top], rtol=1e-5)
    (known,) = rec.recommend(item_sequences=[["i3", "i7", "i9"]], k=5)
    assert [r.score for r in known] != [r.score for r in ranked]  # n7 is not i7 to the encoder
    tokens, maps = rec.attention(items=session)
    assert tokens == session and maps[0]["self-attention"].shape[-1] == 3


def test_tokens_never_seen_are_left_out_of_the_mean_with_one_warning(featured, tmp_path, caplog):
    (row,) = copies(featured[1], {"plain": "i7"})
    item, cats, rest = row.split("\t", 2)
    path = item_file(tmp_path, featured[1], [row, f"extra\t{cats} never-seen\t{rest}"])
    rec = Recommender(featured[0])
    with caplog.at_level(logging.WARNING):
        rec.add_items(path)
    plain, extra = rec.item_ids(["plain", "extra"])
    np.testing.assert_array_equal(rec._table[extra], rec._table[plain])
    warned = [r.getMessage() for r in caplog.records if r.name == "recbole_sasrec.data.new_items"]
    assert warned == [
        f"{path}: 1 attribute value(s) never seen in training (cats: 1) left out of their "
        f"items' vectors"
    ]


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["n1\tzz yy\tbq\t\t"], None, "1 item(s) have no attribute value the model learned"),
        (["n1\tc1\tb1\t1\t0 1", "n1\tc2\tb1\t1\t0 1"], None, "listed more than once ('n1')"),
        (["n1\tc1\tb1\t1\t0 1", "i7\tc2\tb1\t1\t0 1"], None, "already in the catalogue ('i7')"),
        ([], None, "no items; allowed: a file with at least one new item"),
        (["n1\tc1"], "item_id:token\tcats:token_seq", "no field brand, price, embedding"),
    ],
)
def test_a_refused_file_changes_nothing(featured, tmp_path, rows, header, message):
    rec = Recommender(featured[0])
    before = rec._table.copy(), rec._item_tokens.copy(), dict(rec._item_token_id)
    path = item_file(tmp_path, featured[1], rows, header)
    with pytest.raises(ConfigError) as error:
        rec.add_items(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    np.testing.assert_array_equal(rec._table, before[0])
    assert rec._item_tokens.tolist() == before[1].tolist() and rec._item_token_id == before[2]
    assert len(rec.recommend(users=["u1"], k=3)[0]) == 3


def test_a_model_without_attributes_refuses_new_items(trained_relative, tmp_path):
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"n1": ["a"]}))
    rec = Recommender(trained_relative[1])
    with pytest.raises(ConfigError) as error:
        rec.add_items(path)
    assert str(error.value) == (
        f"{path}: model_file={trained_relative[1]!r} (SASRec) reads no item attributes "
        f"(selected_features: []), so a new item has nothing to compute its vector from; "
        f"allowed: a model trained with selected_features (best also with item_id_dropout > 0)"
    )


def test_the_attribute_json_adds_items_to_a_model_trained_on_it(tmp_path):
    attributes = item_attributes(30)
    log = log_lines(n_users=40, n_items=30, step=7, length=(8, 9))
    result = train_converted(
        tmp_path, log, str(tmp_path / "data"), "toy", attributes=attributes, epochs=1
    )
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"n7": attributes["7"], "n9": attributes["9"][:1]}))
    rec = Recommender(result["model_file"])
    assert rec.add_items(path) == ["n7", "n9"]
    with torch.no_grad():
        seven = rec.model.embedding.features(torch.tensor(rec.item_ids(["7"]))).numpy()
    np.testing.assert_allclose(rec._table[rec.item_ids(["n7"])], seven, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # one token: that token's row of the attribute table
        token = rec.dataset.field2token_id["attributes"][attributes["9"][0]]
        row = rec.model.embedding.features.tables["attributes"].weight[token].numpy()
    np.testing.assert_allclose(rec._table[rec.item_ids(["n9"])[0]], row, rtol=1e-5, atol=1e-6)


# ---- the exported artifact ------------------------------------------------------------------
SESSIONS = [["i3", "n7", "i9"], ["n8"], ["i1", "i2", "i4", "i5", "i6", "i10", "i11"]]


def assert_same_recommendations(artifact: Artifact, rec: Recommender) -> None:
    served = artifact.recommend_batch(SESSIONS, k=5)
    for ours, theirs in zip(served, rec.recommend(item_sequences=SESSIONS, k=5), strict=True):
        assert [t for t, _ in ours] == [r.item for r in theirs]
        np.testing.assert_allclose([s for _, s in ours], [r.score for r in theirs], rtol=1e-4)


def test_the_artifact_adds_items_as_the_recommender_does(featured, exported, new_items):
    rec = Recommender(featured[0])
    rec.add_items(new_items)
    for approximate in (False, True):
        artifact = Artifact.load(exported, approximate=approximate)
        assert artifact.add_items(new_items) == ["n7", "n8"]
        np.testing.assert_allclose(artifact.items, rec._table, rtol=1e-4, atol=1e-6)
        assert artifact.tokens == rec._item_tokens.tolist()
        if approximate:  # the index holds them too
            assert artifact.index.index.ntotal == len(artifact.items) - 1 == 32
            found = {t for t, _ in artifact.recommend(["i3"], k=31)}
            assert {"n7", "n8"} <= found
        else:
            assert_same_recommendations(artifact, rec)
        with pytest.raises(ConfigError, match=r"already in the catalogue \('n7', 'n8'\)"):
            artifact.add_items(new_items)


def test_a_boost_adds_to_the_new_items_scores_alone(featured, exported, new_items, tmp_path):
    plain, boosted = Recommender(featured[0]), Recommender(featured[0])
    plain.add_items(new_items)
    boosted.add_items(new_items, boost=2.5)
    n = len(plain._item_tokens) - 1
    (before,) = plain.recommend(users=["u1"], k=n, exclude_seen=False)
    (after,) = boosted.recommend(users=["u1"], k=n, exclude_seen=False)
    before, after = {r.item: r.score for r in before}, {r.item: r.score for r in after}
    for token, score in before.items():
        shift = 2.5 if token in ("n7", "n8") else 0.0
        np.testing.assert_allclose(after[token], score + shift, rtol=1e-5, atol=1e-5)
    # later items get their own boost; the earlier ones keep theirs
    (tmp_path / "later").mkdir()
    later = item_file(tmp_path / "later", featured[1], copies(featured[1], {"n3": "i3"}))
    boosted.add_items(later, boost=-1.0)
    np.testing.assert_allclose(boosted._bias[-4:], [0.0, 2.5, 2.5, -1.0])
    huge = Recommender(featured[0])
    huge.add_items(new_items, boost=1e4)
    (top,) = huge.recommend(users=["u1"], k=2)
    assert {r.item for r in top} == {"n7", "n8"}
    artifact = Artifact.load(exported)  # exact ranking: the same boost, the same lists
    artifact.add_items(new_items, boost=2.5)
    rec = Recommender(featured[0])
    rec.add_items(new_items, boost=2.5)
    assert_same_recommendations(artifact, rec)


@pytest.mark.parametrize("boost", [float("nan"), float("inf"), "1", True, None])
def test_a_boost_that_is_not_a_finite_number_is_refused_before_adding(featured, new_items, boost):
    rec = Recommender(featured[0])
    with pytest.raises(ValueError, match=rf"boost={boost!r} must be a (finite )?number"):
        rec.add_items(new_items, boost=boost)
    assert len(rec._item_tokens) == 31 and rec._bias is None


def test_an_approximate_artifact_refuses_a_boost(exported, new_items):
    artifact = Artifact.load(exported, approximate=True)
    with pytest.raises(ConfigError, match=r"boost=1\.0: .* approximate index .* allowed: boost=0"):
        artifact.add_items(new_items, boost=1.0)
    assert len(artifact.tokens) == 31
    assert artifact.add_items(new_items, boost=0) == ["n7", "n8"]


def test_export_with_items_serves_them_as_the_recommender_does(featured, new_items, tmp_path):
    out = tmp_path / "with-new"
    with pytest.raises(ConfigError, match="no-such.item'?: no such file"):
        export(featured[0], out, items=tmp_path / "no-such.item")
    argv = ["export", "--model-file", featured[0], "--out", str(out), "--items", str(new_items)]
    assert main(argv) == 0
    artifact = Artifact.load(out)
    assert artifact.tokens[-2:] == ["n7", "n8"]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["new_items"] == 2
    assert {"attributes.json", "attributes.npz"} <= set(metadata["files"])
    rec = Recommender(featured[0])
    rec.add_items(new_items)
    np.testing.assert_allclose(artifact.items, rec._table, rtol=1e-5, atol=1e-6)
    assert_same_recommendations(artifact, rec)


def test_export_with_items_and_a_boost_ranks_as_the_recommender_does(featured, new_items, tmp_path):
    out = tmp_path / "boosted"
    for wrong in (dict(items=None), dict(items=new_items, ann=True)):
        with pytest.raises(ConfigError, match=r"boost=2\.5 .* allowed: boost=0, or items"):
            export(featured[0], out, boost=2.5, **wrong)
    assert not out.exists()
    argv = ["export", "--model-file", featured[0], "--out", str(out), "--items", str(new_items)]
    assert main([*argv, "--boost", "2.5"]) == 0
    assert json.loads((out / "metadata.json").read_text())["new_items_boost"] == 2.5
    artifact = Artifact.load(out)
    rec = Recommender(featured[0])
    rec.add_items(new_items, boost=2.5)
    np.testing.assert_array_equal(artifact.bias, rec._bias)
    assert_same_recommendations(artifact, rec)


def test_the_attribute_tables_are_checked_on_load(exported, tmp_path):
    import shutil

    folder = shutil.copytree(exported, tmp_path / "model")
    arrays = dict(np.load(folder / "attributes.npz"))
    arrays["cats.weight"] = arrays["cats.weight"][:-1]  # a row short
    np.savez(folder / "attributes.npz", **arrays)
    with pytest.raises(ArtifactError, match=r"attributes.npz: sha256 .* but metadata.json"):
        Artifact.load(folder)
    from recbole_sasrec.inference.checks import sha256

    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["files"]["attributes.npz"] = sha256(folder / "attributes.npz")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match=r"expected cats.weight, finite floats of shape \["):
        Artifact.load(folder)


def test_a_checkpoint_without_the_float_statistics_loads_but_refuses_new_items(
    featured, new_items, tmp_path
):
    checkpoint = torch.load(featured[0], weights_only=True)
    state = checkpoint["state_dict"]
    dropped = [k for k in state if k.endswith(("_mean", "_std"))]
    assert sorted(k.split(".")[-1] for k in dropped) == [
        "embedding_mean",
        "embedding_std",
        "price_mean",
        "price_std",
    ]
    for key in dropped:
        del state[key]
    older = str(tmp_path / "older.pth")
    torch.save(checkpoint, older)
    rec = Recommender(older)  # as written before the statistics were saved: it scores as before
    assert rec.recommend(users=["u1", "u2"], k=5) == Recommender(featured[0]).recommend(
        users=["u1", "u2"], k=5
    )
    with pytest.raises(ConfigError, match=r"float field 'price' has no training mean and std"):
        rec.add_items(new_items)
    assert len(rec._item_tokens) == 31
    folder = export(older, tmp_path / "older-model")  # exports, without attribute tables
    assert not (folder / "attributes.npz").exists()
    with pytest.raises(ConfigError, match="has no attribute tables"):
        Artifact.load(folder).add_items(new_items)
