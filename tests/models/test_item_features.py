"""Item attributes on both sides of the models: input and scored vectors depend on them, every
loss trains with them, an item's attributes alone give it a vector, and bad selections fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FEATURES, N_ITEMS, build, train_steps, write_items

from recbole_sasrec import ConfigError, run_recbole
from recbole_sasrec.models.item_features import ItemVectors

MODELS = ["SASRec", "LightSANs"]
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}


@pytest.fixture
def featured(tiny):
    write_items(Path(tiny["data_path"]))
    return dict(tiny, **NO_DROPOUT, selected_features=FEATURES)


def seq_batch(net, items: list[list[int]]):
    lengths = torch.tensor([len(s) for s in items])
    seq = torch.zeros(len(items), int(lengths.max()), dtype=torch.long)
    for b, s in enumerate(items):
        seq[b, : len(s)] = torch.tensor(s)
    return {net.ITEM_SEQ: seq, net.ITEM_SEQ_LEN: lengths}


@pytest.mark.parametrize("name", MODELS)
def test_attributes_change_the_scored_and_the_input_vectors(featured, name):
    _, net, *_ = build(name, "cycle", featured)
    net.eval()
    with torch.no_grad():
        net.embedding.item.weight[2] = net.embedding.item.weight[1]  # same id rows
        table = net.item_vectors()
        attributes = net.embedding.features()
        # the scored vector is the id row plus the attributes' vectors
        torch.testing.assert_close(table, net.embedding.item.weight + attributes)
        assert not torch.equal(table[1], table[2])  # same id row, other attributes
        inter = seq_batch(net, [[3, 4, 1]])
        before = net.full_sort_predict(inter)
        net.embedding.features.tables["brand"].weight.mul_(3.0)  # only the attributes change
        after_input = net.forward(inter[net.ITEM_SEQ], inter[net.ITEM_SEQ_LEN])
        net.embedding.features.tables["brand"].weight.div_(3.0)
        assert not torch.allclose(
            after_input, net.forward(inter[net.ITEM_SEQ], inter[net.ITEM_SEQ_LEN])
        )
        assert before.shape == (1, net.n_items)
        torch.testing.assert_close(table[0], torch.zeros_like(table[0]))  # the pad scores 0


def test_an_items_attributes_alone_give_it_a_vector(featured):
    _, net, *_ = build("SASRec", "cycle", featured)
    with torch.no_grad():
        net.embedding.item.weight.zero_()  # no id knowledge at all
        table = net.item_vectors()
    features = net.embedding.features
    torch.testing.assert_close(table, features())
    cats = features.values("cats")
    same = [i for i in range(1, net.n_items) if torch.equal(cats[i], cats[1])]
    # every field enters: items sharing categories still differ by brand, price, embedding
    assert table[1:].abs().sum(-1).gt(0).sum() >= net.n_items - 2  # all but the empty item 5
    assert len(same) >= 1 and len({tuple(table[i].tolist()) for i in same}) == len(same)


def test_field_vectors_are_their_tokens_mean_and_standardised_floats(featured):
    _, net, *_ = build("SASRec", "cycle", featured)
    features = net.embedding.features
    cats, brand = features.values("cats"), features.values("brand")
    i = 7
    real = cats[i][cats[i] > 0]
    expected = features.tables["cats"].weight[real].mean(0)
    expected = expected + features.tables["brand"].weight[brand[i, 0]]
    price = features.values("price")
    expected = expected + price[i] @ features.tables["price"].weight.T
    expected = expected + features.values("embedding")[i] @ features.tables["embedding"].weight.T
    torch.testing.assert_close(features(torch.tensor([i]))[0], expected)
    # floats standardised over the real items; the pad item's are 0
    assert price[0].item() == 0.0
    torch.testing.assert_close(price[1:].mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(price[1:].std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0)


def raw_values(features, ids: list[int], tokens) -> dict[str, torch.Tensor]:
    """The values of items ``ids`` as their .item file gives them (``write_items``: item "ik"
    has price 1.5 k and embedding [k % 2, k / 7]): token ids, and the floats unstandardised."""
    k = [int(tokens[i][1:]) for i in ids]
    return {
        "cats": features.values("cats")[ids],
        "brand": features.values("brand")[ids],
        "price": torch.tensor([[1.5 * n] for n in k]),
        "embedding": torch.tensor([[n % 2, float(f"{n / 7:.3f}")] for n in k]),
    }


def test_new_items_vectors_from_raw_values_are_the_attribute_part_forward_gives(featured):
    _, net, train, *_ = build("SASRec", "cycle", featured)
    features = net.embedding.features
    tokens = train._dataset.field2id_token["item_id"]
    ids = [int(np.flatnonzero(tokens == t)[0]) for t in ("i7", "i8")]
    with torch.no_grad():
        torch.testing.assert_close(
            features.vectors(raw_values(features, ids, tokens)), features(torch.tensor(ids))
        )
        # the floats are standardised with the training mean and std, carried as buffers
        assert {"price_mean", "price_std", "embedding_mean", "embedding_std"} <= {
            name.split(".")[-1] for name in net.state_dict()
        }
        missing = raw_values(features, ids[:1], tokens)
        missing["price"] = torch.tensor([[torch.nan]])  # a missing float: the training mean
        at_mean = dict(missing, price=features.price_mean[None])
        torch.testing.assert_close(features.vectors(missing), features.vectors(at_mean))
        no_tokens = dict(missing, cats=torch.zeros(1, 2, dtype=torch.long))  # pads only
        expected = features.vectors(missing) - features.tables["cats"](missing["cats"])
        torch.testing.assert_close(features.vectors(no_tokens), expected)


@pytest.mark.parametrize("name", MODELS)
def test_predict_agrees_with_full_sort_predict_with_attributes(featured, name):
    _, net, *_ = build(name, "cycle", featured)
    net.eval()
    inter = seq_batch(net, [[1, 2, 3], [4], [7, 8, 9, 10, 11]])
    with torch.no_grad():
        full = net.full_sort_predict(inter)
        inter[net.ITEM_ID] = torch.tensor([5, 9, 12])
        torch.testing.assert_close(net.predict(inter), full[torch.arange(3), inter[net.ITEM_ID]])
        candidates = torch.tensor([[1, 2], [3, 4], [5, 6]])
        torch.testing.assert_close(
            net.score_candidates(inter, candidates), full.gather(1, candidates)
        )


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss_type", ["CE", "BPR", "BCE", "SSM", "gBCE"])
def test_every_loss_learns_with_attributes(featured, name, loss_type):
    cfg = dict(featured, loss_type=loss_type, loss_negatives=8)
    _, net, train, *_ = build(name, "cycle", cfg)
    batch = next(iter(train))
    losses = train_steps(net, batch)
    assert losses[-1] < 0.7 * losses[0], losses
    grads = [p.grad for p in net.embedding.features.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)  # every field was trained


def test_item_id_dropout_leaves_out_id_rows_on_both_sides_of_a_step(featured):
    _, net, train, *_ = build("SASRec", "cycle", dict(featured, item_id_dropout=0.5))
    torch.manual_seed(0)
    items = net.embedding.vectors()
    assert isinstance(items, ItemVectors) and items.keep is not None
    dropped = torch.nonzero(items.keep[1:] == 0).squeeze(1) + 1
    assert 0 < len(dropped) < net.n_items - 1
    i = int(dropped[0])
    torch.testing.assert_close(items.weight[i], net.embedding.features()[i])
    torch.testing.assert_close(items.rows(torch.tensor([i]))[0], items.weight[i])
    net.eval()  # never at evaluation
    assert net.embedding.vectors().keep is None


def test_sparse_item_updates_keep_the_id_gradient_sparse_with_attributes(featured):
    cfg = dict(featured, loss_type="gBCE", loss_negatives=4, sparse_item_updates=True)
    _, net, train, *_ = build("SASRec", "cycle", cfg)
    net.calculate_loss(next(iter(train))).backward()
    assert net.embedding.item.weight.grad.is_sparse
    assert not net.embedding.features.tables["cats"].weight.grad.is_sparse


def test_autocast_bfloat16_trains_with_attributes(featured):
    _, net, train, *_ = build("SASRec", "cycle", featured)
    batch = next(iter(train))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and net.embedding.features.tables["brand"].weight.grad is not None


# ---- through RecBole's data path ---------------------------------------------------------------
def test_selected_features_end_to_end_learn_the_cycle(featured):
    result = run_recbole("SASRec", "cycle", config_dict=dict(featured, epochs=15))
    assert result["test_result"]["hit@10"] == 1.0


def test_a_selected_field_the_item_file_lacks_is_refused_before_loading(featured):
    with pytest.raises(ConfigError, match=r"\['colour'\] not in .*cycle.item \(its fields: "):
        run_recbole("SASRec", "cycle", config_dict=dict(featured, selected_features=["colour"]))


def test_load_col_without_the_selected_fields_is_refused(featured):
    load_col = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "brand"]}
    with pytest.raises(ConfigError, match=r"does not load \['cats'\].*item: \['item_id', 'cats'"):
        run_recbole(
            "SASRec",
            "cycle",
            config_dict=dict(featured, selected_features=["cats"], load_col=load_col),
        )


def test_selected_features_without_an_item_file_are_refused(tiny):
    with pytest.raises(ConfigError, match=r"there is no item file .*cycle.item"):
        run_recbole("SASRec", "cycle", config_dict=dict(tiny, selected_features=["cats"]))


def test_items_without_a_row_are_refused_not_dropped(tiny):
    write_items(Path(tiny["data_path"]), skip=(6,))
    cfg = dict(tiny, selected_features=["cats"], epochs=1)
    with pytest.raises(ConfigError, match=r"no row for 1 item\(s\) .*\('i6'\).*drop their \d+ "):
        run_recbole("SASRec", "cycle", config_dict=cfg)
    # kept with empty attributes when asked
    result = run_recbole(
        "SASRec", "cycle", config_dict=dict(cfg, filter_inter_by_user_or_item=False)
    )
    assert result["model_file"]


def test_items_only_in_the_item_file_join_the_catalogue(tiny):
    write_items(Path(tiny["data_path"]), extra=("new1", "new2"))
    _, net, *_ = build("SASRec", "cycle", dict(tiny, selected_features=["cats", "brand"]))
    assert net.n_items == N_ITEMS + 1 + 2


def test_attribute_loss_is_each_token_fields_multilabel_bce_by_hand(featured):
    _, net, *_ = build("SASRec", "cycle", featured)
    features = net.embedding.features
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 32, generator=g)
    items = torch.tensor([7, 5, 12])  # item 5 has no attributes
    expected = []
    for name in ("cats", "brand"):  # token fields only
        W = features.tables[name].weight[1:]
        labels = torch.zeros(3, len(W))
        for n, i in enumerate(items.tolist()):
            for token in features.values(name)[i].tolist():
                if token:
                    labels[n, token - 1] = 1.0
        logits = h @ W.T
        bce = -(labels * torch.log(torch.sigmoid(logits)))
        bce = bce - (1 - labels) * torch.log(1 - torch.sigmoid(logits))
        expected.append(bce.mean())
    torch.testing.assert_close(features.attribute_loss(h, items), torch.stack(expected).mean())


def test_attribute_loss_weight_adds_the_weighted_attribute_loss(featured):
    losses = {}
    for weight in (0.0, 2.5):
        cfg = dict(featured, attribute_loss_weight=weight, seed=7, train_batching="random")
        _, net, train, *_ = build("SASRec", "cycle", cfg)
        batch = next(iter(train))
        torch.manual_seed(0)
        losses[weight] = net.calculate_loss(batch)
    seq_len = batch[net.ITEM_SEQ_LEN]
    hidden = net.encode(batch[net.ITEM_SEQ][:, : int(seq_len.max())], lengths=seq_len)
    targets = batch[net.TARGET_SEQ][:, : int(seq_len.max())]
    extra = net.embedding.features.attribute_loss(hidden[targets > 0], targets[targets > 0])
    torch.testing.assert_close(losses[2.5], losses[0.0] + 2.5 * extra)


def test_attribute_keys_without_features_are_refused(tiny):
    for key, value in (("attribute_loss_weight", 1.0), ("item_id_dropout", 0.2)):
        with pytest.raises(ConfigError, match=rf"{key}=.* selected_features is empty"):
            build("SASRec", "cycle", dict(tiny, **{key: value}))
