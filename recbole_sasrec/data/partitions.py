"""A log prepared once into partitions by user, so that each of several processes reads only its
share (``python -m recbole_sasrec prepare``; docs/usage.md, "Several machines").

The layout of ``<out>/<name>/`` (a Spark or Ray Data job can write the same):

    partitions.json          the manifest: fields, partitions, counts, the time's range, the
                             run's id
    items.parquet            the item vocabulary: ``token`` (string), ``count`` (int64), in id
                             order (id = row + 1; 0 is RecBole's [PAD])
    part-00000.parquet ...   the interactions of the users of each partition: ``user_id`` and
                             ``item_id`` (strings), ``timestamp`` (float64), ``row`` (int64)
    <name>.item              the item features, copied as they are (when there is one)

A user's partition: the first 15 hex digits of the MD5 of the user token's UTF-8 bytes, read as
an integer, modulo the partition count (Spark: ``pmod(conv(substring(md5(user_id), 1, 15), 16,
10), P)``). ``row`` is each interaction's place in the log (any increasing number): a process
puts its rows back in log order, so that RecBole numbers users by first appearance as it does
reading the whole file. Items are numbered by first appearance in the log, the order RecBole
gives them, so that every process has the same ids (the vocabulary is replicated); then items of
the ``.item`` file that the log lacks, as RecBole adds them.

With N processes, process r reads the partitions p with p mod N == r (N at most P; N dividing P
spreads them evenly). A user's interactions are all in one partition, so each process builds
its users' windows, validation and test rows as one process would for them.

``prepare`` reads the log in chunks of a bounded size and never holds it whole: the vocabulary
is the only thing that grows with the log (one entry per item), and users are counted one
partition at a time after the pass. Everything is written to a temporary folder renamed into
place at the end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

MANIFEST = "partitions.json"
VOCABULARY = "items.parquet"
FORMAT = "recbole-sasrec partitions 1"
HASH_RULE = "int(md5(utf-8 user token)[:15 hex digits], 16) mod partitions"
ROW = "row"  # each interaction's place in the log
ID_KEY = b"recbole_sasrec.prepared_id"  # in every part's Parquet metadata


class PartitionError(ValueError):
    """A prepared log that cannot be read as asked; names the file and what is allowed."""


def partition_of(tokens, partitions: int) -> np.ndarray:
    """The partition of each user token (``HASH_RULE``)."""
    digits = [hashlib.md5(str(t).encode()).hexdigest()[:15] for t in tokens]
    return np.array([int(d, 16) % partitions for d in digits], dtype=np.int64)


def part_file(p: int) -> str:
    return f"part-{p:05d}.parquet"


def partitions_of_rank(partitions: int, world: int, rank: int) -> list[int]:
    """The partitions process ``rank`` of ``world`` reads."""
    return list(range(rank, partitions, world))


def read_manifest(folder) -> dict | None:
    """The manifest of a prepared log in ``folder``, or None when the folder holds none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise PartitionError(
            f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}; allowed: a folder "
            f"written by python -m recbole_sasrec prepare (or the same layout)"
        )
    return manifest


