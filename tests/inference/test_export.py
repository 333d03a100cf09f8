"""Exported artifacts: the same recommendations as the checkpoint, served without RecBole; atomic
folders; only an earlier export replaced."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from conftest import item_attributes, log_lines, train_converted, train_gru4rec

from recbole_sasrec import ConfigError, Recommender, export
from recbole_sasrec.__main__ import main
from recbole_sasrec.inference import export as export_module
from recbole_sasrec.inference.artifact import Artifact
from recbole_sasrec.inference.output import DiskFullError


@pytest.fixture(
    scope="module",
    params=[
        "SASRec-CE",
        "LightSANs-SSM",
        "SASRec-gBCE-from-end-query-norm",
        "LightSANs-CE-attributes",
    ],
)
def exported(request, tmp_path_factory):
    """(checkpoint, exported folder) of a small model trained on a converted log."""
    model, loss = request.param.split("-")[:2]
    root = tmp_path_factory.mktemp(request.param)
    keys = {"loss_type": loss, "loss_negatives": 8, "epochs": 3, "MAX_ITEM_LIST_LENGTH": 6}
    keys["positions_from_end"] = "from-end" in request.param
    if request.param.endswith("query-norm"):  # the paper's code's LayerNorms (block_norm)
        keys["block_norm"] = "query"
    if request.param.endswith("attributes"):  # item vectors of ids and attributes
        keys["attributes"] = item_attributes(30)
    log = log_lines(n_users=40, n_items=30, step=7, length=(8, 9))
    model_file = train_converted(root, log, "data", "toy", model, **keys)["model_file"]
    return model_file, export(model_file, root / "artifact")


SESSIONS = [["1"], ["5", "6", "7"], [str(i) for i in range(3, 20)], ["30", "29", "2", "2"]]


def test_the_artifact_recommends_what_the_checkpoint_does(exported):
    model_file, folder = exported
    served = Artifact.load(folder).recommend_batch(SESSIONS, k=5)
    rec = Recommender(model_file).recommend(item_sequences=SESSIONS, k=5)
    for ours, theirs in zip(served, rec, strict=True):  # longer and shorter than L = 6
        assert [t for t, _ in ours] == [r.item for r in theirs]
        np.testing.assert_allclose([s for _, s in ours], [r.score for r in theirs], rtol=1e-4)
    excluded = Artifact.load(folder).recommend(["5"], k=3, exclude=["6", "7"])
    assert {"5", "6", "7"}.isdisjoint(t for t, _ in excluded)


def test_metadata_and_files(exported):
    _, folder = exported
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["max_item_list_length"] == 6 and metadata["data"]["items"] == 30
    # with attributes: the tables that add new items
    tables = (
        {"attributes.json", "attributes.npz"} if metadata["config"]["selected_features"] else set()
    )
    assert set(metadata["files"]) == {"encoder.onnx", "items.npy", "item_tokens.json", *tables}
    assert metadata["new_items"] == 0
    assert np.load(folder / "items.npy").dtype == np.float32


def test_unknown_tokens_are_named(exported):
    with pytest.raises(ValueError, match=r"items 'x9', 'y' are not items of this model"):
        Artifact.load(exported[1]).recommend(["1", "x9", "y"])


def test_serving_loads_fast_and_imports_neither_recbole_nor_torch(exported):
    probe = (
        "import sys, time; t = time.perf_counter()\n"
        "from recbole_sasrec.inference.artifact import Artifact\n"
        f"a = Artifact.load({str(exported[1])!r})\n"
        "loaded = time.perf_counter() - t\n"
        "a.recommend(['1', '2'], k=3)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('recbole', 'torch')]\n"
        "print(loaded, bad)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded, bad = out.stdout.split(" ", 1)
    assert bad.strip() == "[]" and float(loaded) < 1.0


def test_export_is_atomic_and_refuses_what_it_cannot_export(exported, tmp_path, capsys):
    model_file, folder = exported
    with pytest.raises(ConfigError, match="exists; allowed: another folder, or --replace"):
        export(model_file, folder)
    before = (folder / "metadata.json").read_text()
    assert main(["export", "--model-file", model_file, "--out", str(folder), "--replace"]) == 0
    assert "wrote" in capsys.readouterr().out and (folder / "metadata.json").read_text()
    assert (
        json.loads(before)["files"] == json.loads((folder / "metadata.json").read_text())["files"]
    )
    gru = train_gru4rec(tmp_path)
    with pytest.raises(ConfigError, match="is a GRU4Rec checkpoint; export serves"):
        export(gru, tmp_path / "gru")
    assert not (tmp_path / "gru").exists() and not list(tmp_path.glob(".gru.export-*"))


def test_the_encoder_records_its_window_and_width(exported):
    _, folder = exported
    props = {p.key: p.value for p in onnx.load(str(folder / "encoder.onnx")).metadata_props}
    assert props == {"max_item_list_length": "6", "hidden_size": "32"}


# ---- what --replace may replace ---------------------------------------------------------------
def user_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    return mine


NOT_EXPORTS = {
    "a folder of the user's files": (
        user_folder,
        "it holds notes.txt, which an export does not write",
    ),
    "a plain file": (lambda t: write(t / "model_dir", "keep me"), "it is not a folder"),
    "an empty folder": (lambda t: mkdir(t / "model_dir"), "it has no readable metadata.json"),
    "another format": (
        lambda t: write(mkdir(t / "model_dir") / "metadata.json", '{"format": "other/2"}').parent,
        "its metadata.json has format 'other/2', not recbole_sasrec-artifact/2 or "
        "recbole_sasrec-artifact/1",
    ),
}


def write(path, text):
    path.write_text(text)
    return path


def mkdir(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("case", NOT_EXPORTS)
def test_replace_refuses_what_is_not_an_earlier_export_before_loading(tmp_path, case):
    make, problem = NOT_EXPORTS[case]
    out = make(tmp_path)
    before = {p: p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()}
    with pytest.raises(ConfigError) as error:  # a model file that does not exist: not loaded
        export(str(tmp_path / "missing.pth"), out, replace=True)
    assert str(error.value) == (
        f"out={str(out)!r} is not a folder an export wrote ({problem}): --replace replaces only "
        f"an earlier export; allowed: another folder, or remove it yourself"
    )
    assert {p: p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()} == before


@pytest.mark.parametrize("out", [".", "..", "sub/.."])
def test_export_never_replaces_the_current_folder(tmp_path, out, capsys):
    (tmp_path / "sub").mkdir()
    argv = ["export", "--model-file", "missing.pth", "--out", out, "--replace"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: out={out!r} is the current folder or holds it; allowed: a new folder's name, "
        f"e.g. --out model_dir\n"
    )
    assert (tmp_path / "sub").is_dir()


@pytest.mark.parametrize("exported", ["SASRec-CE"], indirect=True)
def test_a_full_disk_keeps_the_earlier_export(exported, monkeypatch):
    model_file, folder = exported
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export_module, "_write_encoder", full)
    with pytest.raises(DiskFullError) as error:
        export(model_file, folder, replace=True)
    assert str(error.value) == (
        f"{str(folder)!r} could not be written: No space left on device; the previous folder "
        f"is kept"
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not list(folder.parent.glob(f".{folder.name}.export-*"))


@pytest.mark.parametrize("exported", ["SASRec-CE"], indirect=True)
def test_the_encoder_is_checked_at_every_length(exported, tmp_path, monkeypatch):
    """An encoder wrong only for a session of 4 items alone (L = 6) is caught."""
    model_file, _ = exported
    encode = Artifact.encode

    def wrong_at_4(self, sessions):
        users = encode(self, sessions)
        return users + 1.0 if [len(s) for s in sessions] == [4] else users

    monkeypatch.setattr(Artifact, "encode", wrong_at_4)
    with pytest.raises(ConfigError, match="the exported encoder differs from the model by"):
        export(model_file, tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("exported", ["SASRec-CE"], indirect=True)
def test_a_zeroed_item_table_is_not_exported(exported, tmp_path):
    checkpoint = torch.load(exported[0], weights_only=True)
    checkpoint["state_dict"]["embedding.item.weight"].zero_()
    zeroed = str(tmp_path / "zeroed.pth")
    torch.save(checkpoint, zeroed)
    with pytest.raises(ConfigError) as error:
        export(zeroed, tmp_path / "model")
    assert str(error.value) == (
        f"model_file={zeroed!r}: the item table is all zeros (every item would score 0); "
        f"nothing was written"
    )
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("exported", ["LightSANs-CE-attributes"], indirect=True)
def test_exported_items_carry_the_attributes(exported):
    """``items.npy`` holds each item's id row plus its attributes' vectors, the table the model
    scores with, and the encoder reads the same vectors for the session's items."""
    model_file, folder = exported
    model = Recommender(model_file).model
    with torch.no_grad():
        vectors = model.item_vectors().numpy()
        ids_only = model.embedding.item.weight.numpy()
    items = np.load(folder / "items.npy")
    np.testing.assert_array_equal(items, vectors)
    assert np.abs(items - ids_only).max() > 1e-3  # the attributes count
    session = [str(i) for i in range(5, 12)]
    seq = torch.tensor([[int(Recommender(model_file).item_ids(session)[j]) for j in range(6)]])
    with torch.no_grad():
        eager = model(seq, torch.tensor([6])).numpy()
    np.testing.assert_allclose(
        Artifact.load(folder).encode([session[:6]]), eager, rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("exported", ["LightSANs-CE-attributes"], indirect=True)
def test_batch_recommendations_and_attention_maps_carry_the_attributes(exported):
    """Every user's top-k written in batches equals one-by-one recommendations, and the
    attention maps of a model with attributes are those of its forward pass: rows summing to 1
    over earlier positions only."""
    model_file, _ = exported
    rec = Recommender(model_file)
    table = rec.recommend_all(k=3, batch_size=7)
    users = list(dict.fromkeys(table["user"]))[:5]
    for user, results in zip(users, rec.recommend(users=users, k=3), strict=True):
        assert table[table["user"] == user]["item"].tolist() == [r.item for r in results]
    tokens, maps = rec.attention(items=["5", "6", "7", "8"])
    assert tokens == ["5", "6", "7", "8"] and len(maps) == 2
    weights = maps[0]["item-to-item"] + maps[0]["position-to-position"]  # [h, T, T]
    assert torch.triu(weights, diagonal=1).abs().max() == 0
