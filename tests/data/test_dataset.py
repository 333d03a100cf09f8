"""Preparation without per-prefix rows: every training target once, windows with context, and RecBole's own rows field by field."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import build, write_cycle_dataset

from recbole_sasrec import ConfigError
from recbole_sasrec.core.fields import SEGMENTS


def pairs(inter, uid, target) -> Counter:
    return Counter(zip(inter[uid].tolist(), target.tolist(), strict=True))


@pytest.mark.parametrize("max_len", [4, 10, 50])
def test_each_training_target_once_and_long_histories_in_full(tiny, max_len):
    cfg = dict(tiny, MAX_ITEM_LIST_LENGTH=max_len)
    config, net, train, valid, test = build("SASRec", "cycle", cfg)
    _, _, ref_train, ref_valid, ref_test = build(
        "SASRec", "cycle", dict(cfg, train_all_positions=False)
    )
    rows, ref = train._dataset.inter_feat, ref_train._dataset.inter_feat
    seq, lengths, targets = rows[net.ITEM_SEQ], rows[net.ITEM_SEQ_LEN], rows[net.TARGET_SEQ]
    assert seq.shape[1] == max_len and (lengths <= max_len).all()

    # The (user, target) multiset equals RecBole's per-prefix training samples: nothing lost
    # (histories longer than max_len included) and nothing repeated.
    is_target = targets > 0
    users = rows[net.USER_ID].unsqueeze(1).expand_as(targets)[is_target]
    ours = Counter(zip(users.tolist(), targets[is_target].tolist(), strict=True))
    assert ours == pairs(ref, net.USER_ID, ref[net.ITEM_ID])
    assert sum(ours.values()) == len(ref)
    if max_len == 4:
        assert len(rows) > len(set(rows[net.USER_ID].tolist()))  # long users span several windows

    # Inputs and targets line up: the item after position t is the target of position t.
    for b in range(len(seq)):
        n = int(lengths[b])
        assert (seq[b, n:] == 0).all() and (targets[b, n:] == 0).all()
        assert torch.equal(seq[b, 1:n], targets[b, : n - 1])

    # Validation and test samples are RecBole's, untouched.
    for ours_split, ref_split in ((valid, ref_valid), (test, ref_test)):
        a, b = ours_split._dataset.inter_feat, ref_split._dataset.inter_feat
        for field in (net.ITEM_SEQ, net.ITEM_SEQ_LEN, net.ITEM_ID, net.USER_ID):
            assert torch.equal(a[field], b[field])


def test_last_position_mode_is_recbole_per_prefix(tiny):
    """train_all_positions: False trains on RecBole's own per-prefix rows, field by field."""
    from recbole.data.dataset import SequentialDataset

    from recbole_sasrec import Config

    cfg = dict(tiny, train_all_positions=False)
    _, net, train, *_ = build("SASRec", "cycle", cfg)
    rows = train._dataset.inter_feat
    assert net.TARGET_SEQ not in rows
    theirs = SequentialDataset(Config("SASRec", "cycle", config_dict=cfg)).build()[0]
    assert_interactions_equal(rows, theirs.inter_feat, "train")


