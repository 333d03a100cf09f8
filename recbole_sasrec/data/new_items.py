"""New items' attributes, read for a trained model: a RecBole ``.item`` atomic file, or the
attribute JSON ``convert --format attributes`` reads (item token -> list of attribute tokens).

Only the model's selected fields are read (others are ignored), and their tokens are mapped
through the vocabularies the model was trained with. A token never seen in training cannot have
a vector: it is left out of its item's mean, and one warning counts them. Refused with a
``ConfigError`` naming the file, before anything is added (all or nothing): an empty file, a
selected field the file lacks or holds with another type, a value that does not parse, an item
listed twice or already in the catalogue, an item with no value the model knows in any field.

Standard library and NumPy only: an exported artifact adds items with it, without RecBole or
torch.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.keys import ConfigError
from .attributes import read_attribute_json

FORMATS = ("item", "json")
TOKEN_TYPES = ("token", "token_seq")
FLOAT_TYPES = ("float", "float_seq")
SHOWN = 5  # items, values named in an error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Field:
    """A selected field as the model was trained with it: its RecBole type; token fields their
    vocabulary (token -> row of the field's table, 0 the pad); float fields their width."""

    name: str
    type: str  # token, token_seq, float, float_seq
    vocabulary: Mapping[str, int] | None = None
    width: int = 1


@dataclass
class NewItems:
    """What a file adds: the item tokens, in file order, and per field their values [n, S]:
    token ids (int64, 0 the pad or a token never seen) or raw floats (float32, NaN missing)."""

    tokens: list[str]
    values: dict[str, np.ndarray]
    unknown: dict[str, int]  # per field, the tokens left out as never seen in training


def file_format(path: str | os.PathLike, format: str | None) -> str:
    """``format``, or by the file's suffix: ``.json`` the attribute JSON, else a ``.item`` file."""
    if format is None:
        return "json" if Path(path).suffix.lower() == ".json" else "item"
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}; allowed: {', '.join(FORMATS)}, or None (by suffix)")
    return format


def read_new_items(
    path: str | os.PathLike,
    item_field: str,
    fields: Sequence[Field],
    catalogue: Mapping[str, int],
    format: str | None = None,
    field_separator: str = "\t",
    seq_separator: str = " ",
    encoding: str | None = None,
) -> NewItems:
    """The new items of ``path`` (``format`` 'item' or 'json'; None: by suffix), their
    ``fields`` mapped through the fields' vocabularies. ``catalogue``: the items the model
    has (token -> id); ``field_separator``, ``seq_separator``, ``encoding``: the data set's."""
    path = Path(path)
    if not fields:
        raise ConfigError(f"{path}: the model reads no item attributes (selected_features: [])")
    if file_format(path, format) == "json":
        tokens, cells = _read_json(path, fields)
    else:
        tokens, cells = _read_item_file(
            path, item_field, fields, field_separator, encoding or "utf-8"
        )
    if not tokens:
        raise ConfigError(f"{path}: no items; allowed: a file with at least one new item")
    _check_new(path, tokens, catalogue)
    values, unknown, known = {}, {}, np.zeros(len(tokens), dtype=bool)
    for field in fields:
        column = [row[field.name] for row in cells]
        if field.type in TOKEN_TYPES:
            values[field.name], unknown[field.name] = _token_ids(column, field, seq_separator)
            known |= (values[field.name] > 0).any(1)
        else:
            values[field.name], given = _floats(path, tokens, column, field, seq_separator)
            known |= given
    if not known.all():
        raise ConfigError(_nothing_known(path, tokens, cells, fields, ~known))
    if sum(unknown.values()):
        counts = ", ".join(f"{name}: {n}" for name, n in unknown.items() if n)
        log.warning(
            f"{path}: {sum(unknown.values())} attribute value(s) never seen in training ({counts}) "
            f"left out of their items' vectors"
        )
    return NewItems(tokens, values, unknown)


# ---- the two formats --------------------------------------------------------------------------
def _read_json(path: Path, fields: Sequence[Field]) -> tuple[list[str], list[dict[str, str]]]:
    """The attribute JSON: one list of tokens an item, for the model's single token field."""
    if len(fields) != 1 or fields[0].type not in TOKEN_TYPES:
        shown = ", ".join(f"{f.name} ({f.type})" for f in fields)
        raise ConfigError(
            f"{path}: the attribute JSON gives each item one list of tokens, and the model reads "
            f"{shown}; allowed: a .item file with those fields (or format='item')"
        )
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    data = read_attribute_json(path, ConfigError)
    return list(data), [{fields[0].name: data[item]} for item in data]


