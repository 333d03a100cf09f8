"""Loading an exported folder: every file held to metadata.json; the serving API's arguments."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import log_lines, train_converted

from recbole_sasrec import ConfigError, export
from recbole_sasrec.inference import checks
from recbole_sasrec.inference.artifact import Artifact, ArtifactError

L = 6  # MAX_ITEM_LIST_LENGTH of the exported model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A folder exported with an index from a small SASRec on 30 items, L = 6."""
    root = tmp_path_factory.mktemp("artifact")
    log = log_lines(n_users=40, n_items=30, step=7, length=(8, 9))
    keys = {"epochs": 2, "MAX_ITEM_LIST_LENGTH": L}
    model_file = train_converted(root, log, "data", "toy", **keys)["model_file"]
    return export(model_file, root / "model", ann=True)


@pytest.fixture
def folder(exported, tmp_path):
    """A copy of the exported folder to change."""
    return shutil.copytree(exported, tmp_path / "model")


def metadata(folder) -> dict:
    return json.loads((folder / "metadata.json").read_text())


def rewrite(folder, name: str, write, rehash: bool = False) -> None:
    """Write ``name`` with ``write(path)``; ``rehash``: record its new hash as well (what a
    careful forger, or a hand-edited export, would do), so that only the shape checks remain."""
    write(folder / name)
    if rehash:
        meta = metadata(folder)
        meta["files"][name] = checks.sha256(folder / name)
        (folder / "metadata.json").write_text(json.dumps(meta))


def edit_metadata(folder, **changes) -> None:
    meta = metadata(folder)
    for key, value in changes.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    (folder / "metadata.json").write_text(json.dumps(meta))


def items_of(folder) -> np.ndarray:
    return np.load(folder / "items.npy")


def tokens_of(folder) -> list[str]:
    return json.loads((folder / "item_tokens.json").read_text())


def changed_encoder(path) -> None:
    """The encoder with one weight changed: the encoder of another export."""
    model = onnx.load(str(path))
    position = next(t for t in model.graph.initializer if t.name.endswith("position.weight"))
    table = onnx.numpy_helper.to_array(position) + 1.0
    position.CopyFrom(onnx.numpy_helper.from_array(table, position.name))
    onnx.save(model, str(path))


