"""Reading RecBole's atomic files faster, into the same frames, and refusing what RecBole would
misread.

RecBole reads with pandas' Python engine and every token as its own Python string: the slowest
and largest part of preparing a big log. ``TypedReader`` reads with the C parser, token columns
as categories; the frame is the same (columns, values, order; a test compares RecBole's
processed frames and id maps), so everything after reading is RecBole's own.

A UTF-8 byte-order mark at the start of a file is skipped (editors on Windows write one).

Refused with the file and line, before anything is trained: bytes not in the file's encoding, a
header field of a type RecBole does not know, a user or item id field of a type other than
``token`` (RecBole would remap float ids through a bucketing meant for features), a value of a
``float`` field that is not a number (a date string in ``timestamp:float``), an interaction
file without rows or without the user, item or time field (``USER_ID_FIELD``,
``ITEM_ID_FIELD``, ``TIME_FIELD``), and a missing timestamp (RecBole fills it with the column's
mean, which moves the interaction elsewhere in the user's history).

Rows that repeat an earlier row (same user, item and timestamp: a log concatenated twice, a
join that multiplied rows) are trained on as they are, each as an interaction of its own, with
a warning that counts them and names the file: a user may mean them (one item bought twice in
one second), and RecBole's ``rm_dup_inter`` drops repeated user-item pairs when asked (then no
warning).
"""

from __future__ import annotations

import contextlib
import locale

import numpy as np
import pandas as pd
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType

from ..core.files import first_undecodable_line
from ..core.keys import ConfigError

TYPES = ", ".join(t.value for t in FeatureType)
BOM = "\ufeff"
ID_KEYS = ("USER_ID_FIELD", "ITEM_ID_FIELD")  # ids RecBole remaps: tokens only
REQUIRED_KEYS = (*ID_KEYS, "TIME_FIELD")  # what a sequential data set sorts and splits by
# pandas' default missing values: read as NaN, not an error
MISSING = frozenset(
    "#N/A,#N/A N/A,#NA,-1.#IND,-1.#QNAN,-NaN,-nan,1.#IND,1.#QNAN,<NA>,N/A,NA,NULL,NaN,None,"
    "n/a,nan,null".split(",")
)


def _line_of(filepath, row: int) -> int:
    """The file line of data row ``row`` (0-based, after the header; blank lines skipped)."""
    with open(filepath, "rb") as f:
        next(f, None)
        seen = -1
        for number, line in enumerate(f, start=2):
            seen += bool(line.strip())
            if seen == row:
                return number
    return row + 2


def _header(filepath, config) -> tuple[bool, list[tuple[str, str | None]]]:
    """``(starts with a byte-order mark, [(field, type), ...])`` of an atomic file's first line;
    a header field that is not ``name:type`` is ``(the text, None)``."""
    with open(filepath, encoding=config["encoding"]) as f:
        head = f.readline().rstrip("\r\n")
    fields = []
    for field_type in head.removeprefix(BOM).split(config["field_separator"]):
        parts = field_type.split(":")
        fields.append((parts[0], parts[1]) if len(parts) == 2 else (field_type, None))
    return head.startswith(BOM), fields


def _raise_not_a_number(filepath, config, floats: list[str]) -> None:
    """``ConfigError`` naming the first value of a ``float`` field in ``floats`` that is not a
    number (pandas says which value, not where); returns when there is none."""
    separator = config["field_separator"]
    _, typed = _header(filepath, config)
    columns = {i: field for i, (field, _) in enumerate(typed) if field in floats}
    with open(filepath, encoding=config["encoding"], newline="") as f:
        next(f, None)
        for number, line in enumerate(f, start=2):
            values = line.rstrip("\r\n").split(separator)
            for i, field in columns.items():
                text = values[i].strip() if i < len(values) else ""
                if text == "" or text in MISSING:
                    continue  # missing: refused later, with the user
                try:
                    float(text)
                except ValueError:
                    raise ConfigError(
                        f"{filepath}, line {number}: {text!r} in field {field!r} "
                        f"({field}:float) is not a number; allowed: a number in every row (a "
                        f"time as seconds since 1970, e.g. 1700000000)"
                    ) from None


