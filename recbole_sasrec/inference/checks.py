"""Checks on an exported folder before it serves, and on the arguments of the serving API.

Every file of a folder is held to ``metadata.json``: its hash (sha256, first 16 hex digits, as
the export recorded it) and its shape (the item table [N, D] against the tokens and
``hidden_size``, ``max_item_list_length`` against the encoder's own). A file from another export,
a reordered or cut table, an edited metadata: each is an ``ArtifactError`` that names the file,
what was expected and what was found. NumPy and the standard library only (onnx for encoders
exported before they recorded their window).
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ENCODER, ITEMS, TOKENS, METADATA, INDEX = (
    "encoder.onnx",
    "items.npy",
    "item_tokens.json",
    "metadata.json",
    "items.hnsw",
)
ATTRIBUTES, ATTRIBUTE_TABLES = "attributes.json", "attributes.npz"  # a model with attributes
FILES = (ENCODER, ITEMS, TOKENS, METADATA)  # every export writes these
EXPORT_FILES = (*FILES, INDEX, ATTRIBUTES, ATTRIBUTE_TABLES)  # and nothing else
# metadata.json's keys the serving reads: (type, what is expected)
KEYS = {
    "format": (str, "a string"),
    "model": (str, "a string"),
    "dataset": (str, "a string"),
    "max_item_list_length": (int, "an integer >= 1"),
    "hidden_size": (int, "an integer >= 1"),
    "files": (dict, "an object of file name -> hash"),
}
# parameter names of the position tables (SASRec's input embedding, LightSANs' attention)


class ArtifactError(ValueError):
    """An exported folder that cannot serve as it is: names the file, the expected, the found."""


def sha256(path: Path) -> str:
    """The first 16 hex digits of a file's sha256, read in blocks (an item table can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# ---- the folder -----------------------------------------------------------------------------
def read_metadata(folder: Path, format: str) -> dict[str, Any]:
    """``metadata.json`` of a folder holding every file an export writes, with the keys serving
    reads (``KEYS``) of the right types and the artifact ``format``."""
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not an exported model: no such folder")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(f"{folder} is not an exported model: no {', '.join(missing)}")
    path = folder / METADATA
    metadata = read_json(path, "JSON")
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path}: expected a JSON object; found {type(metadata).__name__}")
    if metadata.get("format") != format:
        raise ArtifactError(f"{path}: format {metadata.get('format')!r}; allowed: {format}")
    for key, (kind, expected) in KEYS.items():
        if key not in metadata:
            raise ArtifactError(f"{path}: no {key!r}; expected the keys {', '.join(KEYS)}")
        value = metadata[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 1):
            raise ArtifactError(f"{path}: {key}={value!r}; expected {expected}")
    return metadata


def read_json(path: Path, expected: str):
    """A JSON file's value; an ``ArtifactError`` naming the file if it does not parse."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(
            f"{path}: expected {expected}; found a file that does not parse ({error})"
        ) from None


def check_hashes(folder: Path, metadata: dict, names: tuple[str, ...]) -> None:
    """Each of ``names`` hashes to what ``metadata.json`` records for it under "files"."""
    recorded = metadata["files"]
    for name in names:
        if name not in recorded:
            raise ArtifactError(
                f"{folder / name}: metadata.json records no hash of it under 'files' (found: "
                f"{', '.join(sorted(recorded)) or 'none'}); it was not written by this export"
            )
        found = sha256(folder / name)
        if found != recorded[name]:
            raise ArtifactError(
                f"{folder / name}: sha256 {found}, but metadata.json records {recorded[name]!r}: "
                f"the file was changed or comes from another export; export the model again"
            )


def read_tokens(folder: Path) -> dict[str, int]:
    """``item_tokens.json``, a list of unique strings (the token of each item id), as token ->
    id (a dict, which tells repeats at no extra cost: it is what serving looks tokens up in)."""
    path = folder / TOKENS
    tokens = read_json(path, "a JSON list of item tokens")
    if not isinstance(tokens, list):
        raise ArtifactError(
            f"{path}: expected a list of item tokens; found {type(tokens).__name__}"
        )
    if len(tokens) < 2:
        raise ArtifactError(f"{path}: expected the pad and at least one item; found {tokens}")
    if set(map(type, tokens)) != {str}:
        others = [t for t in tokens if not isinstance(t, str)]
        raise ArtifactError(f"{path}: expected strings (item tokens); found {others[:3]}")
    token_id = dict(zip(tokens, range(len(tokens)), strict=True))
    if len(token_id) < len(tokens):
        repeated = sorted(t for t, n in Counter(tokens).items() if n > 1)
        raise ArtifactError(
            f"{path}: expected unique tokens; found {len(repeated)} repeated: "
            + ", ".join(repr(t) for t in repeated[:5])
        )
    return token_id


def read_items(folder: Path, n_tokens: int, hidden_size: int) -> np.ndarray:
    """``items.npy``: a float table [n_tokens, hidden_size], not all zeros, finite."""
    path = folder / ITEMS
    try:
        items = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ArtifactError(
            f"{path}: expected a .npy array; found a file numpy cannot read ({error})"
        ) from None
    if items.ndim != 2 or not np.issubdtype(items.dtype, np.floating):
        raise ArtifactError(
            f"{path}: expected a 2-D float table; found {items.ndim}-D {items.dtype}"
        )
    expected = (n_tokens, hidden_size)
    if items.shape != expected:
        raise ArtifactError(
            f"{path}: expected {expected[0]} rows (one per token of item_tokens.json) of "
            f"hidden_size={hidden_size} (metadata.json); found {items.shape[0]} x {items.shape[1]}"
        )
    if problem := item_table_problem(items):
        raise ArtifactError(f"{path}: {problem}")
    return items


def item_table_problem(items: np.ndarray) -> str | None:
    """What makes an item table [N, D] (row 0 the pad) useless for ranking, or None."""
    if not np.isfinite(items).all():
        return "the item table holds NaN or infinite values (every score would be meaningless)"
    if not items[1:].any():
        return "the item table is all zeros (every item would score 0)"
    return None


def encoder_window(folder: Path, session) -> int:
    """``max_item_list_length`` as the encoder itself knows it: its ONNX metadata (exports write
    it)."""
    props = session.get_modelmeta().custom_metadata_map
    if "max_item_list_length" not in props:
        raise ArtifactError(
            f"{folder / ENCODER}: expected its max_item_list_length in its metadata; found "
            f"none: export the model again"
        )
    return int(props["max_item_list_length"])


def check_encoder(folder: Path, session, metadata: dict) -> None:
    """The encoder's window and width are the ones ``metadata.json`` states."""
    props = session.get_modelmeta().custom_metadata_map
    found = {"max_item_list_length": encoder_window(folder, session)}
    if "hidden_size" in props:
        found["hidden_size"] = int(props["hidden_size"])
    for key, value in found.items():
        if metadata[key] != value:
            raise ArtifactError(
                f"{folder / METADATA}: {key}={metadata[key]}, but {ENCODER} was exported with "
                f"{key}={value}; expected the encoder's"
            )


