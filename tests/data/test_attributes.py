"""The attribute JSON into a ``.item`` file beside a converted log (``data/attributes.py``)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY

from recbole_sasrec import ConvertError, convert, run_recbole
from recbole_sasrec.__main__ import main

LOG = "u1 4 83 165\nu2 83 4\nu3 165 214 4 83 214\n"


@pytest.fixture
def converted(tmp_path):
    (tmp_path / "log.txt").write_text(LOG)
    convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "toy", "sequences")
    return tmp_path


def write_json(path, data) -> str:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_items_file_has_a_row_per_log_item_in_first_seen_order(converted):
    notes = []
    # 214 has no attributes; 999 is not in the log; 4 repeats an attribute
    attributes = {"4": [1, 2, 1], "83": ["bx", 3], "165": [7], "999": [5]}
    path = write_json(converted / "attr.json", attributes)
    item = convert(path, str(converted / "data"), "toy", "attributes", report=notes.append)
    assert item == converted / "data" / "toy" / "toy.item"
    assert item.read_text().splitlines() == [
        "item_id:token\tattributes:token_seq",
        "4\t1 2",
        "83\tbx 3",
        "165\t7",
        "214\t",
    ]
    assert notes == [
        "4 items of toy.inter, 5 distinct attributes; 1 items without attributes (kept, empty); "
        "1 items of attr.json not in the log (left out)"
    ]


def test_converted_attributes_train_through_recbole(converted):
    path = write_json(converted / "attr.json", {"4": [1], "83": [2], "165": [1, 3], "214": [2]})
    convert(path, str(converted / "data"), "toy", "attributes")
    config = dict(
        TINY,
        data_path=str(converted / "data"),
        selected_features=["attributes"],
        epochs=1,
        MAX_ITEM_LIST_LENGTH=5,
        topk=[3],
        valid_metric="NDCG@3",
        checkpoint_dir=str(converted / "saved"),
    )
    result = run_recbole("SASRec", "toy", config_dict=config)
    assert set(result["test_result"]) == {"hit@3", "ndcg@3", "mrr@3"}


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"4": [1, 2]', r"attr.json, line 1, column 13: not JSON \(Expecting"),
        ("[1, 2]", r"attr.json: a JSON list; allowed: one object"),
        ('{"4": 3}', r"item '4' has 3; allowed: a list of attribute tokens"),
        ('{"4": [true]}', r"item '4' has \[true\]; allowed"),
        ('{"4": ["a b"]}', r"token 'a b' is empty or holds white space"),
        ('{\n"4": [1],\n"83": [2,]}', r"line 3, column 10: not JSON"),
    ],
)
def test_malformed_attribute_files_name_file_line_and_key(converted, text, message):
    path = write_json(converted / "attr.json", text)
    with pytest.raises(ConvertError, match=message):
        convert(path, str(converted / "data"), "toy", "attributes")
    assert not (converted / "data" / "toy" / "toy.item").exists()


def test_non_utf8_attribute_file_names_its_line(converted):
    path = converted / "attr.json"
    path.write_bytes(b'{"4": [1],\n"83": ["\xe9"]}')
    with pytest.raises(ConvertError, match=r"attr.json, line 2: bytes that are not UTF-8"):
        convert(str(path), str(converted / "data"), "toy", "attributes")


def test_attributes_need_the_converted_log_and_refuse_to_overwrite(converted, tmp_path):
    path = write_json(converted / "attr.json", {"4": [1]})
    with pytest.raises(
        ConvertError, match=r"other.inter: no such file; .*convert the interactions"
    ):
        convert(path, str(converted / "data"), "other", "attributes")
    convert(path, str(converted / "data"), "toy", "attributes")
    with pytest.raises(ConvertError, match=r"toy.item exists; allowed: --replace"):
        convert(path, str(converted / "data"), "toy", "attributes")
    convert(path, str(converted / "data"), "toy", "attributes", replace=True)


def test_command_line_writes_the_item_file_with_a_named_field(converted, capsys):
    path = write_json(converted / "attr.json", {"4": [1], "83": [2]})
    argv = ["convert", "--input", path, "--format", "attributes", "--name", "toy"]
    argv += ["--out", str(converted / "data"), "--field", "categories"]
    assert main(argv) == 0
    item = converted / "data" / "toy" / "toy.item"
    assert item.read_text().splitlines()[0] == "item_id:token\tcategories:token_seq"
    assert "selected_features" in capsys.readouterr().out
