"""Atomic writes: a full disk named with what was kept, SIGTERM in an entry point, the leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from recbole_sasrec.core.files import NoSpaceError, atomic_open, temporaries


@pytest.mark.parametrize("existed", [True, False])
def test_a_full_disk_names_the_file_and_what_was_kept(tmp_path, full_disk, existed):
    target = tmp_path / "result.md"
    if existed:
        target.write_text("the last good one\n")
    with pytest.raises(NoSpaceError) as error, atomic_open(target) as f:
        f.write("new\n")
    kept = (
        f"{target} is left as it was (the last good copy)"
        if existed
        else f"nothing was written to {target}"
    )
    assert str(error.value) == (
        f"cannot write {target}: the file system holding {tmp_path} is full (No space left on "
        f"device); {kept}; allowed: free space there, or write elsewhere"
    )
    assert (error.value.errno, error.value.strerror) == (28, "No space left on device")
    assert os.listdir(tmp_path) == (["result.md"] if existed else [])  # no .tmp left
    if existed:
        assert target.read_text() == "the last good one\n"


SIGTERM_WHILE_WRITING = """
import os, signal, sys
from recbole_sasrec.core.files import atomic_open, exit_on_sigterm
if sys.argv[2] == "handled":
    exit_on_sigterm()
with atomic_open(sys.argv[1]) as f:
    f.write("half")
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()  # the default handler ends the process here
"""


def test_sigterm_in_an_entry_point_removes_the_file_being_written(tmp_path):
    target = tmp_path / "model.pth"
    target.write_text("the last good one")
    for mode, code in (("default", -signal.SIGTERM), ("handled", 128 + signal.SIGTERM)):
        done = subprocess.run(
            [sys.executable, "-c", SIGTERM_WHILE_WRITING, str(target), mode], timeout=60
        )
        assert done.returncode == code
        left = sorted(p.name for p in tmp_path.iterdir() if p.name != "model.pth")
        if mode == "default":  # what run.py did before: a hidden half file stays
            assert len(left) == 1 and left[0].startswith(".model.pth.")
            assert temporaries(tmp_path) == {tmp_path / left[0]: "model.pth"}
            os.unlink(tmp_path / left[0])
        else:
            assert left == []
        assert target.read_text() == "the last good one"


def test_exit_on_sigterm_is_not_installed_by_importing_the_package():
    code = "import signal, recbole_sasrec, run; print(signal.getsignal(signal.SIGTERM) == 0)"
    from conftest import REPO

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.stdout.strip() == "True", done.stderr[-2000:]  # 0: SIG_DFL
