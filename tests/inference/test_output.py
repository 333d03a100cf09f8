"""Batch files: a full disk names the file and keeps the previous one."""

from __future__ import annotations

import contextlib
import errno

import pandas as pd
import pytest

from recbole_sasrec.core.files import atomic_open
from recbole_sasrec.inference import output
from recbole_sasrec.inference.output import DiskFullError, check_output, write_frames


class FullDisk:
    """A file whose writes fail as on a full disk once ``room`` bytes are written."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data):
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def fill_disk(monkeypatch, room: int = 100) -> None:
    """Writes through ``output``'s atomic_open (the real one: temporary file, rename) fail."""

    @contextlib.contextmanager
    def full(path, mode="w", **kwargs):
        with atomic_open(path, mode, **kwargs) as f:
            yield FullDisk(f, room)

    monkeypatch.setattr(output, "atomic_open", full)


def frames(n: int = 50):
    for lo in range(0, n, 10):
        users = [str(u) for u in range(lo, lo + 10) for _ in range(2)]
        yield pd.DataFrame({"user": users, "rank": [1, 2] * 10, "item": "7", "score": 0.5})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_full_disk_keeps_the_previous_file_and_names_it(tmp_path, monkeypatch, suffix):
    out = tmp_path / f"top{suffix}"
    out.write_text("the previous file\n")
    fill_disk(monkeypatch)
    with pytest.raises(DiskFullError) as error:
        write_frames(out, frames(), k=2, replace=True)
    assert str(error.value) == (
        f"{str(out)!r} could not be written: No space left on device; the previous file is kept"
    )
    assert out.read_text() == "the previous file\n"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_a_full_disk_with_no_previous_file_says_nothing_was_written(tmp_path, monkeypatch):
    out = tmp_path / "top.csv"
    fill_disk(monkeypatch)
    with pytest.raises(DiskFullError, match="No space left on device; no file was written$"):
        write_frames(out, frames(), k=2)
    assert not list(tmp_path.iterdir())


def test_other_write_errors_pass_unchanged(tmp_path, monkeypatch):
    def broken(path, mode="w", **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(output, "atomic_open", broken)
    with pytest.raises(OSError, match="Input/output error") as error:
        write_frames(tmp_path / "top.csv", frames(), k=2)
    assert not isinstance(error.value, ValueError)


def test_a_folder_is_never_an_output_file(tmp_path):
    (tmp_path / "top.csv").mkdir()
    with pytest.raises(ValueError, match=r"top.csv' is a folder; allowed: a file name ending"):
        check_output(tmp_path / "top.csv", replace=True)
