"""The attribute tables of an exported model, with which it adds items at serving time.

    attributes.json  the .item file's item field and separators, and per selected field its
                     name, RecBole type and (token fields) the tokens of its table's rows, in
                     row order, or (float fields) its width
    attributes.npz   per field ``<name>.weight``: a token field's table [V, D] (row 0 the pad),
                     a float field's map [D, S]; a float field's training ``<name>.mean`` and
                     ``<name>.std`` [S]

A new item's vector is what the model's ``ItemFeatures.vectors`` computes (``vectors`` here,
in NumPy): the sum over fields of its tokens' mean row, or its standardised floats times the
map. NumPy and the standard library only.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.new_items import FLOAT_TYPES, TOKEN_TYPES, Field
from .checks import ATTRIBUTE_TABLES, ATTRIBUTES, ArtifactError, read_json


@dataclass
class AttributeTables:
    """What adding items needs: how to read their file, the fields and their arrays."""

    item_field: str
    field_separator: str
    seq_separator: str
    encoding: str
    fields: list[Field]
    arrays: dict[str, np.ndarray]

    def vectors(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Attribute vectors [n, D] of items from their values per field [n, S] (token ids, 0
        left out of the mean; raw floats, NaN the training mean)."""
        out = None
        for field in self.fields:
            weight, v = self.arrays[f"{field.name}.weight"], values[field.name]
            if field.type in TOKEN_TYPES:
                real = v > 0  # [n, S]
                sums = (weight[v] * real[..., None]).sum(1)  # [n, D]
                part = sums / np.maximum(real.sum(1, keepdims=True), 1)
            else:
                mean, std = self.arrays[f"{field.name}.mean"], self.arrays[f"{field.name}.std"]
                part = np.nan_to_num((v - mean) / std, nan=0.0) @ weight.T  # [n, S] @ [S, D]
            out = part if out is None else out + part
        return out.astype(np.float32)

    def write(self, folder: Path) -> None:
        """``attributes.json`` and ``attributes.npz`` in ``folder``."""
        fields = []
        for f in self.fields:
            if f.type in TOKEN_TYPES:
                rows = sorted(f.vocabulary.items(), key=lambda pair: pair[1])
                fields.append({"name": f.name, "type": f.type, "tokens": [t for t, _ in rows]})
            else:
                fields.append({"name": f.name, "type": f.type, "width": f.width})
        described = {
            "item_field": self.item_field,
            "field_separator": self.field_separator,
            "seq_separator": self.seq_separator,
            "encoding": self.encoding,
            "fields": fields,
        }
        (folder / ATTRIBUTES).write_text(json.dumps(described))
        with open(folder / ATTRIBUTE_TABLES, "wb") as f:  # a full disk: an OSError
            np.savez(f, **self.arrays)

    @classmethod
    def read(cls, folder: Path, hidden_size: int) -> AttributeTables:
        """The tables of an exported folder, each held to the fields: a token table of one row
        per token, a float map of the field's width; every array finite and of ``hidden_size``
        columns. An ``ArtifactError`` names the file, the expected and the found."""
        path = folder / ATTRIBUTES
        described = read_json(path, "a JSON object describing the attribute fields")
        try:
            fields = [_field(f) for f in described["fields"]]
            keys = ("item_field", "field_separator", "seq_separator", "encoding")
            settings = [described[key] for key in keys]
            if not fields or not all(isinstance(s, str) and s for s in settings):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(
                f"{path}: expected item_field, field_separator, seq_separator, encoding and a "
                f"list of fields (name, type, tokens or width); found {str(described)[:200]}"
            ) from None
        arrays = _read_arrays(folder / ATTRIBUTE_TABLES)
        for field in fields:
            if field.type in TOKEN_TYPES:
                shapes = {"weight": (len(field.vocabulary), hidden_size)}
            else:
                shapes = {
                    "weight": (hidden_size, field.width),
                    "mean": (field.width,),
                    "std": (field.width,),
                }
            for part, shape in shapes.items():
                array = arrays.get(f"{field.name}.{part}")
                found = "none" if array is None else f"{array.dtype} {list(array.shape)}"
                if array is None or array.shape != shape or not np.isfinite(array).all():
                    raise ArtifactError(
                        f"{folder / ATTRIBUTE_TABLES}: expected {field.name}.{part}, finite "
                        f"floats of shape {list(shape)} ({ATTRIBUTES}'s {field.type} field, "
                        f"hidden_size={hidden_size}); found {found}"
                    )
        return cls(*settings, fields, arrays)


def _field(described: dict) -> Field:
    name, ftype = described["name"], described["type"]
    if not isinstance(name, str) or ftype not in TOKEN_TYPES + FLOAT_TYPES:
        raise ValueError
    if ftype in TOKEN_TYPES:
        tokens = described["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError
        return Field(name, ftype, vocabulary={t: i for i, t in enumerate(tokens)})
    width = described["width"]
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError
    return Field(name, ftype, width=width)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ArtifactError(
            f"{path}: expected a .npz of arrays; found a file numpy cannot read ({error})"
        ) from None
