"""A log prepared in partitions by user (``prepare``): read whole it is the log, field by field
(ids, RecBole's split, the windows); each process reads its users only, numbered as the whole
log; bad input and parts that do not belong are refused, naming the file."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import FEATURES, TINY, write_cycle_dataset, write_items

from recbole_sasrec import Config, ConfigError
from recbole_sasrec.data.partitions import PartitionError, partition_of, prepare
from recbole_sasrec.integration.quick_start import create_dataset


def shuffled_log(root: Path) -> Path:
    """The tiny cycle log with its rows in a random order (users interleaved): items and users
    are numbered by first appearance, which a process must not change."""
    write_cycle_dataset(root)
    write_items(root)
    path = root / "cycle" / "cycle.inter"
    head, *rows = path.read_text().splitlines()
    random.Random(0).shuffle(rows)
    path.write_text("\n".join([head, *rows]) + "\n")
    return root


def quiet(line: str) -> None:
    pass


@pytest.fixture
def logs(tmp_path):
    """(the log's data_path, the prepared data_path: 6 partitions, read in chunks of 37 rows)."""
    root = shuffled_log(tmp_path / "data")
    prepare(root, "cycle", tmp_path / "prepared", 6, chunk_rows=37, report=quiet)
    return root, tmp_path / "prepared"


def load(data_path, world=1, rank=0, **keys):
    config = Config("SASRec", "cycle", config_dict=dict(TINY, data_path=str(data_path), **keys))
    if world > 1:  # as a process of several sees its configuration
        config.final_config_dict.update(single_spec=False, world_size=world, local_rank=rank)
        config.final_config_dict["offset"] = 0
    dataset = create_dataset(config)
    return dataset, dataset.build()


def test_the_layout_is_the_documented_one(logs):
    root, prepared = logs
    folder = prepared / "cycle"
    manifest = json.loads((folder / "partitions.json").read_text())
    rows = [line.split("\t") for line in (root / "cycle" / "cycle.inter").read_text().split("\n")]
    rows = [r for r in rows[1:] if len(r) == 3]
    users = list(dict.fromkeys(r[0] for r in rows))
    items = list(dict.fromkeys(r[1] for r in rows))  # first appearance
    assert manifest["interactions"] == len(rows) and manifest["users"] == len(users)
    vocabulary = pq.read_table(folder / "items.parquet").to_pydict()
    assert vocabulary["token"] == items
    assert vocabulary["count"] == [sum(r[1] == i for r in rows) for i in items]
    # a user's partition: md5 of the token, first 15 hex digits, modulo the partitions
    expected = {u: int(hashlib.md5(u.encode()).hexdigest()[:15], 16) % 6 for u in users}
    assert dict(zip(users, partition_of(users, 6).tolist(), strict=True)) == expected
    for p, entry in enumerate(manifest["files"]):
        part = pq.read_table(folder / entry["file"]).to_pydict()
        assert entry["rows"] == len(part["row"]) and part["row"] == sorted(part["row"])
        assert {expected[u] for u in part["user_id"]} <= {p}
        assert all(
            rows[r][:2] == [u, i]
            for r, u, i in zip(*(part[k] for k in ("row", "user_id", "item_id")), strict=True)
        )
    assert sum(e["rows"] for e in manifest["files"]) == len(rows)
    assert (folder / "cycle.item").read_bytes() == (root / "cycle" / "cycle.item").read_bytes()


def test_read_whole_it_is_the_log_field_by_field(logs):
    root, prepared = logs
    keys = {"selected_features": FEATURES}
    whole, parts = load(root, **keys)
    again, prepared_parts = load(prepared / "", **keys)
    assert again.prepared is not None and whole.prepared is None
    for field in ("user_id", "item_id", "cats", "brand"):
        assert list(whole.field2id_token[field]) == list(again.field2id_token[field])
    for a, b in zip(parts, prepared_parts, strict=True):  # train windows, valid, test rows
        assert set(a.inter_feat.interaction) == set(b.inter_feat.interaction)
        for field in a.inter_feat.interaction:
            assert a.inter_feat[field].equal(b.inter_feat[field]), field
    for field in ("cats", "price"):
        assert whole.item_feat[field].equal(again.item_feat[field])


@pytest.mark.parametrize("world", [2, 3])
def test_each_process_reads_its_users_numbered_as_the_whole_log(logs, world):
    root, prepared = logs
    whole, parts = load(root, normalize_all=True)  # times scaled by the whole log's range
    owners = whole.user_owners(world)  # the process of each user: partition mod world
    tokens = whole.field2id_token["user_id"]
    seen = []
    for rank in range(world):
        mine, share = load(prepared, world, rank, normalize_all=True)
        assert list(mine.field2id_token["item_id"]) == list(whole.field2id_token["item_id"])
        users = list(mine.field2id_token["user_id"][1:])
        assert users == [
            t for t in tokens[1:] if owners[whole.field2token_id["user_id"][t]] == rank
        ]
        seen += users
        for a, b in zip(parts, share, strict=True):
            rows = np.flatnonzero(owners[a.inter_feat["user_id"].numpy()] == rank)
            theirs = mine.field2id_token["user_id"][b.inter_feat["user_id"].numpy()]
            assert list(tokens[a.inter_feat["user_id"].numpy()[rows]]) == list(theirs)
            for field in ("item_id", "item_id_list", "item_length", "timestamp", "timestamp_list"):
                if field not in a.inter_feat.interaction:  # windows keep no times
                    continue
                assert a.inter_feat[field][rows].equal(b.inter_feat[field]), field
    assert sorted(seen) == sorted(tokens[1:])  # every user once


def test_parts_that_do_not_belong_are_refused(logs, tmp_path):
    root, prepared = logs
    folder = prepared / "cycle"
    with pytest.raises(PartitionError, match="6 partitions cannot give each of 7 processes"):
        load(prepared, 7, 0)
    # a part of another preparation of the same log: its items may be numbered otherwise
    prepare(root, "cycle", tmp_path / "other", 6, report=quiet)
    (folder / "part-00004.parquet").write_bytes(
        (tmp_path / "other" / "cycle" / "part-00004.parquet").read_bytes()
    )
    with pytest.raises(PartitionError, match=r"part-00004.parquet: it comes from another prep"):
        load(prepared, 2, 0)
    load(prepared, 2, 1)  # process 1 reads 1, 3, 5: its parts are its own
    (folder / "part-00003.parquet").unlink()
    with pytest.raises(
        PartitionError,
        match=r"part-00003.parquet is missing \(partition 3 of 6, read by process 1\)",
    ):
        load(prepared, 2, 1)


@pytest.mark.parametrize(
    "key, value",
    [
        ("user_inter_num_interval", "[5,inf)"),
        ("item_inter_num_interval", "[2,inf)"),
        ("rm_dup_inter", "first"),
        (
            "eval_args",
            {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": None, "mode": "full"},
        ),
    ],
)
def test_what_needs_the_whole_log_is_refused_naming_the_key(logs, key, value):
    _, prepared = logs
    name = "eval_args split" if key == "eval_args" else key
    with pytest.raises(ConfigError, match=f"{name}=.* with a prepared log"):
        load(prepared, **{key: value})


def test_prepare_refuses_bad_input_and_writes_nothing(tmp_path):
    root = write_cycle_dataset(tmp_path / "data")
    path = root / "cycle" / "cycle.inter"
    head, *rows = path.read_text().splitlines()
    out = tmp_path / "out"
    path.write_text("\n".join([head, *rows[:5], "\ti3\t7", *rows[5:]]) + "\n")
    with pytest.raises(PartitionError, match=r"cycle.inter, line 7: no value in field 'user_id'"):
        prepare(root, "cycle", out, 2, chunk_rows=4, report=quiet)
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    path.write_text("\n".join([head, *rows[:9], "u1\ti3\tyesterday", *rows[9:]]) + "\n")
    with pytest.raises(PartitionError, match=r"line 11: no value that is a number in field 'ti"):
        prepare(root, "cycle", out, 2, chunk_rows=4, report=quiet)
    for row in ("u1\ti3\t", "u1\ti3"):  # an empty time, a row without one
        path.write_text("\n".join([head, *rows[:2], row, *rows[2:]]) + "\n")
        with pytest.raises(PartitionError, match=r"line 4: no value that is a number in field"):
            prepare(root, "cycle", out, 2, chunk_rows=4, report=quiet)
    path.write_text("\n".join(["user_id:token\titem_id:token\tstamp:float", *rows]) + "\n")
    with pytest.raises(PartitionError, match=r"line 1: no field timestamp:float"):
        prepare(root, "cycle", out, 2, report=quiet)
    path.write_text("\n".join([head, *rows]) + "\n")
    with pytest.raises(PartitionError, match="partitions=0; allowed: an integer >= 1"):
        prepare(root, "cycle", out, 0, report=quiet)
    prepare(root, "cycle", out, 2, report=quiet)
    with pytest.raises(PartitionError, match="exists; allowed: another --out, or --replace"):
        prepare(root, "cycle", out, 2, report=quiet)
    prepare(root, "cycle", out, 3, replace=True, report=quiet)
    assert json.loads((out / "cycle" / "partitions.json").read_text())["partitions"] == 3


def test_the_command_line_prepares_and_says_how_to_train(tmp_path, capsys):
    from recbole_sasrec.__main__ import main

    root = write_cycle_dataset(tmp_path / "data")
    out = tmp_path / "prepared"
    args = ["prepare", "--data-path", str(root), "--dataset", "cycle", "--out", str(out)]
    assert main([*args, "--partitions", "2"]) == 0
    printed = capsys.readouterr().out
    assert "in 2 partitions" in printed and f"'data_path': '{out}'" in printed
    assert main([*args, "--partitions", "2"]) == 2  # exists: refused
    assert "exists; allowed: another --out, or --replace" in capsys.readouterr().err
