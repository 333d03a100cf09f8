"""``convert --format sequences``: the literature's one-line-per-user files."""

from __future__ import annotations

import pytest

from recbole_sasrec import ConvertError, convert
from recbole_sasrec.__main__ import main


def read_back(inter) -> dict[str, list[str]]:
    """user -> items in the order of their timestamps, from a written .inter file."""
    rows = [line.split("\t") for line in inter.read_text().splitlines()[1:]]
    users: dict[str, list[tuple[float, str]]] = {}
    for user, item, stamp in rows:
        users.setdefault(user, []).append((float(stamp), item))
    return {u: [item for _, item in sorted(pairs)] for u, pairs in users.items()}


def test_sequences_round_trip_keeps_every_users_order(tmp_path):
    lines = {"1": ["5", "3", "9", "3"], "2": ["9"], "10": ["1", "2", "3", "4", "5", "6"]}
    text = "".join(f"{u} {' '.join(items)}\n" for u, items in lines.items())
    (tmp_path / "log.txt").write_text(text.replace("2 9", "2\t9  ") + "\n\n")
    inter = convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "seq", "sequences")
    assert inter.read_text().splitlines()[0] == "user_id:token\titem_id:token\ttimestamp:float"
    assert read_back(inter) == lines


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 4 5\n2\n3 7\n", r"line 2: user '2' has no items"),
        ("1 4 5\n2 6\n1 7\n", r"line 3: user '1' is on line 1 too"),
    ],
)
def test_sequences_errors_name_the_line_and_write_nothing(tmp_path, text, message):
    (tmp_path / "log.txt").write_text(text)
    with pytest.raises(ConvertError, match=message):
        convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "seq", "sequences")
    assert not (tmp_path / "data" / "seq" / "seq.inter").exists()


def test_the_command_line_takes_the_format(tmp_path, capsys):
    (tmp_path / "log.txt").write_text("7 1 2 3\n8 3 2\n")
    code = main(
        ["convert", "--input", str(tmp_path / "log.txt"), "--format", "sequences", "--name", "s"]
        + ["--out", str(tmp_path / "data")]
    )
    assert code == 0 and "wrote" in capsys.readouterr().out
    assert read_back(tmp_path / "data" / "s" / "s.inter") == {"7": ["1", "2", "3"], "8": ["3", "2"]}
