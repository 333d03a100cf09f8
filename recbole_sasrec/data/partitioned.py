"""Reading a prepared log (``partitions.py``): each process its share, numbered as the whole log.

A data set folder holding ``partitions.json`` is read from its parts instead of the ``.inter``
file: process r of N reads partitions r, r + N, ...; its rows are put back in log order (so
RecBole numbers its users in the order the whole log gives them), and items are numbered from
the replicated vocabulary (so every process, and a single process reading every part, has the
ids RecBole gives reading the whole file). Everything after reading is RecBole's and ours, as
for an atomic file.

Refused before anything is read, each with the key: what needs the whole log at once (filters
by interaction counts or values, removing repeated pairs, a split that is not per user), and
fields other than the prepared ones. Filter the log before preparing it instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType

from ..core.keys import ConfigError
from ..core.processes import hand_back_freed_memory, world_and_rank
from .partitions import (
    ID_KEY,
    MANIFEST,
    ROW,
    VOCABULARY,
    PartitionError,
    part_file,
    partition_of,
    partitions_of_rank,
    read_manifest,
)

EVERYTHING = [("[", 0.0, float("inf"), ")")]  # an interaction-count interval that keeps all


class PartitionedReader(Dataset):
    """``Dataset`` reading a prepared log's share in place of its ``.inter`` file."""

    prepared: dict | None = None  # the manifest, when read from one

    def _load_inter_feat(self, token, dataset_path):
        manifest = read_manifest(dataset_path)
        if manifest is None:
            super()._load_inter_feat(token, dataset_path)
            return
        self._check_prepared(manifest, dataset_path)
        world, rank = world_and_rank(self.config)
        frame, self._vocabulary = read_partitions(dataset_path, manifest, world, rank)
        fields = manifest["fields"]
        for field, ftype in (
            (fields["user"], FeatureType.TOKEN),
            (fields["item"], FeatureType.TOKEN),
            (fields["time"], FeatureType.FLOAT),
        ):
            self.field2source[field] = FeatureSource.INTERACTION
            self.field2type[field] = ftype
            self.field2seqlen[field] = 1
            if ftype == FeatureType.FLOAT:
                self.field2bucketnum[field] = 2
        self.inter_feat, self.prepared = frame, manifest
        mine = partitions_of_rank(manifest["partitions"], world, rank)
        if manifest["partitions"] % world:
            self.logger.warning(
                f"{dataset_path}: {manifest['partitions']} partitions over {world} processes: "
                f"uneven shares (process r reads partitions r, r + {world}, ...), and users "
                f"train in other processes than with the log read whole; a world size "
                f"dividing {manifest['partitions']} avoids both"
            )
        self.logger.info(
            f"{dataset_path}: process {rank} of {world} reads {len(mine)} of "
            f"{manifest['partitions']} partitions ({len(frame)} of {manifest['interactions']} "
            f"interactions); {manifest['items']} items"
        )

    def _check_prepared(self, manifest: dict, folder) -> None:
        config, fields = self.config, manifest["fields"]
        where = f"{folder}/{MANIFEST}"
        for key, name in (
            ("USER_ID_FIELD", "user"),
            ("ITEM_ID_FIELD", "item"),
            ("TIME_FIELD", "time"),
        ):
            if config[key] != fields[name]:
                raise ConfigError(
                    f"{key}={config[key]!r}, but {where} holds the {name} as {fields[name]!r}; "
                    f"allowed: {key}={fields[name]!r}"
                )
        intervals = ("user_inter_num_interval", "item_inter_num_interval")
        for key in intervals:
            if self._parse_intervals_str(config[key]) not in (None, EVERYTHING):
                raise ConfigError(
                    f"{key}={config[key]!r} with a prepared log ({where}): counting "
                    f"interactions needs the whole log, which no process holds; allowed: "
                    f"'[0,inf)' (filter the log before prepare)"
                )
        for key in ("val_interval", "rm_dup_inter", "benchmark_filename"):
            if config[key] is not None:
                raise ConfigError(
                    f"{key}={config[key]!r} with a prepared log ({where}): it would change "
                    f"the rows or items of the whole log, which no process holds; allowed: "
                    f"None (apply it to the log before prepare)"
                )
        split = config["eval_args"]["split"]
        mode = next(iter(split)) if isinstance(split, dict) and split else None
        by_user = mode == "LS" or (mode == "RS" and config["eval_args"]["group_by"] == "user")
        if not by_user:
            raise ConfigError(
                f"eval_args split={split!r} with a prepared log ({where}): a split across "
                f"users needs the whole log; allowed: a split of each user's interactions, "
                f"{{'LS': 'valid_and_test'}} or {{'RS': [...]}} with group_by: user"
            )

    def _remap(self, remap_list):
        """RecBole's, with the replicated vocabulary ahead of the items this process read."""
        if self.prepared is not None and any(f == self.iid_field for _, f, _ in remap_list):
            known = pd.DataFrame({self.iid_field: np.array(self._vocabulary, dtype=object)})
            remap_list = [(known, self.iid_field, FeatureType.TOKEN), *remap_list]
        super()._remap(remap_list)

    def _normalize(self):
        """RecBole's, with the time scaled by the whole log's range (``normalize_all``, its
        default, scales float fields by their min and max: a process's own would differ from
        the whole log's, and with it the ties that float32 times make)."""
        time = self.config["TIME_FIELD"]
        raw = self.inter_feat[time].to_numpy(copy=True) if self.prepared is not None else None
        super()._normalize()
        if raw is None:
            return
        fields = self.config["normalize_field"] or (
            self.float_like_fields if self.config["normalize_all"] else []
        )
        if time in fields:
            low, high = self.prepared["time_range"]
            self.inter_feat[time] = (raw - low) / (high - low) if high != low else 1.0

    def user_owners(self, world: int) -> np.ndarray | None:
        """The process that trains and evaluates each user id [user_num] (``partition_of`` the
        user token, modulo ``world``: with a prepared log of P partitions and N dividing P,
        the process that reads the user); None when this process holds only its own users
        (a prepared log)."""
        if self.prepared is not None:
            return None
        tokens = self.field2id_token[self.uid_field]
        owners = np.zeros(len(tokens), dtype=np.int64)
        owners[1:] = partition_of(tokens[1:], world)
        return owners