def _read_item_file(
    path: Path, item_field: str, fields: Sequence[Field], separator: str, encoding: str
) -> tuple[list[str], list[dict[str, str]]]:
    """A RecBole atomic file: a header of ``name:type`` fields, then one item a line."""
    try:
        with open(path, encoding=encoding, newline="") as f:
            lines = [line.rstrip("\r") for line in f.read().split("\n")]  # only line breaks
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not {encoding} text ({error.reason})") from None
    if not lines or not lines[0].strip():
        raise ConfigError(
            f"{path}: empty; allowed: a header ({item_field}:token and the selected fields) and "
            f"one line an item"
        )
    header = [h.split(":", 1) for h in lines[0].lstrip("\ufeff").split(separator)]
    types = {h[0]: h[1] if len(h) == 2 else "" for h in header}
    expected = {item_field: "token", **{f.name: f.type for f in fields}}
    wrong = [f"{n}:{types[n]}" for n in expected if n in types and types[n] != expected[n]]
    missing = [n for n in expected if n not in types]
    if missing or wrong:
        found = ", ".join(f"{n}:{t}" for n, t in types.items())
        raise ConfigError(
            f"{path}: "
            + (f"no field {', '.join(missing)}" if missing else f"other types: {', '.join(wrong)}")
            + f" (its header: {found}); allowed: a header holding "
            + ", ".join(f"{n}:{t}" for n, t in expected.items())
            + " (other fields are ignored)"
        )
    at = {name: i for i, (name, *_) in enumerate(header)}
    tokens, cells = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(separator)
        if len(parts) != len(header):
            raise ConfigError(
                f"{path}, line {number}: {len(parts)} fields; the header has {len(header)}"
            )
        item = parts[at[item_field]]
        if not item:
            raise ConfigError(f"{path}, line {number}: no {item_field}")
        tokens.append(item)
        cells.append({f.name: parts[at[f.name]] for f in fields})
    return tokens, cells


# ---- checks and values ------------------------------------------------------------------------
def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _check_new(path: Path, tokens: list[str], catalogue: Mapping[str, int]) -> None:
    repeated = [t for t, n in Counter(tokens).items() if n > 1]
    if repeated:
        raise ConfigError(
            f"{path}: {len(repeated)} item(s) listed more than once ({_listing(repeated)}); "
            f"allowed: each new item once"
        )
    there = [t for t in tokens if t in catalogue]
    if there:
        raise ConfigError(
            f"{path}: {len(there)} item(s) already in the catalogue ({_listing(there)}); "
            f"allowed: items the model does not have (their vectors are not replaced)"
        )


def _split(cell, seq_separator: str) -> list[str]:
    if isinstance(cell, list):  # the JSON's lists
        return cell
    return [t for t in cell.split(seq_separator) if t]


def _token_ids(column: list, field: Field, seq_separator: str) -> tuple[np.ndarray, int]:
    """Token ids [n, S] (0-padded; a token never seen is 0 too) and how many were never seen."""
    seq = field.type == "token_seq"
    rows = [
        _split(cell, seq_separator) if seq or isinstance(cell, list) else [cell] for cell in column
    ]
    rows = [[t for t in row if t] for row in rows]  # an empty token cell: no token
    ids = np.zeros((len(rows), max(1, max(map(len, rows), default=1))), dtype=np.int64)
    unknown = 0
    for r, row in enumerate(rows):
        for c, token in enumerate(row):
            ids[r, c] = field.vocabulary.get(token, 0)
            unknown += token not in field.vocabulary
    return ids, unknown


def _floats(
    path: Path, items: list[str], column: list[str], field: Field, seq_separator: str
) -> tuple[np.ndarray, np.ndarray]:
    """Raw floats [n, width] (float: NaN where missing; float_seq: 0-padded as RecBole pads)
    and whether each item has a value."""
    values = np.full((len(column), field.width), np.nan, dtype=np.float32)
    given = np.zeros(len(column), dtype=bool)
    for r, cell in enumerate(column):
        parts = _split(cell, seq_separator) if field.type == "float_seq" else [cell.strip()]
        parts = [p for p in parts if p]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = [np.inf]
        if any(np.isinf(numbers)):
            raise ConfigError(
                f"{path}: item {items[r]!r}, field {field.name} ({field.type}): {cell!r}; "
                f"allowed: finite numbers (an empty value: the training mean)"
            )
        if len(numbers) > field.width:
            raise ConfigError(
                f"{path}: item {items[r]!r}, field {field.name}: {len(numbers)} values; the "
                f"model was trained with at most {field.width}"
            )
        if field.type == "float_seq":
            values[r] = 0.0
        values[r, : len(numbers)] = numbers
        given[r] = bool(numbers) and not np.isnan(numbers).any()
    return values, given


def _nothing_known(path, tokens, cells, fields: Sequence[Field], without: np.ndarray) -> str:
    """The error naming the first items without a value the model knows, field by field."""
    rows = np.flatnonzero(without)
    described = []
    for r in rows[:SHOWN]:
        cell = {f.name: cells[r][f.name] for f in fields}
        text = {n: c if isinstance(c, str) else " ".join(c) for n, c in cell.items()}  # JSON lists
        described.append(f"{tokens[r]!r} ({', '.join(f'{n}: {t!r}' for n, t in text.items())})")
    examples = []
    for f in fields:
        if f.type in TOKEN_TYPES:
            seen = [t for t, i in f.vocabulary.items() if i > 0][:3]
            examples.append(f"{f.name} tokens such as {', '.join(map(repr, seen))}")
        else:
            examples.append(f"a number in {f.name}")
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    return (
        f"{path}: {len(rows)} item(s) have no attribute value the model learned, so no vector "
        f"to rank them by: {'; '.join(described)}{more}; allowed: at least one value seen in "
        f"training in a selected field ({'; '.join(examples)})"
    )
