"""Sampled evaluation from one encoding: RecBole's candidates, scores and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import build
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_sasrec.data import sampled_eval
from recbole_sasrec.data.sampled_eval import (
    CANDIDATES,
    CandidateEvalDataLoader,
    candidate_scores_compact,
    candidate_scores_matrix,
    repeatable_draw,
    uniform_draws,
)
from recbole_sasrec.integration.trainer import get_trainer


def both_paths(config, net, loader, monkeypatch):
    """Metrics of one loader's data through our loader and through RecBole's, the samplers
    seeded alike; and the number of sequences each path encoded."""
    results, encoded = {}, {}
    for name, cls in (("ours", CandidateEvalDataLoader), ("recbole", NegSampleEvalDataLoader)):
        data = cls(config, loader._dataset, loader._sampler, shuffle=False)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        calls = []
        real = net.forward
        monkeypatch.setattr(
            net,
            "forward",
            lambda s, n, *rest, calls=calls, real=real: calls.append(len(s)) or real(s, n, *rest),
        )
        init_seed(config["seed"], True)  # RecBole's sampler draws from numpy's global stream
        results[name] = trainer.evaluate(data, load_best_model=False)
        encoded[name] = sum(calls)
        monkeypatch.setattr(net, "forward", real)
    return results, encoded


@pytest.mark.parametrize("name", ["SASRec", "LightSANs"])
@pytest.mark.parametrize("mode", ["uni20", "pop20"])
@pytest.mark.parametrize("all_positions", [True, False])
def test_metrics_equal_recbole_s_path_with_one_encoding(
    tiny, name, mode, all_positions, monkeypatch
):
    cfg = dict(tiny, eval_args={"mode": mode}, train_all_positions=all_positions)
    config, net, _, valid, test = build(name, "cycle", cfg)
    assert isinstance(valid, CandidateEvalDataLoader)
    net.eval()
    for loader in (valid, test):
        results, encoded = both_paths(config, net, loader, monkeypatch)
        assert results["ours"] == results["recbole"]
        assert encoded["recbole"] == 21 * encoded["ours"] == 21 * len(loader._dataset)


def test_value_metrics_equal_recbole_s_path(tiny, monkeypatch):
    cfg = dict(tiny, eval_args={"mode": "uni20"}, metrics=["AUC", "LogLoss"], valid_metric="AUC")
    config, net, _, valid, _ = build("SASRec", "cycle", cfg)
    net.eval()
    results, encoded = both_paths(config, net, valid, monkeypatch)
    assert results["ours"] == results["recbole"]
    assert encoded["recbole"] == 21 * encoded["ours"]


@pytest.mark.parametrize("mode", ["uni20", "pop20"])
def test_our_draw_is_recbole_s_sampler_call(tiny, mode):
    """One user's rows (one, or several with repeated items): the same negatives as RecBole's
    RepeatableSampler, and numpy's generator left in the same state. 50 draws from the tiny
    catalogue hit the positive often, so the redraw loop runs."""
    _, _, _, valid, _ = build("SASRec", "cycle", dict(tiny, eval_args={"mode": mode}))
    sampler = valid._sampler
    draw = repeatable_draw(sampler)
    assert sampler.distribution == ("uniform" if mode == "uni20" else "popularity")
    for items in ([3], [3, 5, 3], [1]):
        items = np.array(items)
        np.random.seed(7)
        theirs = sampler.sample_by_user_ids(np.zeros(len(items), dtype=np.int64), items, 50)
        after = np.random.random()
        np.random.seed(7)
        ours = draw(items, 50)
        assert torch.equal(ours, theirs) and np.random.random() == after
        assert not (ours.view(50, -1) == torch.from_numpy(items)).any()


@pytest.mark.parametrize(("n_items", "max_rows"), [(30, 1), (30, 3), (6, 2), (5000, 1)])
def test_one_call_for_all_users_draws_what_recbole_draws_user_by_user(tiny, n_items, max_rows):
    """uniform_draws equals RecBole's sampler called user by user (values and numpy's state
    after), also where nearly every user's first round hits its positive and redraws shift the
    users after it, and for users with several rows."""
    _, _, _, valid, _ = build("SASRec", "cycle", dict(tiny, eval_args={"mode": "uni20"}))
    sampler = valid._sampler
    sampler.item_num = n_items  # the draws read only the catalogue size
    rng = np.random.default_rng(n_items)
    counts = rng.integers(1, max_rows + 1, 400)
    items = rng.integers(1, n_items, counts.sum())
    np.random.seed(11)
    theirs, row = [], 0
    for k in counts:
        theirs.append(sampler.sample_by_user_ids(np.zeros(k, np.int64), items[row : row + k], 50))
        row += k
    after = np.random.random()
    np.random.seed(11)
    ours = uniform_draws(n_items, items, counts, 50)
    assert np.array_equal(ours, torch.cat(theirs).numpy()) and np.random.random() == after


def test_ranks_only_batches_hold_eval_batch_size_users(tiny, monkeypatch):
    """NDCG and Hit read only ranks: a batch is eval_batch_size users whatever the catalogue
    size (no [users, items] matrix is built); ItemCoverage reads the top items, so its batches
    stay within the matrix's limit (here 5 rows of the 31 columns)."""
    monkeypatch.setattr(sampled_eval, "EVAL_SCORES", 5 * 31)
    for metrics, users in ((["NDCG", "Hit"], 40), (["NDCG", "ItemCoverage"], 5)):
        cfg = dict(tiny, eval_args={"mode": "uni20"}, eval_batch_size=40, metrics=metrics)
        _, _, _, valid, _ = build("SASRec", "cycle", cfg)
        assert len(next(iter(valid))[0]) == min(users, len(valid._dataset))


