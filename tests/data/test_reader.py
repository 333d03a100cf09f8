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
