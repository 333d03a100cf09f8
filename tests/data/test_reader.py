"""Atomic files RecBole would misread are refused with their file and line before training."""

from __future__ import annotations

import pytest
from conftest import TINY

from recbole_sasrec import ConfigError, run_recbole

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def write_inter(tmp_path, body: bytes | str, header: str = HEADER):
    folder = tmp_path / "data" / "hand"
    folder.mkdir(parents=True)
    data = body if isinstance(body, bytes) else body.encode()
    (folder / "hand.inter").write_bytes(header.encode() + data)
    return dict(TINY, data_path=str(tmp_path / "data"), epochs=1)


def rows(n_users=6, n=7, skip=None, stamp=lambda u, t: str(t)) -> str:
    lines = []
    for u in range(1, n_users + 1):
        for t in range(n):
            value = "" if (u, t) == skip else stamp(u, t)
            lines.append(f"u{u}\ti{(u + t) % 9 + 1}\t{value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("missing", ["", "nan"])
def test_a_missing_timestamp_names_file_line_and_user(tmp_path, missing):
    body = rows(skip=(2, 6)).replace("\t\n", f"\t{missing}\n")
    cfg = write_inter(tmp_path, body)
    # u2's 7th row is line 1 (header) + 7 (u1) + 7 = 15
    with pytest.raises(ConfigError, match=r"hand.inter, line 15: user 'u2' has no timestamp"):
        run_recbole("SASRec", "hand", config_dict=cfg)
    assert not (tmp_path / "saved").exists()


def test_bytes_that_are_not_utf8_name_the_line(tmp_path):
    body = rows().encode().replace(b"i3\t", b"i\xff\t", 1)
    line = 2 + rows().splitlines().index(next(r for r in rows().splitlines() if "\ti3\t" in r))
    cfg = write_inter(tmp_path, body)
    with pytest.raises(
        ConfigError, match=rf"hand.inter, line {line}: bytes that are not (utf-8|UTF-8)"
    ):
        run_recbole("SASRec", "hand", config_dict=cfg)


def test_an_unknown_field_type_names_the_file_and_the_allowed_types(tmp_path):
    cfg = write_inter(tmp_path, rows(), header=HEADER.replace("item_id:token", "item_id:widget"))
    with pytest.raises(
        ConfigError,
        match=r"hand.inter, line 1: header field .item_id:widget.*types: token, float, token_seq",
    ):
        run_recbole("SASRec", "hand", config_dict=cfg)


def test_a_header_only_file_says_so(tmp_path):
    cfg = write_inter(tmp_path, "")
    with pytest.raises(ConfigError, match="hand.inter has a header and no interactions"):
        run_recbole("SASRec", "hand", config_dict=cfg)


def load(cfg: dict, name: str = "hand"):
    """The data set RecBole's pipeline reads, as a run reads it (no training)."""
    from recbole_sasrec import Config
    from recbole_sasrec.integration.quick_start import create_dataset

    return create_dataset(Config("SASRec", name, config_dict=cfg))


def test_a_byte_order_mark_is_read_through(tmp_path):
    plain = load(write_inter(tmp_path / "plain", rows()))
    marked = load(write_inter(tmp_path / "bom", rows(), header="\ufeff" + HEADER))
    assert list(marked.inter_feat.columns) == list(plain.inter_feat.columns)
    for field in plain.inter_feat.columns:
        assert marked.inter_feat[field].tolist() == plain.inter_feat[field].tolist()
    assert marked.field2id_token["user_id"].tolist() == plain.field2id_token["user_id"].tolist()
    assert marked.field2id_token["item_id"].tolist() == plain.field2id_token["item_id"].tolist()


def test_rows_that_repeat_are_counted_in_a_warning_naming_the_file(tmp_path, caplog):
    cfg = write_inter(tmp_path, rows() + rows())  # every row twice: 42 of 84 repeat
    inter = tmp_path / "data" / "hand" / "hand.inter"
    with caplog.at_level("WARNING"):
        assert len(load(cfg).inter_feat) == 84  # kept
    assert [r.getMessage() for r in caplog.records if "repeat" in r.getMessage()] == [
        f"{inter}: 42 of 84 rows repeat an earlier row (same user_id, item_id, timestamp); each "
        f"is trained on as an interaction of its own; rm_dup_inter: first (or last) drops "
        f"repeated user-item pairs"
    ]
    caplog.clear()
    with caplog.at_level("WARNING"):
        load(dict(cfg, rm_dup_inter="first"))  # asked to drop them: nothing to warn about
    assert not [r for r in caplog.records if "repeat" in r.getMessage()]


@pytest.mark.parametrize("field", ["user_id", "item_id"])
def test_ids_of_type_float_are_refused_naming_the_field(tmp_path, field):
    cfg = write_inter(
        tmp_path,
        rows().replace("u", "").replace("i", ""),
        HEADER.replace(f"{field}:token", f"{field}:float"),
    )
    key = "USER_ID_FIELD" if field == "user_id" else "ITEM_ID_FIELD"
    with pytest.raises(ConfigError) as error:
        run_recbole("SASRec", "hand", config_dict=cfg)
    inter = tmp_path / "data" / "hand" / "hand.inter"
    assert str(error.value) == (
        f"{inter}, line 1: field {field!r} ({key}) is of type 'float'; ids are names, not "
        f"quantities; allowed: {field}:token"
    )


@pytest.mark.parametrize(
    "field, key, kind",
    [("item_id", "ITEM_ID_FIELD", "token"), ("timestamp", "TIME_FIELD", "float")],
)
def test_a_missing_field_names_file_field_key_and_the_fields_there(tmp_path, field, key, kind):
    kept = [i for i, f in enumerate(["user_id", "item_id", "timestamp"]) if f != field]
    header = "\t".join(HEADER.strip().split("\t")[i] for i in kept) + "\n"
    body = "".join(
        "\t".join(line.split("\t")[i] for i in kept) + "\n" for line in rows().splitlines()
    )
    cfg = write_inter(tmp_path, body, header)
    with pytest.raises(ConfigError) as error:
        run_recbole("SASRec", "hand", config_dict=cfg)
    present = ", ".join(f for f in ["user_id", "item_id", "timestamp"] if f != field)
    assert str(error.value) == (
        f"{tmp_path / 'data' / 'hand' / 'hand.inter'}: no field {field!r}, which {key} names "
        f"(the header has no such field); the file's fields: {present}; allowed: a column "
        f"{field}:{kind} in the file, or {key} set to the name the file uses (and load_col "
        f"loading it)"
    )


def test_a_date_in_a_float_timestamp_names_file_line_and_value(tmp_path):
    body = rows().replace("u2\ti4\t1\n", "u2\ti4\t2024-01-05\n")  # u2's 2nd row: line 1 + 7 + 2
    cfg = write_inter(tmp_path, body)
    with pytest.raises(ConfigError) as error:
        run_recbole("SASRec", "hand", config_dict=cfg)
    assert str(error.value) == (
        f"{tmp_path / 'data' / 'hand' / 'hand.inter'}, line 10: '2024-01-05' in field "
        f"'timestamp' (timestamp:float) is not a number; allowed: a number in every row (a time "
        f"as seconds since 1970, e.g. 1700000000)"
    )