# ---- files from elsewhere: the hashes ------------------------------------------------------
TAMPERED = {
    "rows reordered": ("items.npy", lambda p: np.save(p, items_of(p.parent)[::-1])),
    "table cut": ("items.npy", lambda p: np.save(p, items_of(p.parent)[:10])),
    "tokens reordered": (
        "item_tokens.json",
        lambda p: p.write_text(json.dumps(tokens_of(p.parent)[:1] + tokens_of(p.parent)[:0:-1])),
    ),
    "another encoder": ("encoder.onnx", changed_encoder),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_a_changed_file_is_refused_by_its_hash(folder, case):
    name, write = TAMPERED[case]
    recorded = metadata(folder)["files"][name]
    rewrite(folder, name, write)
    found = checks.sha256(folder / name)
    with pytest.raises(ArtifactError) as error:
        Artifact.load(folder)
    assert str(error.value) == (
        f"{folder / name}: sha256 {found}, but metadata.json records {recorded!r}: the file "
        f"was changed or comes from another export; export the model again"
    )


def test_an_index_is_checked_when_it_is_used(folder):
    (folder / "items.hnsw").write_bytes((folder / "items.hnsw").read_bytes()[:-8])
    Artifact.load(folder)  # exact top-k does not read it
    with pytest.raises(ArtifactError, match=r"items.hnsw: sha256 \w+, but metadata.json records"):
        Artifact.load(folder, approximate=True)
    edit_metadata(
        folder, files={k: v for k, v in metadata(folder)["files"].items() if k != "items.hnsw"}
    )
    with pytest.raises(ArtifactError, match="items.hnsw: metadata.json records no hash of it"):
        Artifact.load(folder, approximate=True)


# ---- shapes, when the hashes were made to agree ----------------------------------------------
SHAPES = {
    "table cut": (
        "items.npy",
        lambda p: np.save(p, items_of(p.parent)[:10]),
        "expected 31 rows (one per token of item_tokens.json) of hidden_size=32 "
        "(metadata.json); found 10 x 32",
    ),
    "table narrowed": (
        "items.npy",
        lambda p: np.save(p, items_of(p.parent)[:, :16]),
        "expected 31 rows (one per token of item_tokens.json) of hidden_size=32 "
        "(metadata.json); found 31 x 16",
    ),
    "table of ints": (
        "items.npy",
        lambda p: np.save(p, np.ones((31, 32), dtype=np.int64)),
        "expected a 2-D float table; found 2-D int64",
    ),
    "table flattened": (
        "items.npy",
        lambda p: np.save(p, items_of(p.parent).ravel()),
        "expected a 2-D float table; found 1-D float32",
    ),
    "table of zeros": (
        "items.npy",
        lambda p: np.save(p, np.zeros((31, 32), dtype=np.float32)),
        "the item table is all zeros (every item would score 0)",
    ),
    "table with NaN": (
        "items.npy",
        lambda p: np.save(p, np.where(np.eye(31, 32) > 0, np.nan, items_of(p.parent))),
        "the item table holds NaN or infinite values (every score would be meaningless)",
    ),
    "not a table": (
        "items.npy",
        lambda p: p.write_bytes(b"not numpy"),
        "expected a .npy array; found a file numpy cannot read",
    ),
    "repeated token": (
        "item_tokens.json",
        lambda p: p.write_text(json.dumps(tokens_of(p.parent)[:-1] + ["5"])),
        "expected unique tokens; found 1 repeated: '5'",
    ),
    "tokens not strings": (
        "item_tokens.json",
        lambda p: p.write_text(json.dumps(list(range(31)))),
        "expected strings (item tokens); found [0, 1, 2]",
    ),
    "tokens not a list": (
        "item_tokens.json",
        lambda p: p.write_text(json.dumps({"1": 1})),
        "expected a list of item tokens; found dict",
    ),
}


@pytest.mark.parametrize("case", SHAPES)
def test_a_file_of_the_wrong_shape_is_refused(folder, case):
    name, write, message = SHAPES[case]
    rewrite(folder, name, write, rehash=True)
    with pytest.raises(ArtifactError) as error:
        Artifact.load(folder)
    assert str(error.value).startswith(f"{folder / name}: {message}")  # numpy's words follow


def test_fewer_rows_and_tokens_alike_still_disagree_with_the_encoder_window(folder):
    """A table and tokens cut together agree with each other; max_item_list_length edited into
    metadata.json is held to the encoder's own."""
    edit_metadata(folder, max_item_list_length=5)
    with pytest.raises(ArtifactError) as error:
        Artifact.load(folder)
    assert str(error.value) == (
        f"{folder / 'metadata.json'}: max_item_list_length=5, but encoder.onnx was exported "
        f"with max_item_list_length=6; expected the encoder's"
    )


def test_an_encoder_without_its_window_in_its_metadata_is_refused(folder):
    def strip(path):
        model = onnx.load(str(path))
        del model.metadata_props[:]
        onnx.save(model, str(path))

    rewrite(folder, "encoder.onnx", strip, rehash=True)
    with pytest.raises(ArtifactError, match=r"encoder.onnx: expected its max_item_list_length"):
        Artifact.load(folder)


def test_an_export_of_the_earlier_format_is_refused_but_may_be_replaced(folder):
    """Format 1's encoder read item ids from a table of its own; this loader gives the encoder
    the items' vectors: such a folder must be exported again, and ``--replace`` may do so."""
    edit_metadata(folder, format="recbole_sasrec-artifact/1")
    with pytest.raises(ArtifactError, match=r"format 'recbole_sasrec-artifact/1'; allowed: "):
        Artifact.load(folder)
    formats = ("recbole_sasrec-artifact/2", "recbole_sasrec-artifact/1")
    assert checks.earlier_export_problem(folder, formats) is None


# ---- metadata.json ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_item_list_length": 0}, "max_item_list_length=0; expected an integer >= 1"),
        ({"max_item_list_length": "6"}, "max_item_list_length='6'; expected an integer >= 1"),
        ({"max_item_list_length": True}, "max_item_list_length=True; expected an integer >= 1"),
        ({"hidden_size": 16}, "expected 31 rows .* of hidden_size=16 .*; found 31 x 32"),
        ({"files": None}, "no 'files'; expected the keys format, model, dataset"),
        ({"model": None}, "no 'model'; expected the keys"),
        ({"dataset": None}, "no 'dataset'; expected the keys"),
        ({"max_item_list_length": None}, "no 'max_item_list_length'; expected the keys"),
        ({"format": "other/1"}, "format 'other/1'; allowed: recbole_sasrec-artifact/2"),
    ],
)
def test_metadata_is_checked_key_by_key(folder, changes, message):
    edit_metadata(folder, **changes)
    with pytest.raises(ArtifactError, match=message):
        Artifact.load(folder)