class TypedReader(Dataset):
    """``Dataset._load_feat`` with the C parser; RecBole's for sequence fields or a separator of
    more than one character. RecBole's all-inclusive interaction-count filter is skipped."""

    def _load_feat(self, filepath, source):
        """RecBole's ``_load_feat``, typed and checked (the module docstring)."""
        encoding = self.config["encoding"] or locale.getpreferredencoding(False)
        try:
            frame = self._read(filepath, source)
        except UnicodeDecodeError:
            line, reason = first_undecodable_line(filepath, encoding)
            raise ConfigError(
                f"{filepath}, line {line}: bytes that are not {encoding} ({reason}); allowed: "
                f"a file in the encoding of the key 'encoding' ({encoding!r} now), e.g. saved "
                f"as UTF-8"
            ) from None
        if frame is not None and source == FeatureSource.INTERACTION:
            self._check_interactions(filepath, frame)
        return frame

    def _check_interactions(self, filepath, frame: pd.DataFrame) -> None:
        header = [field for field, _ in _header(filepath, self.config)[1]]
        for key in REQUIRED_KEYS:
            field = self.config[key]
            if field is None:
                raise ConfigError(
                    f"{key}=None: a sequential data set needs its user, item and time fields; "
                    f"allowed: the name of a field of {filepath} ({', '.join(header)})"
                )
            if field in frame:
                continue
            why = (
                "it is in the header but not loaded (load_col/unload_col)"
                if field in header
                else "the header has no such field"
            )
            raise ConfigError(
                f"{filepath}: no field {field!r}, which {key} names ({why}); the file's fields: "
                f"{', '.join(header)}; allowed: a column {field}:"
                f"{'token' if key in ID_KEYS else 'float'} in the file, or {key} set to the name "
                f"the file uses (and load_col loading it)"
            )
        if len(frame) == 0:
            raise ConfigError(
                f"{filepath} has a header and no interactions; allowed: at least one row of "
                f"its fields ({', '.join(frame.columns)})"
            )
        time = self.config["TIME_FIELD"]
        if time in frame and frame[time].isna().any():
            row = int(np.flatnonzero(frame[time].isna().to_numpy())[0])
            user = self.config["USER_ID_FIELD"]
            who = f"user {frame[user].iloc[row]!r}" if user in frame else f"row {row + 1}"
            raise ConfigError(
                f"{filepath}, line {_line_of(filepath, row)}: {who} has no timestamp in field "
                f"{time!r} (empty or nan); RecBole would fill it with the column's mean and move "
                f"the interaction elsewhere in the user's history; allowed: a number in every row"
            )
        if self.config["rm_dup_inter"] is None:
            fields = [self.config[key] for key in REQUIRED_KEYS]
            repeated = int(frame.duplicated(subset=fields).sum())
            if repeated:
                self.logger.warning(
                    f"{filepath}: {repeated} of {len(frame)} rows repeat an earlier row (same "
                    f"{', '.join(fields)}); each is trained on as an interaction of its own; "
                    f"rm_dup_inter: first (or last) drops repeated user-item pairs"
                )

    def _read(self, filepath, source):
        separator = self.config["field_separator"]
        bom, typed = _header(filepath, self.config)
        for field, ftype in typed:
            if ftype not in TYPES.split(", "):
                text = field if ftype is None else f"{field}:{ftype}"
                raise ConfigError(
                    f"{filepath}, line 1: header field {text!r} is not name:type with a type "
                    f"RecBole knows; allowed types: {TYPES}"
                )
            key = next((k for k in ID_KEYS if self.config[k] == field), None)
            if key is not None and ftype != FeatureType.TOKEN.value:
                raise ConfigError(
                    f"{filepath}, line 1: field {field!r} ({key}) is of type {ftype!r}; ids are "
                    f"names, not quantities; allowed: {field}:token"
                )
        if len(separator) != 1 or any(t.endswith("seq") for _, t in typed):
            with self._encoding("utf-8-sig" if bom else None):
                return super()._load_feat(filepath, source)
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        columns, usecols, dtype, floats = [], [], {}, []
        for field, ftype in typed:
            ftype, field_type = FeatureType(ftype), f"{field}:{ftype}"
            if (load_col is not None and field not in load_col) or (
                unload_col is not None and field in unload_col
            ):
                continue
            if isinstance(source, FeatureSource) or source != "link":
                self.field2source[field] = source
                self.field2type[field] = ftype
                self.field2seqlen[field] = 1
                if ftype == FeatureType.FLOAT:
                    self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(field_type)
            dtype[field_type] = np.float64 if ftype == FeatureType.FLOAT else "category"
            floats += [field] if ftype == FeatureType.FLOAT else []
        if not columns:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None
        try:
            # pandas skips the byte-order mark itself
            frame = pd.read_csv(
                filepath,
                delimiter=separator,
                usecols=usecols,
                dtype=dtype,
                encoding=self.config["encoding"],
            )
        except ValueError as error:
            if isinstance(error, UnicodeDecodeError):
                raise
            _raise_not_a_number(filepath, self.config, floats)
            raise error
        frame.columns = columns
        return frame

    @contextlib.contextmanager
    def _encoding(self, encoding: str | None):
        """RecBole's reader with ``encoding`` in place of the key's, for one file."""
        if encoding is None:
            yield
            return
        given = self.config["encoding"]
        self.config["encoding"] = encoding
        try:
            yield
        finally:
            self.config["encoding"] = given

    def _filter_by_inter_num(self):
        """RecBole's, skipped when both intervals admit any count (its default ``[0,inf)``):
        nothing would be removed, and RecBole counts every interaction in Python first."""
        everything = [("[", 0.0, float("inf"), ")")]
        intervals = (self.config["user_inter_num_interval"], self.config["item_inter_num_interval"])
        if all(self._parse_intervals_str(i) in (None, everything) for i in intervals):
            return
        super()._filter_by_inter_num()
