"""Exported artifacts: the same recommendations as the checkpoint, served without RecBole; top-k
in blocks equal to a dense top-k; atomic folders."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import log_lines, train_converted, train_gru4rec

from recbole_sasrec import ConfigError, Recommender, export
from recbole_sasrec.__main__ import main
from recbole_sasrec.inference import topk
from recbole_sasrec.inference.artifact import Artifact


@pytest.fixture(
    scope="module", params=["SASRec-CE", "LightSANs-SSM", "SASRec-gBCE-from-end-query-norm"]
)
def exported(request, tmp_path_factory):
    """(checkpoint, exported folder) of a small model trained on a converted log."""
    model, loss = request.param.split("-")[:2]
    root = tmp_path_factory.mktemp(request.param)
    keys = {"loss_type": loss, "loss_negatives": 8, "epochs": 3, "MAX_ITEM_LIST_LENGTH": 6}
    keys["positions_from_end"] = "from-end" in request.param
    if request.param.endswith("query-norm"):  # the paper's code's LayerNorms (block_norm)
        keys["block_norm"] = "query"
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
    assert set(metadata["files"]) == {"encoder.onnx", "items.npy", "item_tokens.json"}
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


def test_block_top_k_equals_a_dense_top_k():
    rng = np.random.default_rng(0)
    items, queries = rng.normal(size=(1000, 8)).astype(np.float32), rng.normal(size=(7, 8))
    excluded = [
        rng.choice(np.arange(1, 1000), size=n, replace=False) for n in (0, 3, 50, 1, 0, 9, 2)
    ]
    ids, scores = topk.exact(queries, items, 20, excluded, block=64)
    dense = queries.astype(np.float32) @ items.T
    dense[:, 0] = -np.inf
    for row, e in enumerate(excluded):
        dense[row, e] = -np.inf
    expected = np.argsort(-dense, axis=1, kind="stable")[:, :20]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(dense, expected, 1), rtol=1e-6)


def test_approximate_top_k_finds_the_exact_one_on_a_small_catalogue():
    rng = np.random.default_rng(1)
    items, queries = rng.normal(size=(500, 16)).astype(np.float32), rng.normal(size=(20, 16))
    index = topk.ApproximateIndex.build(items)
    excluded = [[int(i)] for i in topk.exact(queries, items, 1)[0][:, 0]]  # each row's best
    approx, _ = index.search(queries, 10, excluded)
    exact, _ = topk.exact(queries, items, 10, excluded)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95 and not any(e[0] in a for a, e in zip(approx, excluded, strict=True))