def _typed_header(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8-sig") as f:
        head = f.readline().rstrip("\r\n").split("\t")
    return [tuple(f.split(":", 1)) if ":" in f else (f, "") for f in head]


def _chunks(inter: Path, fields, rows: int):
    """The log's user, item and time columns, ``rows`` rows at a time, the time parsed by
    pandas' C parser (read as strings, a Python object each, they made ``prepare``'s peak grow
    with the log: docs/results.md). A time that is not a number fails the parser; only then is
    the file read again, to name its line."""
    user, item, time = fields
    reader = pd.read_csv(
        inter,
        sep="\t",
        usecols=[f"{user}:token", f"{item}:token", f"{time}:float"],
        dtype={f"{user}:token": str, f"{item}:token": str, f"{time}:float": np.float64},
        chunksize=rows,
        encoding="utf-8-sig",
        keep_default_na=False,
    )
    while True:
        try:
            chunk = next(reader)
        except StopIteration:
            return
        except ValueError as error:  # "could not convert string to float: ..." (or a parser error)
            named = _not_a_number(inter, time)
            if named is None:
                raise
            raise named from error
        chunk.columns = [c.split(":")[0] for c in chunk.columns]
        yield chunk


def _not_a_number(inter: Path, time: str) -> PartitionError | None:
    """The error naming the first line whose ``time`` is not a number; None if none is."""
    column = [field for field, _ in _typed_header(inter)].index(time)
    with open(inter, encoding="utf-8-sig") as f:
        next(f)
        for number, line in enumerate(f, start=2):
            values = line.rstrip("\r\n").split("\t") if line.strip() else ["0"] * (column + 1)
            value = values[column] if column < len(values) else ""
            try:
                float(value)
            except ValueError:
                return PartitionError(
                    f"{inter}, line {number}: no value that is a number in field {time!r} "
                    f"({value!r}); allowed: a user, an item and a timestamp (a number) in every row"
                )
    return None


def _check_chunk(inter: Path, chunk: pd.DataFrame, fields, seen: int) -> None:
    """``PartitionError`` naming the first row of a chunk without a user, an item or a time that
    is a number (line numbers count the header; RecBole would drop such a row, or refuse it)."""
    for field in fields:
        values = chunk[field]
        missing = values.isna() | (values == "") if values.dtype == object else values.isna()
        if missing.any():
            line = seen + int(np.flatnonzero(missing.to_numpy())[0]) + 2
            raise PartitionError(
                f"{inter}, line {line}: no value{' that is a number' if field == fields[2] else ''} "
                f"in field {field!r}; allowed: a user, an item and a timestamp (a number) in "
                f"every row"
            )


def prepare(
    data_path,
    dataset: str,
    out,
    partitions: int,
    chunk_rows: int = 1_000_000,
    fields: tuple[str, str, str] = ("user_id", "item_id", "timestamp"),
    replace: bool = False,
    report: Callable[[str], None] = print,
) -> dict:
    """Write ``<out>/<dataset>/`` (the module docstring) from ``<data_path>/<dataset>/`` (its
    ``.inter`` file and, when there is one, its ``.item`` file); return the manifest.
    ``fields``: the user, item and time fields kept (what a sequential model reads)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = Path(data_path) / dataset
    inter = source / f"{dataset}.inter"
    if not inter.is_file():
        raise PartitionError(f"no interaction file {inter}; allowed: data_path/dataset/*.inter")
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise PartitionError(f"partitions={partitions!r}; allowed: an integer >= 1, e.g. 8")
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise PartitionError(f"chunk_rows={chunk_rows!r}; allowed: an integer >= 1")
    target = Path(out) / dataset
    if target.exists() and not replace:
        raise PartitionError(f"{target} exists; allowed: another --out, or --replace")
    header = dict(_typed_header(inter))
    user, item, time = fields
    for field, kind in ((user, "token"), (item, "token"), (time, "float")):
        if header.get(field) != kind:
            raise PartitionError(
                f"{inter}, line 1: no field {field}:{kind} (the header has "
                f"{', '.join(f'{k}:{v}' for k, v in header.items())}); allowed: a header with "
                f"{user}:token, {item}:token and {time}:float"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dataset}.", dir=target.parent))
    prepared_id = uuid.uuid4().hex
    schema = pa.schema(
        [(user, pa.string()), (item, pa.string()), (time, pa.float64()), (ROW, pa.int64())],
        metadata={ID_KEY: prepared_id.encode()},
    )
    try:
        writers = [pq.ParquetWriter(work / part_file(p), schema) for p in range(partitions)]
        vocabulary: dict[str, int] = {}
        counts = np.zeros(0, dtype=np.int64)
        rows = np.zeros(partitions, dtype=np.int64)
        seen, low, high = 0, np.inf, -np.inf
        for chunk in _chunks(inter, fields, chunk_rows):
            n = len(chunk)
            _check_chunk(inter, chunk, fields, seen)
            # items numbered by first appearance: factorize keeps a chunk's order
            codes, uniques = pd.factorize(chunk[item].to_numpy())
            ids = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in uniques])
            if len(vocabulary) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(vocabulary) - len(counts), int)])
            np.add.at(counts, ids[codes], 1)
            user_codes, users = pd.factorize(chunk[user].to_numpy())
            part = partition_of(users, partitions)[user_codes]
            table = pa.table(
                {
                    user: chunk[user].to_numpy(),
                    item: chunk[item].to_numpy(),
                    time: chunk[time].to_numpy(),
                    ROW: np.arange(seen, seen + n, dtype=np.int64),
                },
                schema=schema,
            )
            order = np.argsort(part, kind="stable")  # each partition's rows, in log order
            bounds = np.searchsorted(part[order], np.arange(partitions + 1))
            for p in range(partitions):
                if bounds[p + 1] > bounds[p]:
                    writers[p].write_table(table.take(order[bounds[p] : bounds[p + 1]]))
            rows += np.bincount(part, minlength=partitions)
            seen += n
            low, high = min(low, chunk[time].min()), max(high, chunk[time].max())
            report(f"prepare {dataset}: {seen} interactions read, {len(vocabulary)} items")
        for writer in writers:
            writer.close()
        files = []
        for p in range(partitions):  # users counted a partition at a time: each row group's
            part = pq.ParquetFile(work / part_file(p))  # distinct users (compact strings), then
            groups = [  # those of the partition (at most its rows)
                pc.unique(part.read_row_group(g, columns=[user]).column(user))
                for g in range(part.num_row_groups)
            ]
            users = len(pc.unique(pa.chunked_array(groups, pa.string()))) if groups else 0
            files.append({"file": part_file(p), "rows": int(rows[p]), "users": users})
        tokens = list(vocabulary)
        pq.write_table(pa.table({"token": tokens, "count": counts}), work / VOCABULARY)
        item_file = source / f"{dataset}.item"
        if item_file.is_file():
            shutil.copyfile(item_file, work / item_file.name)
        manifest = {
            "format": FORMAT,
            "dataset": dataset,
            "fields": {"user": user, "item": item, "time": time},
            "partitions": partitions,
            "hash": HASH_RULE,
            "prepared_id": prepared_id,
            "interactions": seen,
            # RecBole scales float fields by their min and max (normalize_all): the whole log's
            "time_range": [float(low), float(high)] if seen else None,
            "items": len(tokens),
            "users": sum(f["users"] for f in files),
            "vocabulary_sha256": hashlib.sha256((work / VOCABULARY).read_bytes()).hexdigest(),
            "files": files,
            "source": str(inter.resolve()),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report(
        f"prepared {target}: {seen} interactions of {manifest['users']} users and "
        f"{len(tokens)} items in {partitions} partitions"
    )
    return manifest
