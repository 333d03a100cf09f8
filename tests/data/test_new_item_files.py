"""New items' attribute files read through a trained model's vocabularies: tokens mapped, floats
kept raw, tokens never seen left out and counted, and every bad file refused by name."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from recbole_sasrec import ConfigError
from recbole_sasrec.data.new_items import Field, read_new_items

CATS = Field("cats", "token_seq", vocabulary={"[PAD]": 0, "c1": 1, "c2": 2, "c3": 3})
BRAND = Field("brand", "token", vocabulary={"[PAD]": 0, "b1": 1, "b2": 2})
FIELDS = [CATS, BRAND, Field("price", "float"), Field("embedding", "float_seq", width=2)]
CATALOGUE = {"[PAD]": 0, "i1": 1, "i2": 2}
HEADER = (
    "item_id:token\tcats:token_seq\tbrand:token\tprice:float\tembedding:float_seq\ttitle:token_seq"
)


def write(tmp_path, *rows: str, header: str = HEADER):
    path = tmp_path / "new.item"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def read(path, fields=FIELDS, **kwargs):
    return read_new_items(path, "item_id", fields, CATALOGUE, **kwargs)


def test_tokens_map_through_the_vocabularies_and_floats_stay_raw(tmp_path):
    path = write(tmp_path, "n1\tc2 c1\tb2\t3.5\t1 0.25\tA title", "n2\tc3\t\t\t0.5\t")
    new = read(path)
    assert new.tokens == ["n1", "n2"]
    np.testing.assert_array_equal(new.values["cats"], [[2, 1], [3, 0]])
    np.testing.assert_array_equal(new.values["brand"], [[2], [0]])  # empty: the pad
    np.testing.assert_array_equal(new.values["price"], [[3.5], [np.nan]])  # missing: NaN
    np.testing.assert_array_equal(new.values["embedding"], [[1, 0.25], [0.5, 0]])  # 0-padded
    assert new.values["price"].dtype == np.float32 and new.unknown == {"cats": 0, "brand": 0}


def test_tokens_never_seen_are_left_out_and_counted_in_one_warning(tmp_path, caplog):
    path = write(tmp_path, "n1\tc1 zz c9\tbq\t1\t0 0\t", "n2\tc2\tb1\t2\t1 1\t")
    with caplog.at_level(logging.WARNING):
        new = read(path)
    np.testing.assert_array_equal(new.values["cats"], [[1, 0, 0], [2, 0, 0]])
    assert new.values["brand"][0, 0] == 0 and new.unknown == {"cats": 2, "brand": 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 3 attribute value(s) never seen in training (cats: 2, brand: 1) left out of "
        f"their items' vectors"
    ]


def test_an_item_without_a_value_the_model_knows_is_refused_with_its_values(tmp_path):
    path = write(tmp_path, "n1\tc1\tb1\t1\t0 0\t", "n2\tzz yy\tbq\t\t\tkept")
    with pytest.raises(ConfigError) as error:
        read(path)
    assert str(error.value) == (
        f"{path}: 1 item(s) have no attribute value the model learned, so no vector to rank "
        f"them by: 'n2' (cats: 'zz yy', brand: 'bq', price: '', embedding: ''); allowed: at "
        f"least one value seen in training in a selected field (cats tokens such as 'c1', "
        f"'c2', 'c3'; brand tokens such as 'b1', 'b2'; a number in price; a number in embedding)"
    )
    with pytest.raises(ConfigError, match=r"1 item\(s\) .* 'n2' \(cats: 'zz yy'\); allowed"):
        read(path, [CATS])  # n1 knows c1


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (
            ["n1\tc1\tb1\t1\t0\t", "n1\tc2\tb1\t1\t0\t"],
            HEADER,
            "1 item(s) listed more than once ('n1'); allowed: each new item once",
        ),
        (
            ["i2\tc1\tb1\t1\t0\t"],
            HEADER,
            "1 item(s) already in the catalogue ('i2'); allowed: items the model does not have",
        ),
        ([], HEADER, "no items; allowed: a file with at least one new item"),
        ([], "", "empty; allowed: a header (item_id:token and the selected fields)"),
        (
            ["n1\tc1"],
            "item_id:token\tcats:token_seq",
            "no field brand, price, embedding (its header: item_id:token, cats:token_seq); allowed: a header holding item_id:token, cats:token_seq, brand:token, price:float, embedding:float_seq (other fields are ignored)",
        ),
        (
            ["n1\tc1\tb1\t1\t0"],
            HEADER.replace("price:float", "price:token").rsplit("\t", 1)[0],
            "other types: price:token",
        ),
        (
            ["n1\tc1\tb1\tcheap\t0\t"],
            HEADER,
            "item 'n1', field price (float): 'cheap'; allowed: finite numbers",
        ),
        (
            ["n1\tc1\tb1\t1\t0 1 2\t"],
            HEADER,
            "item 'n1', field embedding: 3 values; the model was trained with at most 2",
        ),
        (["n1\tc1\tb1"], HEADER, "line 2: 3 fields; the header has 6"),
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path, rows, header, message):
    path = write(tmp_path, *rows, header=header)
    with pytest.raises(ConfigError) as error:
        read(path)
    assert str(error.value).startswith(f"{path}") and message in str(error.value)


def test_the_attribute_json_fills_the_models_single_token_field(tmp_path):
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"n1": ["c1", "c3"], "n2": ["c2", "c2", 7]}))
    new = read(path, [CATS])
    assert new.tokens == ["n1", "n2"] and new.unknown == {"cats": 1}
    np.testing.assert_array_equal(new.values["cats"], [[1, 3], [2, 0]])  # repeats kept once
    with pytest.raises(ConfigError, match="the attribute JSON gives each item one list of tokens"):
        read(path)  # the model reads four fields
    with pytest.raises(ConfigError, match=r"format='csv'; allowed: item, json, or None"):
        read(path, [CATS], format="csv")
