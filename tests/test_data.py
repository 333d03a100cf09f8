"""All-position training rows: every training target exactly once, RecBole's eval splits intact."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from conftest import build


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
    _, net, train, *_ = build("SASRec", "cycle", dict(tiny, train_all_positions=False))
    rows = train._dataset.inter_feat
    assert net.TARGET_SEQ not in rows
    assert (rows[net.ITEM_SEQ_LEN] >= 1).all()