def write_featured_dataset(root, name="feat"):
    """Users with 1 to 30 interactions (ties in time included), a float rating, user features
    (float age, token gender) and item features (token_seq genres, float price)."""
    import numpy as np

    rng = np.random.default_rng(3)
    folder = root / name
    folder.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, 41):
        n = [1, 2, 3, 4][u - 1] if u <= 4 else int(rng.integers(5, 31))
        stamps = np.sort(rng.integers(0, 12, n))  # few distinct stamps: ties in time
        for stamp in stamps:
            lines.append(f"u{u}\ti{rng.integers(1, 25)}\t{rng.integers(1, 6)}\t{stamp}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    users = ["user_id:token\tage:float\tgender:token"]
    users += [f"u{u}\t{20 + u % 30}\t{'MF'[u % 2]}" for u in range(1, 41)]
    (folder / f"{name}.user").write_text("\n".join(users) + "\n")
    items = ["item_id:token\tgenre:token_seq\tprice:float"]
    items += [f"i{i}\tg{i % 3} g{i % 5}\t{i * 1.5}" for i in range(1, 25)]
    (folder / f"{name}.item").write_text("\n".join(items) + "\n")
    return root


def assert_interactions_equal(ours, theirs, where):
    assert set(ours.interaction) == set(theirs.interaction), where
    for field in theirs.interaction:
        a, b = ours[field], theirs[field]
        assert a.dtype == b.dtype and a.shape == b.shape, (where, field)
        assert torch.equal(a, b), (where, field)


SPLITS = [
    {"split": {"LS": "valid_and_test"}},
    {"split": {"LS": "test_only"}},
    {"split": {"LS": "valid_only"}},
    {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user"},
    {"split": {"RS": [0.6, 0.2, 0.2]}, "group_by": "none"},
    {"split": {"TS": [0.8, 0.1, 0.1]}},
]


def prepared(name: str, cfg: dict, all_positions: bool):
    """Our dataset (all positions) or RecBole's own SequentialDataset, built."""
    from recbole.data.dataset import SequentialDataset

    from recbole_sasrec import Config
    from recbole_sasrec.integration.quick_start import create_dataset

    config = Config("SASRec", name, config_dict=dict(cfg, train_all_positions=all_positions))
    dataset = create_dataset(config) if all_positions else SequentialDataset(config)
    return dataset, dataset.build()


@pytest.mark.parametrize("eval_args", SPLITS, ids=lambda e: str(e["split"]))
@pytest.mark.parametrize("max_len", [3, 50])
def test_valid_and_test_rows_are_recbole_s_field_by_field(tmp_path, eval_args, max_len):
    root = write_featured_dataset(tmp_path)
    cfg = {"data_path": str(root), "MAX_ITEM_LIST_LENGTH": max_len, "eval_args": eval_args}
    cfg["unused_col"] = {"inter": ["rating"]}  # dropped after the lists are built, as RecBole
    ours, (train, valid, test) = prepared("feat", cfg, True)
    ref, (ref_train, ref_valid, ref_test) = prepared("feat", cfg, False)
    for part, mine, theirs in (("valid", valid, ref_valid), ("test", test, ref_test)):
        assert_interactions_equal(mine.inter_feat, theirs.inter_feat, part)
        n = len(theirs)
        if n:  # with the user and item features the loaders attach (Dataset.join)
            rows = np.arange(n)
            assert_interactions_equal(mine[rows], theirs[rows], part + " joined")
    assert "rating_list" in valid.inter_feat and "rating" not in valid.inter_feat
    # the samplers' view of the data set: RecBole's samples, in RecBole's order
    for field in (ref.uid_field, ref.iid_field, ref.time_field):
        assert torch.equal(ours.inter_feat[field], ref.inter_feat[field])
    some = np.array([0, 7, len(ref) - 1])  # get_flops reads dataset[[1]]: built on demand
    assert_interactions_equal(ours[some], ref[some], "data set rows")
    assert ours.field2seqlen == ref.field2seqlen | {"next_item_id_list": max_len}
    # every training target of RecBole's split exactly once among our windows
    targets = train.inter_feat["next_item_id_list"]
    users = train.inter_feat["user_id"].unsqueeze(1).expand_as(targets)[targets > 0]
    ours_pairs = Counter(zip(users.tolist(), targets[targets > 0].tolist(), strict=True))
    assert ours_pairs == pairs(ref_train.inter_feat, "user_id", ref_train.inter_feat["item_id"])
    assert train.item_counter == ref_train.item_counter  # counted per target, not per window


@pytest.mark.parametrize("mode", ["valid_and_test", "test_only"])
def test_ml100k_valid_and_test_rows_are_recbole_s(mode):
    cfg = {"eval_args": {"split": {"LS": mode}}}
    ours, (_, valid, test) = prepared("ml-100k", cfg, True)
    ref, (_, ref_valid, ref_test) = prepared("ml-100k", cfg, False)
    assert_interactions_equal(valid.inter_feat, ref_valid.inter_feat, "valid")
    assert_interactions_equal(test.inter_feat, ref_test.inter_feat, "test")
    rows = np.arange(len(ref_test))
    assert_interactions_equal(test[rows], ref_test[rows], "test joined")  # ml-100k's features
    assert torch.equal(ours.inter_feat["item_id"], ref.inter_feat["item_id"])


@pytest.mark.parametrize(
    ("name", "extra"),
    [("ml-100k", {}), ("feat", {}), ("feat", {"user_inter_num_interval": "[5,inf)"})],
)
def test_typed_reading_gives_recbole_s_frames_and_ids(tmp_path, name, extra):
    """Our reader (pandas' C parser, tokens as categories) and RecBole's (its Python parser,
    tokens as strings) give the same processed frames and the same token -> id maps."""
    import pandas as pd
    from recbole.data.dataset import SequentialDataset

    from recbole_sasrec import Config
    from recbole_sasrec.integration.quick_start import create_dataset

    cfg = dict(extra)
    if name == "feat":
        cfg["data_path"] = str(write_featured_dataset(tmp_path))
    ours = create_dataset(Config("SASRec", name, config_dict=cfg))
    theirs = SequentialDataset(Config("SASRec", name, config_dict=cfg))
    for feat in ("inter_feat", "user_feat", "item_feat"):
        a, b = getattr(ours, feat), getattr(theirs, feat)
        assert (a is None) == (b is None)
        if a is not None:
            pd.testing.assert_frame_equal(a, b, check_dtype=True)
    for field, tokens in theirs.field2id_token.items():
        assert list(ours.field2id_token[field]) == list(tokens), field
    assert ours.field2token_id == theirs.field2token_id
    assert ours.field2type == theirs.field2type and ours.field2seqlen == theirs.field2seqlen


NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


def targets_of(rows) -> Counter:
    t = rows["next_item_id_list"]
    users = rows["user_id"].unsqueeze(1).expand_as(t)[t > 0]
    return Counter(zip(users.tolist(), t[t > 0].tolist(), strict=True))


@pytest.mark.parametrize("context", [3, 6, 9])
def test_windows_with_context_keep_every_target_once_and_show_it_its_history(
    long_histories, context
):
    _, _, plain, *_ = build("SASRec", "cycle", long_histories)
    _, _, overlap, *_ = build("SASRec", "cycle", dict(long_histories, window_context=context))
    a, b = plain._dataset.inter_feat, overlap._dataset.inter_feat
    assert targets_of(b) == targets_of(a)  # the same (user, target) multiset: each once
    assert len(b) > len(a)  # histories longer than L take more windows
    # each user's training sequence, rebuilt from the plain windows (most recent first, not
    # overlapping): their inputs oldest first, then the last target
    windows = {}
    for u, x, y, n in zip(
        a["user_id"].tolist(),
        a["item_id_list"].tolist(),
        a["next_item_id_list"].tolist(),
        a["item_length"].tolist(),
        strict=True,
    ):
        windows.setdefault(u, []).append((x[:n], y[n - 1]))
    sequence = {
        u: [i for x, _ in reversed(ws) for i in x] + [ws[0][1]] for u, ws in windows.items()
    }
    L = b["item_id_list"].size(1)
    for u, x, y, n in zip(
        b["user_id"].tolist(),
        b["item_id_list"].tolist(),
        b["next_item_id_list"].tolist(),
        b["item_length"].tolist(),
        strict=True,
    ):
        order = sequence[u]
        for t in range(n):
            if y[t] == 0:
                continue
            p = order.index(y[t])  # items before the target in the user's history
            assert x[: t + 1] == order[p - t - 1 : p]  # its inputs: the history right before it
            assert t + 1 >= min(context + 1, p)  # at least context + 1 of them, or all
        assert n <= L


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
def test_windows_with_context_train_as_their_targets_one_by_one(long_histories, name):
    cfg = dict(long_histories, **NO_DROPOUT, window_context=5, train_batching="random")
    _, net, train, *_ = build(name, "cycle", cfg)
    net.eval()
    batch = next(iter(train))
    seq, lengths, targets = batch["item_id_list"], batch["item_length"], batch["next_item_id_list"]
    losses = []
    for b in range(len(seq)):
        for t in range(int(lengths[b])):
            if targets[b, t] > 0:  # scored from its prefix within the window, context included
                h = net(seq[b : b + 1], torch.tensor([t + 1]))
                losses.append(
                    F.cross_entropy(h @ net.embedding.item.weight.T, targets[b, t : t + 1])
                )
    torch.testing.assert_close(net.calculate_loss(batch), torch.stack(losses).mean())


def test_window_context_must_be_below_the_window(tiny):
    with pytest.raises(ConfigError, match="window_context=10 must be an integer in 0..9"):
        build("SASRec", "cycle", dict(tiny, window_context=10))


def prefix_rows(rows, net) -> Counter:
    """(user, inputs, target) of every training sample; a window's target is its newest
    position's, the only one it scores."""
    seq, lengths = rows[net.ITEM_SEQ], rows[net.ITEM_SEQ_LEN]
    if net.TARGET_SEQ in rows:
        targets = rows[net.TARGET_SEQ]
        assert ((targets > 0).sum(1) == 1).all()  # one target a window ...
        last = targets[torch.arange(len(seq)), lengths - 1]
        assert (last > 0).all()  # ... at its newest position
    else:
        last = rows[net.ITEM_ID]
    return Counter(
        (u, tuple(s[:n]), t)
        for u, s, n, t in zip(
            rows[net.USER_ID].tolist(), seq.tolist(), lengths.tolist(), last.tolist(), strict=True
        )
    )


@pytest.mark.parametrize("max_len", [4, 10])
def test_prefix_windows_are_recbole_per_prefix_rows(long_histories, max_len):
    cfg = dict(long_histories, MAX_ITEM_LIST_LENGTH=max_len)
    _, net, train, *_ = build("SASRec", "cycle", dict(cfg, train_prefixes=True))
    _, _, ref, *_ = build("SASRec", "cycle", dict(cfg, train_all_positions=False))
    ours = prefix_rows(train._dataset.inter_feat, net)
    assert ours == prefix_rows(ref._dataset.inter_feat, net)
    assert sum(ours.values()) == len(ref._dataset.inter_feat)


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
@pytest.mark.parametrize("from_end", [False, True])
def test_prefix_windows_train_as_per_prefix_samples_packed_or_not(
    tmp_path, long_histories, name, from_end
):
    """Every window's loss is its newest position's, scored from the window alone; packed
    batches give every window the loss it has in a batch of its own."""
    # long_histories' shape with fewer users: every window is scored twice, one by one
    root = write_cycle_dataset(tmp_path / "fewer", n_users=12, n_items=500, min_len=3, max_len=45)
    cfg = dict(long_histories, data_path=str(root), **NO_DROPOUT)
    cfg.update(train_prefixes=True, positions_from_end=from_end)
    _, net, train, *_ = build(name, "cycle", dict(cfg, train_batching="random"))
    net.eval()
    total, count = torch.tensor(0.0), 0
    for batch in train:
        seq, lengths = batch["item_id_list"], batch["item_length"]
        last = batch["next_item_id_list"][torch.arange(len(seq)), lengths - 1]
        h = net(seq, lengths)  # [B, D] at each window's newest position
        expected = F.cross_entropy(h @ net.embedding.item.weight.T, last)
        torch.testing.assert_close(net.calculate_loss(batch), expected)
        total, count = total + expected * len(seq), count + len(seq)
    _, packed_net, packed, *_ = build(name, "cycle", cfg)
    packed_net.load_state_dict(net.state_dict())
    packed_net.eval()
    summed, targets, shared = torch.tensor(0.0), 0, False
    for batch in packed:
        shared |= bool((batch[SEGMENTS].amax(1) > 1).any())  # rows holding several windows
        n = int((batch["next_item_id_list"] > 0).sum())
        summed, targets = summed + packed_net.calculate_loss(batch) * n, targets + n
    assert shared and targets == count
    torch.testing.assert_close(summed / targets, total / count)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"train_all_positions": False}, "train_prefixes=True .*allowed: train_all_positions=True"),
        ({"window_context": 3}, "window_context=3 has no meaning; allowed: window_context=0"),
        ({"train_prefixes": 1}, "train_prefixes=1 must be True or False"),
    ],
)
def test_prefix_windows_refuse_what_they_cannot_mean(tiny, extra, message):
    with pytest.raises(ConfigError, match=message):
        build("SASRec", "cycle", {"train_prefixes": True, **tiny, **extra})
