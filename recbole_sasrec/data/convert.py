"""Turn interaction logs into RecBole atomic files: ``<out>/<name>/<name>.inter``.

Three interaction formats, and item attributes:
* ``sasrec``: the SASRec text format: ``user item`` per line, whitespace separated, sorted by
  time within each user, ids from 1. The line order within a user becomes the timestamp.
* ``sequences``: one line per user, ``user item item ...``, whitespace separated, oldest item
  first (the files of the sequential-recommendation literature: S3-Rec, ICLRec, BSARec). An
  item's place in its line becomes the timestamp (0, 1, ...), so RecBole's sort by time keeps
  the order. A line with a user and no items, or a user on two lines, is an error.
* ``csv``: a CSV/TSV with a header, user and item columns and an optional timestamp column
  (names given as options). Without a timestamp column the line order within a user is used.
* ``attributes``: item -> attribute tokens as JSON (S3-Rec's ``item2attributes.json``), written
  as ``<name>.item`` beside a converted ``<name>.inter`` (``attributes.py``).

The output is written to a temporary file and renamed into place, so a failure never leaves a
half-written ``.inter`` behind, and an existing data set of the same name is refused unless
``replace=True`` (a checkpoint trained on the old file would otherwise recommend from remapped
ids; checkpoints also record a fingerprint of their data and refuse a changed one). Bad input
raises ``ConvertError`` naming the file and line: a field holding a tab or a line break (RecBole's
atomic files are tab-separated, with no quoting, so it could not be read back as one field), a
wrong number of columns, a timestamp that is not a finite number, bytes that are not UTF-8. A
UTF-8 byte-order mark is ignored. Rows repeating an earlier row (same user, item and timestamp)
are counted and kept; RecBole's ``rm_dup_inter`` can drop them.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from ..core.files import atomic_open, first_undecodable_line
from .attributes import write_item_file

FORMATS = ("sasrec", "sequences", "csv", "attributes")
HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


class ConvertError(ValueError):
    """The input file cannot be converted; the message names the file and line."""


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_field(path: Path, number: int, value: str, what: str) -> str:
    if "\t" in value or "\n" in value or "\r" in value:
        raise ConvertError(
            f"{path}, line {number}: {what} {value!r} holds a tab or a line break, which "
            f"RecBole's tab-separated atomic files cannot hold in one field"
        )
    return value


def _sasrec_rows(path: Path):
    for number, line in enumerate(open(path, encoding="utf-8-sig"), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ConvertError(
                f"{path}, line {number}: expected 2 columns 'user item', found {len(fields)}: "
                f"{line.rstrip()!r}"
            )
        yield number, fields[0], fields[1], None


def _sequence_rows(path: Path):
    lines_of: dict[str, int] = {}
    for number, line in enumerate(open(path, encoding="utf-8-sig"), start=1):
        fields = line.split()
        if not fields:
            continue
        user, items = fields[0], fields[1:]
        if not items:
            raise ConvertError(
                f"{path}, line {number}: user {user!r} has no items; the format 'sequences' is "
                f"one line per user, 'user item item ...' (oldest first)"
            )
        if user in lines_of:
            raise ConvertError(
                f"{path}, line {number}: user {user!r} is on line {lines_of[user]} too; the "
                f"format 'sequences' is one line per user (for 'user item' lines: --format sasrec)"
            )
        lines_of[user] = number
        for position, item in enumerate(items):
            yield number, user, item, float(position)


def _csv_rows(path: Path, user_col: str, item_col: str, time_col: str | None, sep: str | None):
    with open(path, encoding="utf-8-sig", newline="") as f:
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
        for row in reader:
            number = reader.line_num  # the line the row ends on (a quoted field may span lines)
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
            user = _check_field(path, number, row[u], f"user ({user_col})")
            yield number, user, _check_field(path, number, row[i], f"item ({item_col})"), stamp


def convert(
    input_file: str,
    out_dir: str,
    name: str,
    fmt: str = "sasrec",
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = None,
    sep: str | None = None,
    replace: bool = False,
    report: Callable[[str], None] | None = None,
    field: str = "attributes",
) -> Path:
    """Convert ``input_file`` and return the path of the ``.inter`` file written.

    Afterwards ``run_recbole(model='SASRec', dataset=name, config_dict={'data_path': out_dir})``
    trains on it. ``replace``: overwrite an existing data set of that name. ``report`` receives
    notes on the input (duplicate rows), one line each.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
        raise ConvertError(
            f"name={name!r} is not a data set name; allowed: letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit (it names the folder and the file)"
        )
    path = Path(input_file)
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")
    if fmt == "attributes":  # the .item file beside a converted .inter (``attributes.py``)
        folder = Path(out_dir) / name
        return write_item_file(path, folder, name, field, replace, ConvertError, report)
    if fmt == "sasrec":
        rows = _sasrec_rows(path)
    elif fmt == "sequences":
        rows = _sequence_rows(path)
    elif fmt == "csv":
        rows = _csv_rows(path, user_col, item_col, time_col, sep)
    else:
        raise ConvertError(f"format={fmt!r} is not supported; allowed: {', '.join(FORMATS)}")

    folder = Path(out_dir) / name
    target = folder / f"{name}.inter"
    if target.exists() and not replace:
        raise ConvertError(
            f"{target} exists: data set {name!r} was converted before, and a checkpoint trained "
            f"on it would not match a new file; allowed: another --name, or --replace "
            f"(replace=True) to overwrite it"
        )
    position = defaultdict(int)  # line order within each user, for files without timestamps
    lines, seen, duplicates = [], set(), 0
    try:
        for _, user, item, stamp in rows:
            if stamp is None:
                stamp = position[user]
                position[user] += 1
            line = f"{user}\t{item}\t{stamp:.17g}\n"
            if line in seen:
                duplicates += 1
            seen.add(line)
            lines.append(line)
    except UnicodeDecodeError:
        number, reason = first_undecodable_line(path, "utf-8")
        raise ConvertError(
            f"{path}, line {number}: bytes that are not UTF-8 ({reason}); allowed: a text file "
            f"in UTF-8 (e.g. re-save it as UTF-8, or iconv -f latin1 -t utf-8)"
        ) from None
    if not lines:
        raise ConvertError(f"{path}: the file has no interactions")
    if duplicates and report is not None:
        report(
            f"{duplicates} of {len(lines)} rows repeat an earlier row (same user, item and "
            f"timestamp); kept (RecBole's rm_dup_inter: user drops them)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(target, "w", encoding="utf-8") as f:
            f.write(HEADER)
            f.writelines(lines)
    except OSError as error:
        where = error.filename or target
        raise ConvertError(f"{where}: cannot write the data set: {error.strerror}") from None
    return target
