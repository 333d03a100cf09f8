"""Training batches: random, length and packed, each window once an epoch, shared between processes, training as the windows one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import build, write_cycle_dataset
from recbole.data.dataloader import TrainDataLoader

from recbole_sasrec.data.batching import WindowTrainDataLoader
from recbole_sasrec.data.packing import BATCHINGS, ORDERED, WindowBatchSampler, steps_per_epoch

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


@pytest.fixture
def long_tailed(tmp_path, tiny):
    """The cycle data with users of 3 to 40 actions and L = 10: windows of every length."""
    root = write_cycle_dataset(tmp_path / "lt", n_users=80, min_len=3, max_len=40)
    return dict(tiny, data_path=str(root))


def epoch_rows(loader) -> list[list[int]]:
    """The window rows of each batch of one epoch (identified by their item lists)."""

    def keys(inter):
        return [
            (u, tuple(r))
            for u, r in zip(inter["user_id"].tolist(), inter["item_id_list"].tolist(), strict=True)
        ]

    index = {key: i for i, key in enumerate(keys(loader._dataset.inter_feat))}
    assert len(index) == len(loader._dataset)  # windows of one user never repeat
    return [[index[key] for key in keys(batch)] for batch in loader]


def test_random_batching_is_recbole_s_loader_batch_for_batch(long_tailed):
    config, _, train, *_ = build("SASRec", "cycle", dict(long_tailed, train_batching="random"))
    assert isinstance(train, WindowTrainDataLoader)
    recbole_loader = TrainDataLoader(config, train._dataset, train._sampler, shuffle=True)
    for _ in range(3):  # the generators advance the same way, epoch after epoch
        assert epoch_rows(train) == epoch_rows(recbole_loader)


def test_length_batching_keeps_every_window_once_seeded_and_within_budget(long_tailed):
    long_tailed = dict(long_tailed, train_batching="length")
    config, _, train, *_ = build("SASRec", "cycle", long_tailed)
    lengths = train._dataset.inter_feat["item_length"].numpy()
    budget = config["train_batch_size"] * config["MAX_ITEM_LIST_LENGTH"]
    epochs = [epoch_rows(train) for _ in range(2)]
    for batches in epochs:
        flat = sorted(r for b in batches for r in b)
        assert flat == list(range(len(lengths)))  # each window exactly once
        assert all(len(b) * lengths[b].max() <= budget for b in batches)
        assert len(batches) == len(train)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    _, _, again, *_ = build("SASRec", "cycle", long_tailed)
    assert epoch_rows(again) == epochs[0]  # the same seed, the same batches


def padding(batches, lengths) -> float:
    encoded = sum(len(b) * lengths[b].max() for b in batches)
    return 1 - sum(lengths[b].sum() for b in batches) / encoded


def test_length_batching_pads_far_less_on_a_long_tailed_log():
    rng = np.random.default_rng(0)
    lengths = np.minimum(50, np.maximum(1, np.round(rng.lognormal(np.log(6), 1.0, 20_000))))
    lengths = lengths.astype(np.int64)
    result = {}
    for batching in ("random", "length"):
        sampler = WindowBatchSampler(lengths, 128, 50, batching, torch.Generator().manual_seed(0))
        result[batching] = padding(sampler.epoch_batches(), lengths)
    assert result["random"] > 0.7  # nearly every random batch holds a window near L
    assert result["length"] < 0.05, result


@pytest.mark.parametrize("batching", [*BATCHINGS, ORDERED])
def test_a_process_cuts_its_windows_into_the_agreed_steps(batching):
    """One process of several (its own users' windows): exactly ``steps`` batches, none empty,
    every window once an epoch, about equal positions each (packed, length); and the agreed steps are about what
    one process would take over all windows."""
    rng = np.random.default_rng(1)
    everything = rng.integers(1, 51, 3001)
    single = WindowBatchSampler(everything, 64, 50, batching, torch.Generator().manual_seed(5))
    steps = steps_per_epoch(len(everything), int(everything.sum()), 64, 50, batching)
    assert abs(steps - len(single)) <= 1
    mine = everything[rng.random(len(everything)) < 0.4]  # a process's share
    sampler = WindowBatchSampler(mine, 64, 50, batching, torch.Generator().manual_seed(5), steps)
    for _ in range(2):  # two epochs
        batches = list(sampler)
        assert len(batches) == len(sampler) == steps and all(batches)
        assert sorted(sum(batches, [])) == list(range(len(mine)))
        if batching in ("packed", "length"):  # cut by positions; the others by windows
            positions = np.array([mine[b].sum() for b in batches])
            assert positions.max() <= mine.sum() / steps + 2 * 50
    with pytest.raises(ValueError, match="cannot fill"):
        WindowBatchSampler(mine[:3], 64, 50, batching, torch.Generator(), steps=4)


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
def test_a_length_batch_trains_as_its_windows_one_by_one(long_tailed, name):
    """Loss and gradients of a bucketed batch equal those of its windows encoded alone (each
    trimmed to its own length), averaged over their targets."""
    cfg = dict(long_tailed, **NO_DROPOUT, train_batching="length")
    _, net, train, *_ = build(name, "cycle", cfg)
    batch = next(iter(train))
    params = [p for p in net.parameters() if p.requires_grad]
    together = torch.autograd.grad(net.calculate_loss(batch), params, allow_unused=True)
    seq, lengths, targets = batch["item_id_list"], batch["item_length"], batch["next_item_id_list"]
    total, count = 0.0, 0
    for b in range(len(seq)):
        n = int(lengths[b])
        hidden = net.encode(seq[b : b + 1, :n])[0]  # [n, D]
        is_target = targets[b, :n] > 0
        logits = hidden[is_target] @ net.embedding.item.weight.T
        total = total + torch.nn.functional.cross_entropy(
            logits, targets[b, :n][is_target], reduction="sum"
        )
        count += int(is_target.sum())
    assert_same_gradients(together, torch.autograd.grad(total / count, params, allow_unused=True))


def test_packed_batching_keeps_every_window_once_and_packs_rows(long_tailed):
    config, _, train, *_ = build("SASRec", "cycle", dict(long_tailed, train_batching="packed"))
    windows = train._dataset.inter_feat
    lengths = windows["item_length"].numpy()
    L, size = config["MAX_ITEM_LIST_LENGTH"], config["train_batch_size"]
    batches = train.batches.epoch_batches()
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(windows)))
    # as many real positions as a random batch of train_batch_size windows on average, and
    # as many batches an epoch
    budget = size * lengths.mean()
    assert all(lengths[b].sum() <= budget + L for b in batches)
    assert abs(len(batches) - -(-len(windows) // size)) <= 1
    for batch in train:
        segments = batch["window_segment"]
        assert segments.size(1) == L
        for r in range(len(segments)):
            used = int(batch["item_length"][r])
            assert (segments[r, used:] == 0).all() and (segments[r, :used] > 0).all()
            # each window once, whole and in order: its inputs, its targets, its user
            for s in segments[r].unique().tolist():
                if s == 0:
                    continue
                where = (segments[r] == s).nonzero().view(-1)
                assert (where == torch.arange(int(where[0]), int(where[-1]) + 1)).all()


@pytest.mark.parametrize("from_end", [False, True])
@pytest.mark.parametrize("name", ["SASRec", "LightSANs", "LightSANs-prefix-sums"])
def test_a_packed_batch_trains_as_its_windows_one_by_one(long_tailed, name, from_end, monkeypatch):
    """Loss and gradients of a packed batch (no attention across the windows of a row,
    positions restarting in each, from either end) equal those of its windows encoded alone."""
    from recbole_sasrec.models import low_rank_attention

    model = name.split("-")[0]
    if name.endswith("sums"):  # packed rows take the quadratic form even where T is long
        monkeypatch.setattr(low_rank_attention, "DENSE_MAX_LENGTH", 0)
    cfg = dict(long_tailed, **NO_DROPOUT, train_batching="packed", train_batch_size=4)
    cfg["positions_from_end"] = from_end
    _, net, train, *_ = build(model, "cycle", cfg)
    batch = next(b for b in train if b["window_segment"].max() > 2)  # rows of several windows
    params = [p for p in net.parameters() if p.requires_grad]
    together = torch.autograd.grad(net.calculate_loss(batch), params, allow_unused=True)
    seq, targets, segments = (
        batch["item_id_list"],
        batch["next_item_id_list"],
        batch["window_segment"],
    )
    total, count = 0.0, 0
    for r in range(len(seq)):
        for s in segments[r].unique().tolist():
            if s == 0:
                continue
            where = (segments[r] == s).nonzero().view(-1)
            x, y = seq[r, where].unsqueeze(0), targets[r, where]
            hidden = net.encode(x)[0]  # the window alone, positions from its own ends
            is_target = y > 0
            logits = hidden[is_target] @ net.embedding.item.weight.T
            total = total + torch.nn.functional.cross_entropy(logits, y[is_target], reduction="sum")
            count += int(is_target.sum())
    assert_same_gradients(together, torch.autograd.grad(total / count, params, allow_unused=True))


def test_packed_rows_pad_little_on_a_long_tailed_log():
    from recbole_sasrec.data.packing import pack_rows

    rng = np.random.default_rng(0)
    lengths = np.minimum(50, np.maximum(1, np.round(rng.lognormal(np.log(6), 1.0, 20_000))))
    row, offset = pack_rows(lengths.astype(np.int64), 50)
    ends = np.zeros(row.max() + 1, dtype=np.int64)
    np.maximum.at(ends, row, offset + lengths.astype(np.int64))
    assert ends.max() <= 50  # rows never overflow
    assert 1 - lengths.sum() / (50 * (row.max() + 1)) < 0.08


def assert_same_gradients(together, alone) -> None:
    """A batch's gradients equal those of its windows one by one (None where unused)."""
    for a, b in zip(together, alone, strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batching", ["packed", "length"])
def test_batches_sized_by_positions_hold_that_many_whatever_the_window_count(long_tailed, batching):
    settings = dict(long_tailed, train_batching=batching, train_batch_positions=60)
    config, _, train, *_ = build("SASRec", "cycle", settings)
    lengths = train._dataset.inter_feat["item_length"].numpy()
    L = config["MAX_ITEM_LIST_LENGTH"]
    batches = train.batches.epoch_batches()
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    real = np.array([lengths[b].sum() for b in batches])
    if batching == "packed":  # cut where the running sum crosses a multiple of 60
        assert (real <= 60 + L).all() and real[:-1].mean() >= 60 - L
    else:  # rows x the longest window within 60
        assert all(len(b) * lengths[b].max() <= 60 for b in batches)
    # not train_batch_size windows' worth: a different number of steps than without the key
    _, _, default, *_ = build("SASRec", "cycle", dict(long_tailed, train_batching=batching))
    assert abs(len(batches) - lengths.sum() / 60) <= len(batches) * 0.5
    assert len(default.batches.epoch_batches()) != len(batches)


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"train_batching": "random", "train_batch_positions": 4096}, "train_batching='random'"),
        ({"train_batch_positions": 5}, "smaller than one full window"),
        ({"train_batch_positions": -1}, "integer >= 0"),
    ],
)
def test_train_batch_positions_refused_where_it_cannot_size_a_batch(long_tailed, settings, said):
    from recbole_sasrec import ConfigError

    with pytest.raises(ConfigError, match=said) as raised:
        build("SASRec", "cycle", dict(long_tailed, **settings))
    assert "train_batch_positions" in str(raised.value)
