"""Recommendations written to files: CSV or Parquet, batch by batch, atomically; item titles;
a full disk reported as the file that could not be written."""

from __future__ import annotations

import contextlib
import csv
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from ..core.files import atomic_open

OUTPUT_FORMATS = (".csv", ".parquet")
FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, quota exceeded


class DiskFullError(ValueError):
    """A file or folder that could not be written for want of space; what was there is kept."""


@contextlib.contextmanager
def reporting_full_disk(path: str | os.PathLike, what: str = "file") -> Iterator[None]:
    """Turn a full disk (ENOSPC, EDQUOT) while the block writes ``path`` atomically into a
    ``DiskFullError`` naming it; other errors pass unchanged."""
    existed = os.path.lexists(path)
    try:
        yield
    except OSError as error:
        if error.errno not in FULL:
            raise
        kept = f"the previous {what} is kept" if existed else f"no {what} was written"
        raise DiskFullError(
            f"{str(path)!r} could not be written: {os.strerror(error.errno)}; {kept}"
        ) from error


def check_output(
    out: str | os.PathLike, replace: bool = False, formats: tuple[str, ...] = OUTPUT_FORMATS
) -> None:
    """A ``ValueError`` naming ``out`` unless it can be written: one of ``formats`` (its
    extension), a folder that exists, and no file (never a folder) there already unless
    ``replace``."""
    if not isinstance(out, (str, os.PathLike)):
        raise ValueError(f"out={out!r} must be a file name (str or path)")
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise ValueError(
            f"out={str(out)!r}: unknown output format {suffix!r}; allowed: {', '.join(formats)}"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(
            f"out={str(out)!r}: folder {str(folder)!r} does not exist; create it first"
        )
    if path.is_dir():
        raise ValueError(f"out={str(out)!r} is a folder; allowed: a file name ending in {suffix}")
    if path.exists() and not replace:
        raise ValueError(
            f"out={str(out)!r} exists; allowed: another file, or replace=True (command line: "
            f"--replace) to overwrite it"
        )


def write_frames(
    out: str | os.PathLike, batches: Iterable[pd.DataFrame], k: int, replace: bool = False
) -> int:
    """Write top-k frames (user, rank, item, score) batch by batch to ``out``: CSV or Parquet,
    chosen by its extension; the file appears only when complete (a full disk: a
    ``DiskFullError``, the previous file kept). Returns the number of users."""
    check_output(out, replace)
    with reporting_full_disk(out):
        return _write_frames(out, batches, k)


def _write_frames(out: str | os.PathLike, batches: Iterable[pd.DataFrame], k: int) -> int:
    suffix, written = Path(out).suffix.lower(), 0
    if suffix == ".csv":
        with atomic_open(out, "w", encoding="utf-8", newline="") as f:
            for i, frame in enumerate(batches):
                frame.to_csv(f, index=False, header=i == 0)
                written += len(frame) // k
            if written == 0:
                f.write("user,rank,item,score\n")
        return written
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_open(out, "wb") as f:
        writer = None
        for frame in batches:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(f, table.schema)
            writer.write_table(table)
            written += len(frame) // k
        if writer is not None:
            writer.close()
    return written


def read_titles(data_path: str, dataset: str) -> dict[str, str]:
    """item token -> title from ``<dataset>.item`` when it has a title column (ml-100k does)."""
    path = Path(data_path) / f"{dataset}.item"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.split(":")[0] for h in next(rows, [])]
        if "item_id" not in header:
            return {}
        title = next((i for i, h in enumerate(header) if "title" in h or h == "name"), None)
        if title is None:
            return {}
        item = header.index("item_id")
        return {r[item]: r[title] for r in rows if len(r) > max(item, title)}
