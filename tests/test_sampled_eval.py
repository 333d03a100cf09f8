"""Sampled evaluation (uni<N>, pop<N>) from one encoding per sequence: RecBole's candidates,
scores and metrics, exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import build
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.utils import init_seed

from recbole_sasrec.dataloader import CANDIDATES, CandidateEvalDataLoader
from recbole_sasrec.trainer import get_trainer


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
            net, "forward", lambda s, n, calls=calls, real=real: calls.append(len(s)) or real(s, n)
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


def test_the_same_candidates_and_scores_as_recbole(tiny):
    config, net, _, valid, _ = build("SASRec", "cycle", dict(tiny, eval_args={"mode": "uni20"}))
    net.eval()
    init_seed(config["seed"], True)
    ours = next(iter(CandidateEvalDataLoader(config, valid._dataset, valid._sampler)))
    init_seed(config["seed"], True)
    theirs = next(iter(NegSampleEvalDataLoader(config, valid._dataset, valid._sampler)))
    rows, candidates = ours[0], ours[0][CANDIDATES]  # [B], [B, 21]
    B = len(rows)
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