def test_metadata_that_is_not_json_is_named(folder):
    (folder / "metadata.json").write_text('{"format": ')
    with pytest.raises(ArtifactError, match=r"metadata.json: expected JSON; found a file that"):
        Artifact.load(folder)
    (folder / "metadata.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="metadata.json: expected a JSON object; found list"):
        Artifact.load(folder)


# ---- arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize("threads", [0, -1, True, 2.0, "2", checks.max_threads() + 1])
def test_threads_outside_1_to_4_per_core_are_refused_before_the_session(exported, threads):
    with pytest.raises(ValueError, match=rf"threads={threads!r} must be a positive integer"):
        Artifact.load(exported, threads=threads)


def test_threads_as_numpy_integer_and_approximate_as_bool(exported):
    assert Artifact.load(exported, threads=np.int64(1)).recommend(["5"], k=1)
    with pytest.raises(ValueError, match="approximate='no' must be True or False"):
        Artifact.load(exported, approximate="no")


def test_a_folder_without_attribute_tables_refuses_new_items(exported, tmp_path):
    path = tmp_path / "new.json"
    path.write_text('{"n1": ["a"]}')
    model = Artifact.load(exported)
    with pytest.raises(ConfigError) as error:
        model.add_items(path)
    assert str(error.value) == (
        f"{path}: {exported} has no attribute tables (attributes.json, attributes.npz), so a new "
        f"item has nothing to compute its vector from; allowed: a folder exported from a model "
        f"trained with selected_features (and, for float fields, saved with their training mean "
        f"and std)"
    )
    assert len(model.tokens) == len(model.items) == 31


@pytest.fixture(scope="module")
def model(exported):
    return Artifact.load(exported, threads=1)


def test_an_empty_batch_gets_an_empty_answer(model):
    assert model.recommend_batch([], k=3) == []
    assert model.encode([]).shape == (0, 32)
    with pytest.raises(ValueError, match="k=0 must be a positive integer"):
        model.recommend_batch([], k=0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.recommend("242"), r"session='242' is a string; allowed: a list of tokens"),
        (lambda m: m.recommend_batch(["242"]), r"sessions\[0\]='242' is a string"),
        (lambda m: m.recommend_batch("242"), r"sessions='242' is a string"),
        (lambda m: m.recommend(["5"], exclude="6"), r"exclude='6' is a string"),
        (lambda m: m.recommend_batch([["5"]], exclude=["6"]), r"exclude\[0\]='6' is a string"),
        (lambda m: m.encode(["5"]), r"sessions\[0\]='5' is a string"),
        (
            lambda m: m.recommend_batch([["5"], ["6"]], exclude=[[], [], ["7"]]),
            "exclude has 3 lists for 2 sessions; allowed: None, or one list of item tokens "
            "per session",
        ),
        (lambda m: m.recommend(["5"], k=True), "k=True must be a positive integer"),
        (lambda m: m.recommend(["5"], k=3.0), "k=3.0 must be a positive integer"),
        (lambda m: m.recommend(["5"], k="3"), "k='3' must be a positive integer"),
        (lambda m: m.recommend(["5"], exclude_seen="no"), "exclude_seen='no' must be True or"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)


def test_numpy_integer_k_is_an_integer(model):
    assert model.recommend(["5"], k=np.int64(4)) == model.recommend(["5"], k=4)
    assert len(model.recommend(["5"], k=np.int32(4))) == 4