@pytest.mark.parametrize("mode", ["uni20", "pop20"])
def test_the_same_candidates_and_scores_as_recbole(tiny, mode):
    config, net, _, valid, _ = build("SASRec", "cycle", dict(tiny, eval_args={"mode": mode}))
    net.eval()
    init_seed(config["seed"], True)
    ours = next(iter(CandidateEvalDataLoader(config, valid._dataset, valid._sampler)))
    init_seed(config["seed"], True)
    theirs = next(iter(NegSampleEvalDataLoader(config, valid._dataset, valid._sampler)))
    # ours encodes each sample once, so a batch holds about 21 times RecBole's users: compare
    # RecBole's first batch with as many of our first users
    B = len(theirs[0]) // 21
    assert len(ours[0]) > B
    rows = ours[0][torch.arange(B)]
    candidates = rows[CANDIDATES]  # [B, 21]
    # RecBole's rows: each user's sample 21 times over, its item the positive, then each negative
    assert torch.equal(theirs[0]["item_id"].view(B, 21), candidates)
    assert torch.equal(theirs[0]["item_id_list"].view(B, 21, -1)[:, 0], rows["item_id_list"])
    with torch.no_grad():
        torch.testing.assert_close(
            net.score_candidates(rows, candidates), net.predict(theirs[0]).view(B, 21)
        )


@pytest.mark.slow
@pytest.mark.parametrize(("name", "mode"), [("SASRec", "uni100"), ("LightSANs", "pop100")])
def test_ml100k_sampled_metrics_equal_recbole_s(name, mode, monkeypatch):
    """The test split (RecBole's path takes half a minute per split and model here)."""
    cfg = {"eval_args": {"mode": mode}, "show_progress": False, "state": "WARNING"}
    config, net, _, _, test = build(name, "ml-100k", cfg)
    net.eval()
    results, _ = both_paths(config, net, test, monkeypatch)
    assert results["ours"] == results["recbole"]


def test_compact_candidate_scores_rank_as_recbole_s_matrix():
    """Repeated negatives (common: 100 draws from a few thousand items) keep one column; the
    positive's rank among the candidates is its rank in RecBole's [users, items] matrix."""
    g = torch.Generator().manual_seed(0)
    users, n_items, k = 64, 40, 10
    positives = torch.arange(users) % (n_items - 1) + 1
    draws = torch.randint(1, n_items - 1, (users, 20), generator=g)
    negatives = draws + (draws >= positives[:, None]).long()  # any item but the positive
    candidates = torch.cat([positives[:, None], negatives], 1)  # [users, 21]
    assert (candidates[:, 1:] != candidates[:, :1]).all()
    item_scores = torch.randn(users, n_items, generator=g)  # one score per (user, item)
    scores = item_scores.gather(1, candidates)  # a repeated item: the same score
    rows = Interaction({CANDIDATES: candidates})
    positive_u = torch.arange(users)
    dense = candidate_scores_matrix((rows, None, positive_u, candidates[:, 0]), scores, n_items)
    compact = candidate_scores_compact(candidates, scores)
    assert (compact == -float("inf")).any()  # there were repeats

    def hits(matrix, positive_i):  # RecBole's Collector, rec.topk
        _, top = torch.topk(matrix, k, dim=-1)
        pos = torch.zeros_like(matrix, dtype=torch.int)
        pos[positive_u, positive_i] = 1
        return torch.cat((torch.gather(pos, 1, top), pos.sum(1, keepdim=True)), 1)

    assert torch.equal(hits(dense, candidates[:, 0]), hits(compact, torch.zeros(users).long()))


@pytest.mark.parametrize(
    ("metrics", "compact"), [(["NDCG", "Hit", "MRR"], True), (["NDCG", "GAUC"], False)]
)
def test_recbole_s_matrix_only_where_a_metric_reads_more_than_ranks(
    tiny, metrics, compact, monkeypatch
):
    cfg = dict(tiny, eval_args={"mode": "uni20"}, metrics=metrics, valid_metric="NDCG@10")
    config, net, _, valid, _ = build("SASRec", "cycle", cfg)
    net.eval()
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    widths = []
    real = trainer._neg_sample_batch_eval

    def spy(batch):
        out = real(batch)
        widths.append(out[1].size(1))
        return out

    monkeypatch.setattr(trainer, "_neg_sample_batch_eval", spy)
    results, _ = both_paths(config, net, valid, monkeypatch)
    trainer.evaluate(valid, load_best_model=False)
    assert set(widths) == ({21} if compact else {net.n_items})
    assert results["ours"] == results["recbole"]
