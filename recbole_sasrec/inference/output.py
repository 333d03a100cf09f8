"""Recommendations written to files: CSV or Parquet, batch by batch, atomically; item titles."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..core.files import atomic_open

OUTPUT_FORMATS = (".csv", ".parquet")


def check_output(out: str | os.PathLike, replace: bool = False) -> None:
    """A ``ValueError`` naming ``out`` unless it can be written: a known format, a folder that
    exists, and no file there already unless ``replace``."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(
            f"out={str(out)!r}: unknown output format {suffix!r}; allowed: "
            f"{', '.join(OUTPUT_FORMATS)}"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(
            f"out={str(out)!r}: folder {str(folder)!r} does not exist; create it first"
        )
    if path.exists() and not replace:
        raise ValueError(
            f"out={str(out)!r} exists; allowed: another file, or replace=True (command line: "
            f"--replace) to overwrite it"
        )


def write_frames(
    out: str | os.PathLike, batches: Iterable[pd.DataFrame], k: int, replace: bool = False
) -> int:
    """Write top-k frames (user, rank, item, score) batch by batch to ``out``: CSV or Parquet,
    chosen by its extension; the file appears only when complete. Returns the number of users."""
    check_output(out, replace)
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