def check_index(folder: Path, index, items: np.ndarray) -> None:
    """The faiss index holds the item table's rows but the pad, in its width."""
    if (index.ntotal, index.d) != (len(items) - 1, items.shape[1]):
        raise ArtifactError(
            f"{folder / INDEX}: expected {len(items) - 1} items of {items.shape[1]} dimensions "
            f"(items.npy without the pad); found {index.ntotal} of {index.d}"
        )


def earlier_export_problem(folder: Path, formats: tuple[str, ...]) -> str | None:
    """Why ``folder`` is not a complete earlier export (a folder holding only the files an
    export writes, its metadata.json of one of the artifact ``formats``), or None if it is."""
    if folder.is_symlink() or not folder.is_dir():
        return "it is not a folder" if not folder.is_symlink() else "it is a symbolic link"
    entries = sorted(p.name for p in folder.iterdir())
    others = [name for name in entries if name not in EXPORT_FILES]
    if others:
        return f"it holds {', '.join(others[:5])}, which an export does not write"
    if any(not (folder / name).is_file() or (folder / name).is_symlink() for name in entries):
        return "its entries are not all plain files"
    try:
        format_found = json.loads((folder / METADATA).read_text(encoding="utf-8")).get("format")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return f"it has no readable {METADATA}"
    if format_found not in formats:
        return f"its {METADATA} has format {format_found!r}, not {' or '.join(formats)}"
    return None


# ---- arguments ------------------------------------------------------------------------------
def count(name: str, value: Any, high: int | None = None) -> int:
    """An integer >= 1 (numpy integers too), at most ``high``; bools, floats, strings refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} must be a positive integer")
    value = operator.index(value)
    if value < 1 or (high is not None and value > high):
        allowed = f"an integer from 1 to {high}" if high is not None else "an integer >= 1"
        raise ValueError(f"{name}={value!r} must be a positive integer; allowed: {allowed}")
    return value


def flag(name: str, value: Any) -> bool:
    """A bool (numpy's too): a string such as "False" is refused, not read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} must be True or False")
    return bool(value)


def score(name: str, value: Any) -> float:
    """A finite real number (numpy's too); bools and strings refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name}={value!r} must be a number")
    if not np.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    return float(value)


def tokens(name: str, value: Any) -> list:
    """A list of tokens from any sequence but a string (which would be read letter by letter)."""
    if isinstance(value, (str, bytes)):
        raise ValueError(
            f"{name}={value!r} is a string; allowed: a list of tokens, e.g. [{value!r}]"
        )
    if not hasattr(value, "__len__") or not hasattr(value, "__iter__") or isinstance(value, dict):
        raise ValueError(f"{name}={value!r} must be a list of tokens")
    return list(value)


def token_lists(name: str, value: Any) -> list[list]:
    """A list of lists of tokens (one per session); a string anywhere in its place is refused."""
    return [tokens(f"{name}[{i}]", row) for i, row in enumerate(tokens(name, value))]


def max_threads() -> int:
    """The most ONNX Runtime threads accepted: 4 per core of this machine."""
    return 4 * (os.cpu_count() or 1)
