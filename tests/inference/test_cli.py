"""The recommend and attention commands: arguments refused before the model loads; files written
only where asked, whole, and a full disk named."""

from __future__ import annotations

import pytest
from test_output import fill_disk

from recbole_sasrec.__main__ import main

MISSING = "missing.pth"  # a model file that does not exist: an error about it means it loaded


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "0"], "--k=0 must be a positive integer; allowed: an integer >= 1"),
        (["--k", "-2"], "--k=-2 must be a positive integer; allowed: an integer >= 1"),
        (
            ["--batch-size", "0", "--all-users", "--out", "top.csv"],
            "--batch-size=0 must be a positive integer; allowed: an integer >= 1",
        ),
        (
            ["--batch-size", "-5", "--all-users", "--out", "top.csv"],
            "--batch-size=-5 must be a positive integer; allowed: an integer >= 1",
        ),
    ],
)
def test_recommend_refuses_k_and_batch_size_before_loading(extra, message, capsys):
    who = [] if "--all-users" in extra else ["--items", "5,6"]
    assert main(["recommend", "--model-file", MISSING, *who, *extra]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("command", ["recommend", "attention"])
def test_items_that_name_no_item_are_refused_before_loading(command, capsys):
    assert main([command, "--model-file", MISSING, "--items", ", ,"]) == 2
    assert capsys.readouterr().err == (
        "error: --items ', ,' names no item token; e.g. --items 50,172,133\n"
    )


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("no/attention.png", "out='no/attention.png': folder 'no' does not exist; create it first"),
        ("attention.txt", "out='attention.txt': unknown output format '.txt'; allowed: .eps,"),
    ],
)
def test_attention_checks_its_output_before_loading(out, message, capsys):
    assert main(["attention", "--model-file", MISSING, "--user", "3", "--out", out]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_attention_overwrites_a_file_only_with_replace(trained_relative, tmp_path, capsys):
    _, model_file = trained_relative
    out = tmp_path / "mine.png"
    out.write_text("keep me")
    argv = ["attention", "--model-file", model_file, "--user", "3", "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: out={str(out)!r} exists; allowed: another file, or replace=True (command "
        f"line: --replace) to overwrite it\n"
    )
    assert out.read_text() == "keep me"
    assert main([*argv, "--replace"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    pdf = tmp_path / "attention.pdf"  # the extension chooses the format
    assert main([*argv[:-1], str(pdf)]) == 0 and pdf.read_bytes()[:4] == b"%PDF"


def test_a_full_disk_at_all_users_names_the_file_and_keeps_the_old_one(
    trained_relative, tmp_path, monkeypatch, capsys
):
    _, model_file = trained_relative
    out = tmp_path / "top.csv"
    out.write_text("the previous file\n")
    fill_disk(monkeypatch)
    argv = ["recommend", "--model-file", model_file, "--all-users", "--out", str(out)]
    assert main([*argv, "--replace"]) == 2
    assert capsys.readouterr().err == (
        f"error: {str(out)!r} could not be written: No space left on device; the previous "
        f"file is kept\n"
    )
    assert out.read_text() == "the previous file\n"
