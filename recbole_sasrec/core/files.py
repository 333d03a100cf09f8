"""Writing files so that a reader never sees half of one: a temporary file, then a rename."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, disk quota exceeded


class NoSpaceError(OSError):
    """A write that ran out of space (or quota); names the file, its folder and what was kept.

    ``errno``, ``strerror`` and ``filename`` are the operating system's, so code that reports an
    ``OSError`` by its parts keeps working."""

    def __init__(self, error: OSError, target: Path, existed: bool):
        super().__init__(error.errno, error.strerror, error.filename or str(target))
        self.target = target
        self.existed = existed

    def __str__(self) -> str:
        kept = (
            f"{self.target} is left as it was (the last good copy)"
            if self.existed
            else f"nothing was written to {self.target}"
        )
        return (
            f"cannot write {self.target}: the file system holding {self.target.parent} is full "
            f"({self.strerror}); {kept}; allowed: free space there, or write elsewhere"
        )


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an error
    it replaces ``path`` (``os.replace``, atomic on one file system), else it is removed and
    ``path`` is left as it was. The file gets the permissions a newly created file gets under
    the process's umask (``tempfile`` alone would make it 0600). A full file system or quota
    raises ``NoSpaceError``, naming ``path``."""
    target = Path(path)
    existed = target.exists()
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        if error.errno in FULL:
            raise NoSpaceError(error, target, existed) from None
        raise
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno in FULL:
            raise NoSpaceError(error, target, existed) from None
        raise


# atomic_open's temporary name: ".<target name>.<tempfile's 8 random characters>.tmp"
TEMPORARY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def temporaries(folder: str | os.PathLike) -> dict[Path, str]:
    """The temporary files ``atomic_open`` wrote in ``folder``, each with the name of the file
    it was to become: a process killed while writing (SIGKILL, or SIGTERM with Python's default
    handling) leaves one behind."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        match = TEMPORARY.fullmatch(path.name)
        if match and path.is_file():
            found[path] = match["target"]
    return found


def exit_on_sigterm() -> None:
    """Make SIGTERM (a scheduler stopping a job, ``kill``) raise ``SystemExit(143)`` in the
    main thread, so that ``atomic_open`` removes the file it is writing and ``finally`` blocks
    run; Python's default ends the process at once. It changes the whole process: for entry
    points (``run.py``, ``run_hyper.py``), never called by the library."""

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def first_undecodable_line(path: str | os.PathLike, encoding: str) -> tuple[int, str]:
    """``(line number, reason)`` of the first line of ``path`` that is not ``encoding``;
    ``(0, 'unknown')`` when every line decodes alone (a character split across lines)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as error:
                return number, error.reason
    return 0, "unknown"


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)  # elsewhere: read by setting, then set back at once
        os.umask(umask)
        return umask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
