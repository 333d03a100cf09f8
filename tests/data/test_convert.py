"""convert: the SASRec, sequences and CSV formats, and every input it refuses with its file and line."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from conftest import log_lines

from recbole_sasrec import (
    ConvertError,
    convert,
)
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


def test_convert_csv_with_and_without_timestamps(tmp_path):
    src = tmp_path / "log.csv"
    src.write_text("who,what,when\nb,x,20\na,y,5\nb,z,10\n")
    inter = convert(str(src), str(tmp_path), "c1", "csv", "who", "what", "when")
    assert inter.read_text().splitlines()[1:] == ["b\tx\t20", "a\ty\t5", "b\tz\t10"]
    inter = convert(str(src), str(tmp_path), "c2", "csv", "who", "what")
    assert inter.read_text().splitlines()[1:] == ["b\tx\t0", "a\ty\t0", "b\tz\t1"]


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("sasrec", "1 2\n1 2 3\n", r"line 2: expected 2 columns"),
        ("sasrec", "", "has no interactions"),
        ("csv", "", "the file is empty"),
        ("csv", "u,i,t\n1,2,3\n1,2\n", r"line 3: expected 3 columns"),
        ("csv", "u,i,t\n1,2,3\n1,4,soon\n", r"line 3: timestamp 'soon'"),
    ],
)
def test_convert_errors_name_file_and_line_and_write_nothing(tmp_path, fmt, text, message):
    src = tmp_path / "bad.txt"
    src.write_text(text)
    with pytest.raises(ConvertError, match=message) as error:
        convert(
            str(src), str(tmp_path / "out"), "bad", fmt, "u", "i", "t" if fmt == "csv" else None
        )
    assert str(src) in str(error.value)
    folder = tmp_path / "out" / "bad"
    assert not folder.exists() or not any(folder.iterdir())  # nothing half-written


def test_convert_refuses_an_existing_name_unless_told_to_replace(tmp_path):
    (tmp_path / "log.txt").write_text(log_lines())
    convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "toy")
    with pytest.raises(
        ConvertError, match="exists: data set 'toy' was converted before.*--replace"
    ):
        convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "toy")
    (tmp_path / "log.txt").write_text(log_lines(extra=5))
    convert(str(tmp_path / "log.txt"), str(tmp_path / "data"), "toy", replace=True)
    assert "\t25\t" in (tmp_path / "data" / "toy" / "toy.inter").read_text()


def test_convert_reads_through_a_byte_order_mark(tmp_path):
    (tmp_path / "log.txt").write_text("\ufeff" + log_lines(), encoding="utf-8")
    inter = convert(str(tmp_path / "log.txt"), str(tmp_path / "a"), "bom")
    assert inter.read_text().splitlines()[1].startswith("1\t")
    (tmp_path / "log.csv").write_text("\ufeffuser,item\n1,5\n1,6\n", encoding="utf-8")
    inter = convert(
        str(tmp_path / "log.csv"),
        str(tmp_path / "b"),
        "bomcsv",
        fmt="csv",
        user_col="user",
        item_col="item",
    )
    assert inter.read_text().splitlines()[1:] == ["1\t5\t0", "1\t6\t1"]


def test_convert_rejects_a_tab_inside_a_quoted_field_with_its_line(tmp_path):
    (tmp_path / "log.csv").write_text('user,item\n1,5\n2,"a\tb"\n')
    with pytest.raises(ConvertError, match=r"line 3: item \(item\) 'a\\tb' holds a tab"):
        convert(
            str(tmp_path / "log.csv"),
            str(tmp_path / "o"),
            "t",
            fmt="csv",
            user_col="user",
            item_col="item",
        )
    assert not (tmp_path / "o" / "t" / "t.inter").exists()


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", ".."])
def test_convert_refuses_names_that_are_not_plain(tmp_path, name):
    (tmp_path / "log.txt").write_text(log_lines())
    with pytest.raises(ConvertError, match="is not a data set name"):
        convert(str(tmp_path / "log.txt"), str(tmp_path / "out"), name)


def test_convert_reports_duplicates_and_writes_normal_permissions(tmp_path):
    (tmp_path / "log.csv").write_text("user,item,ts\n1,5,10\n1,5,10\n1,6,11\n")
    notes = []
    old = os.umask(0o022)
    try:
        inter = convert(
            str(tmp_path / "log.csv"),
            str(tmp_path / "o"),
            "d",
            fmt="csv",
            user_col="user",
            item_col="item",
            time_col="ts",
            report=notes.append,
        )
    finally:
        os.umask(old)
    assert notes == [
        "1 of 3 rows repeat an earlier row (same user, item and timestamp); kept "
        "(RecBole's rm_dup_inter: user drops them)"
    ]
    assert stat.S_IMODE(inter.stat().st_mode) == 0o644


def test_convert_to_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    """What the system says to a user who may not write there (root may, so the refusal is
    the system's answer put in place of the temporary file's creation)."""
    import recbole_sasrec.core.files as files

    (tmp_path / "log.txt").write_text(log_lines())
    locked = tmp_path / "locked" / "x"
    refused = str(locked / ".x.inter.abcd1234.tmp")

    def mkstemp(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", refused)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    with pytest.raises(ConvertError) as error:
        convert(str(tmp_path / "log.txt"), str(tmp_path / "locked"), "x")
    assert str(error.value) == f"{refused}: cannot write the data set: Permission denied"
    assert list(locked.iterdir()) == []  # nothing written


def test_convert_below_a_file_is_one_line(tmp_path):
    """A folder that cannot be made (a file holds its name): refused for root too."""
    (tmp_path / "log.txt").write_text(log_lines())
    (tmp_path / "out").write_text("a file, not a folder")
    with pytest.raises(ConvertError) as error:
        convert(str(tmp_path / "log.txt"), str(tmp_path / "out"), "x")
    assert (
        str(error.value) == f"{tmp_path / 'out' / 'x'}: cannot write the data set: Not a directory"
    )
    assert (tmp_path / "out").read_text() == "a file, not a folder"


def test_convert_to_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "log.txt").write_text(log_lines())
    import recbole_sasrec.core.files as files

    real = files.os.fdopen

    def full(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)

        def write(_):
            raise OSError(
                28, "No space left on device", str(tmp_path / "out" / "x" / ".x.inter.tmp")
            )

        f.write = write
        return f

    monkeypatch.setattr(files.os, "fdopen", full)
    argv = [
        "convert",
        "--input",
        str(tmp_path / "log.txt"),
        "--name",
        "x",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write the data set: No space left on device" in err
    assert not list((tmp_path / "out" / "x").glob("*"))  # nothing left behind


@pytest.mark.parametrize(
    "fmt, text",
    [
        ("sasrec", b"1 5\n1 6\n1 caf\xe9\n"),
        ("sequences", b"1 5 6\n2 7 8\n3 caf\xe9 9\n"),
        ("csv", b"user_id,item_id\n1,5\n1,caf\xe9\n"),
    ],
)
def test_convert_refuses_bytes_that_are_not_utf8_with_their_line(tmp_path, capsys, fmt, text):
    (tmp_path / "log.txt").write_bytes(text)
    argv = ["convert", "--input", str(tmp_path / "log.txt"), "--format", fmt, "--name", "x"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: {tmp_path / 'log.txt'}, line 3: bytes that are not UTF-8 (invalid continuation "
        f"byte); allowed: a text file in UTF-8 (e.g. re-save it as UTF-8, or iconv -f latin1 -t "
        f"utf-8)"
    )
    assert not (tmp_path / "out" / "x" / "x.inter").exists()
