"""Turn interaction logs into RecBole atomic files: ``<out>/<name>/<name>.inter``.

Two inputs:
* ``sasrec``: the SASRec text format (seeds 002 and 004): ``user item`` per line, whitespace
  separated, sorted by time within each user, ids from 1. The line order within a user becomes
  the timestamp.
* ``csv``: a CSV/TSV with a header, user and item columns and an optional timestamp column
  (names given as options). Without a timestamp column the line order within a user is used.

The output is written to a temporary file and renamed into place, so a failure never leaves a
half-written ``.inter`` behind. Bad input raises ``ConvertError`` naming the file and line.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


class ConvertError(ValueError):
    """The input file cannot be converted; the message names the file and line."""


def _sasrec_rows(path: Path):
    for number, line in enumerate(open(path, encoding="utf-8"), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ConvertError(
                f"{path}, line {number}: expected 2 columns 'user item', found {len(fields)}: "
                f"{line.rstrip()!r}"
            )
        yield number, fields[0], fields[1], None


def _csv_rows(path: Path, user_col: str, item_col: str, time_col: str | None, sep: str | None):
    with open(path, encoding="utf-8", newline="") as f:
        sample = f.read(4096)
        f.seek(0)
        first = sample.splitlines()[0] if sample else ""
        delimiter = sep or ("\t" if "\t" in first else ",")
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ConvertError(f"{path}: the file is empty")
        wanted = [c for c in (user_col, item_col, time_col) if c]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ConvertError(f"{path}, line 1: no column {missing} in header {header}")
        u, i = header.index(user_col), header.index(item_col)
        t = header.index(time_col) if time_col else None
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ConvertError(
                    f"{path}, line {number}: expected {len(header)} columns as in the header, "
                    f"found {len(row)}: {delimiter.join(row)!r}"
                )
            stamp = None
            if t is not None:
                try:
                    stamp = float(row[t])
                except ValueError:
                    stamp = math.nan
                if not math.isfinite(stamp):
                    raise ConvertError(
                        f"{path}, line {number}: timestamp {row[t]!r} in column {time_col!r} "
                        f"is not a finite number"
                    ) from None
            yield number, row[u], row[i], stamp


def convert(
    input_file: str,
    out_dir: str,
    name: str,
    fmt: str = "sasrec",
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    sep: str | None = None,
) -> Path:
    """Convert ``input_file`` and return the path of the ``.inter`` file written.

    Afterwards ``run_recbole(model='SASRec', dataset=name, config_dict={'data_path': out_dir})``
    trains on it.
    """
    path = Path(input_file)
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")
    if fmt == "sasrec":
        rows = _sasrec_rows(path)
    elif fmt == "csv":
        rows = _csv_rows(path, user_col, item_col, time_col, sep)
    else:
        raise ConvertError(f"format={fmt!r} is not supported; allowed: sasrec, csv")

    position = defaultdict(int)  # line order within each user, for files without timestamps
    lines = []
    for _, user, item, stamp in rows:
        if stamp is None:
            stamp = position[user]
            position[user] += 1
        lines.append(f"{user}\t{item}\t{stamp:.17g}\n")
    if not lines:
        raise ConvertError(f"{path}: the file has no interactions")

    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.inter"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(HEADER)
            f.writelines(lines)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target