def read_partitions(folder, manifest: dict, world: int, rank: int) -> tuple[pd.DataFrame, list]:
    """The interactions of process ``rank`` of ``world`` (its partitions, rows in log order),
    as ``TypedReader`` reads an atomic file: tokens as categories, the time as float64; and the
    item vocabulary (tokens in id order). ``PartitionError`` for a world larger than the
    partitions, a missing part, a part of another preparation or with other rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    folder = Path(folder)
    count = manifest["partitions"]
    if world > count:
        raise PartitionError(
            f"{folder / MANIFEST}: {count} partitions cannot give each of {world} processes a "
            f"share; allowed: at most {count} processes, or prepare again with --partitions "
            f">= {world}"
        )
    fields = manifest["fields"]
    paths = []
    for p in partitions_of_rank(count, world, rank):  # every part checked before any is read
        path = folder / part_file(p)
        if not path.is_file():
            raise PartitionError(
                f"{path} is missing (partition {p} of {count}, read by process {rank}); "
                f"allowed: every part the manifest lists, as prepare wrote them"
            )
        metadata = pq.read_metadata(path)
        theirs = (metadata.metadata or {}).get(ID_KEY, b"").decode()
        expected = manifest["files"][p]["rows"]
        if theirs != manifest["prepared_id"] or metadata.num_rows != expected:
            why = (
                f"it holds {metadata.num_rows} rows, the manifest says {expected}"
                if theirs == manifest["prepared_id"]
                else f"it comes from another preparation (id {theirs or 'none'}, the "
                f"manifest's {manifest['prepared_id']}): its items may be numbered otherwise"
            )
            raise PartitionError(f"{path}: {why}; allowed: the parts written with this {MANIFEST}")
        paths.append(str(path))
    # Arrow's own pool (mimalloc) keeps what it frees for Arrow alone, so the reading's
    # temporaries would stay resident beside RecBole's work: read with the system allocator
    # and hand its freed pages back at the end (docs/results.md, the memory per process).
    # Parquet's decoding still draws on Arrow's pool: one row group read ahead at a time
    # (not 16 of 4 files) bounds what that pool holds, and what it keeps is released after.
    pool = pa.system_memory_pool()
    tokens = ds.ParquetFileFormat(dictionary_columns=[fields["user"], fields["item"]])
    columns = [fields["user"], fields["item"], fields["time"], ROW]
    table = ds.dataset(paths, format=tokens).to_table(
        columns=columns, memory_pool=pool, batch_readahead=1, fragment_readahead=1
    )
    order = pc.sort_indices(table.column(ROW), memory_pool=pool)  # the log's order (distinct)
    table = pc.take(table.drop_columns([ROW]), order, memory_pool=pool)
    del order
    frame = table.to_pandas(memory_pool=pool)  # tokens become categories
    del table
    hand_back_freed_memory()
    vocabulary = pq.read_table(folder / VOCABULARY, columns=["token"])
    vocabulary = vocabulary.column("token").to_pylist()
    pa.default_memory_pool().release_unused()
    return frame, vocabulary
