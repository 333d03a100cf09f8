"""Reading RecBole's atomic files faster, into the same frames, and refusing what RecBole would
misread.

RecBole reads with pandas' Python engine and every token as its own Python string: the slowest
and largest part of preparing a big log. ``TypedReader`` reads with the C parser, token columns
as categories; the frame is the same (columns, values, order; a test compares RecBole's
processed frames and id maps), so everything after reading is RecBole's own.

Refused with the file and line, before anything is trained: bytes not in the file's encoding, a
header field of a type RecBole does not know, an interaction file without rows, and a missing
timestamp (RecBole fills it with the column's mean, which moves the interaction elsewhere in the
user's history).
"""

from __future__ import annotations

import locale

import numpy as np
import pandas as pd
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType

from ..core.keys import ConfigError

TYPES = ", ".join(t.value for t in FeatureType)


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


def _undecodable_line(filepath, encoding: str) -> tuple[int, str]:
    with open(filepath, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as error:
                return number, error.reason
    return 0, "unknown"


class TypedReader(Dataset):
    """``Dataset._load_feat`` with the C parser; RecBole's for sequence fields or a separator of
    more than one character. RecBole's all-inclusive interaction-count filter is skipped."""

    def _load_feat(self, filepath, source):
        """RecBole's ``_load_feat``, typed and checked (the module docstring)."""
        encoding = self.config["encoding"] or locale.getpreferredencoding(False)
        try:
            frame = self._read(filepath, source)
        except UnicodeDecodeError:
            line, reason = _undecodable_line(filepath, encoding)
            raise ConfigError(
                f"{filepath}, line {line}: bytes that are not {encoding} ({reason}); allowed: "
                f"a file in the encoding of the key 'encoding' ({encoding!r} now), e.g. saved "
                f"as UTF-8"
            ) from None
        if frame is not None and source == FeatureSource.INTERACTION:
            self._check_interactions(filepath, frame)
        return frame

    def _check_interactions(self, filepath, frame: pd.DataFrame) -> None:
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

    def _read(self, filepath, source):
        separator, encoding = self.config["field_separator"], self.config["encoding"]
        with open(filepath, encoding=encoding) as f:
            head = f.readline()[:-1]
        typed = [field_type.split(":") for field_type in head.split(separator)]
        for field_type, parts in zip(head.split(separator), typed, strict=True):
            if len(parts) != 2 or parts[1] not in TYPES.split(", "):
                raise ConfigError(
                    f"{filepath}, line 1: header field {field_type!r} is not name:type with a "
                    f"type RecBole knows; allowed types: {TYPES}"
                )
        if len(separator) != 1 or any(t[1].endswith("seq") for t in typed):
            return super()._load_feat(filepath, source)
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        columns, usecols, dtype = [], [], {}
        for field_type, (field, ftype) in zip(head.split(separator), typed, strict=True):
            ftype = FeatureType(ftype)
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
        if not columns:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None
        frame = pd.read_csv(
            filepath, delimiter=separator, usecols=usecols, dtype=dtype, encoding=encoding
        )
        frame.columns = columns
        return frame

    def _filter_by_inter_num(self):
        """RecBole's, skipped when both intervals admit any count (its default ``[0,inf)``):
        nothing would be removed, and RecBole counts every interaction in Python first."""
        everything = [("[", 0.0, float("inf"), ")")]
        intervals = (self.config["user_inter_num_interval"], self.config["item_inter_num_interval"])
        if all(self._parse_intervals_str(i) in (None, everything) for i in intervals):
            return
        super()._filter_by_inter_num()
