"""Sampled evaluation (``eval_args`` mode ``uni<N>``, ``pop<N>``) that encodes each sequence once.

RecBole's ``NegSampleEvalDataLoader`` repeats each sample once per candidate (1 positive + N
negatives) and the trainer calls ``model.predict`` on all of them: the same sequence is encoded
N + 1 times. ``CandidateEvalDataLoader`` draws the same negatives (RecBole's sampler, called user
by user in RecBole's order) and returns each sample once with its candidates;
``CandidateScoringMixin`` (the trainer's half) scores them from one encoding and hands RecBole's
evaluator what its own loader would have produced, so the metrics are RecBole's.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.data.interaction import Interaction
from recbole.evaluator.register import Register
from recbole.sampler import RepeatableSampler
from recbole.utils import EvaluatorType

EVAL_SCORES = 2**20  # scores a batch holds at most
CANDIDATES = "candidate_item_id"  # [rows, 1 + N]: the positive item, then the N negatives


def ranks_only(config) -> bool:
    """The metrics read only the positives' ranks (NDCG, Hit, MRR, ...): with one sample a user,
    ``CandidateScoringMixin`` hands the evaluator [users, 1 + N] scores, not [users, items]."""
    if config["eval_type"] == EvaluatorType.VALUE:
        return False
    register = Register(config)
    return not any(register.need(k) for k in ("rec.items", "rec.meanrank", "rec.score"))


def repeatable_draw(sampler):
    """RecBole's ``RepeatableSampler.sample_by_user_ids`` for one user's rows, without its fixed
    cost per call (an array of sets, ``np.isin`` on one item, the alias table read item by item):
    the same calls on numpy's global generator in the same order, hence the same negatives.
    None for another sampler (its own method is called)."""
    if type(sampler) is not RepeatableSampler:
        return None
    if sampler.distribution == "popularity":
        keys = np.array(list(sampler.prob.keys()))
        prob = np.array([sampler.prob[key] for key in keys])
        alias = np.array([sampler.alias[key] for key in keys])

        def sampling(n: int) -> np.ndarray:  # _pop_sampling: an alias draw per sample
            index, u = np.random.randint(0, len(keys), n), np.random.random(n)
            return np.where(prob[index] > u, keys[index], alias[index])

    elif sampler.distribution == "uniform":
        sampling = sampler.sampling
    else:
        return None

    def draw(items: np.ndarray, num: int) -> torch.Tensor:
        """items [k]: the rows' positive items -> [num * k], negative j of row r at j * k + r."""
        if len(items) == 1:  # sample_by_key_ids' branch for a single key
            values = sampling(num)
            check = np.flatnonzero(values == items[0])
            while len(check):
                values[check] = value = sampling(len(check))
                check = check[value == items[0]]
        else:
            values = np.zeros(len(items) * num, dtype=np.int64)
            check, used = np.arange(len(values)), np.tile(items, num)
            while len(check):
                values[check] = sampling(len(check))
                check = check[values[check] == used[check]]
        return torch.tensor(values, dtype=torch.long)

    return draw


def uniform_draws(high: int, items: np.ndarray, counts: np.ndarray, num: int) -> np.ndarray:
    """RecBole's uniform draws (``randint(1, high)``) for several users' rows at once: items
    [rows] (each user's rows together, ``counts`` [users]) -> [sum(counts) * num], user by user
    as ``draw`` lays them out, with the values and generator state of one call per user.

    numpy's legacy ``randint`` yields the same stream whatever the sizes of its calls, so every
    user's first round is drawn in one call; a user whose round hits its positive redraws from
    the stream right after it, shifting later users by as many values. The stream is extended
    only as far as it is consumed."""
    sizes = counts * num
    ends = np.cumsum(sizes)
    starts = ends - sizes
    total = int(ends[-1]) if len(ends) else 0
    stream = np.random.randint(1, high, total)
    row_of = np.repeat(np.cumsum(counts) - counts, sizes)  # each value's user's first row
    k = np.repeat(counts, sizes)
    used = items[row_of + (np.arange(total) - np.repeat(starts, sizes)) % k]  # value's positive
    out = np.empty(total, dtype=np.int64)

    def reach(end: int) -> None:
        nonlocal stream
        if end > len(stream):
            stream = np.concatenate([stream, np.random.randint(1, high, end - len(stream))])

    u, shift, n = 0, 0, len(counts)
    while u < n:
        w = min(n, int(np.searchsorted(ends, starts[u] + 8192, side="right")) + 1)  # look ahead
        reach(int(ends[w - 1]) + shift)
        window = slice(int(starts[u]), int(ends[w - 1]))
        hits = np.flatnonzero(stream[window.start + shift : window.stop + shift] == used[window])
        if not len(hits):
            out[window] = stream[window.start + shift : window.stop + shift]
            u = w
            continue
        v = int(np.searchsorted(ends, window.start + hits[0], side="right"))  # first hit user
        out[window.start : starts[v]] = stream[window.start + shift : starts[v] + shift]
        at = slice(int(starts[v]), int(ends[v]))
        values = stream[at.start + shift : at.stop + shift].copy()
        position = at.stop + shift
        check = np.flatnonzero(values == used[at])
        while len(check):  # RecBole's loop: redraw the hits, then the redraws that hit again
            reach(position + len(check))
            values[check] = value = stream[position : position + len(check)]
            position += len(check)
            check = check[value == used[at][check]]
        out[at] = values
        shift = position - at.stop
        u = v + 1
    return out


class CandidateEvalDataLoader(NegSampleEvalDataLoader):
    """RecBole's sampled evaluation (``uni<N>``, ``pop<N>``) with each sample once: a batch is
    ``(rows, None, positive_u, positive_i)`` where ``rows`` holds every sample of the batch's
    users once and ``rows[CANDIDATES]`` [rows, 1 + N] its positive item and the N negatives
    RecBole's sampler draws for it (the same calls, in the same order, as RecBole's loader)."""

    def _init_batch_size_and_step(self):
        """Batches of whole users. RecBole's batch of ``eval_batch_size`` rows encodes
        eval_batch_size / (1 + N) sequences; one encoding a sample allows more, up to
        ``eval_batch_size`` samples and EVAL_SCORES scores (the evaluator's dense matrix stops
        fitting in cache beyond). Batches never change the candidates."""
        sampled = (
            self.neg_sample_args["distribution"] != "none"
            and self.neg_sample_args["sample_num"] != "none"
        )
        if not sampled:
            return super()._init_batch_size_and_step()
        batch_size = self.config["eval_batch_size"]
        samples = max(
            batch_size // self.times, min(batch_size, EVAL_SCORES // self._dataset.item_num)
        )
        if ranks_only(self.config) and self.uid2items_num[self.uid_list].max() <= 1:
            samples = batch_size  # scores stay [users, 1 + N]: no [users, items] matrix to fit
        rows = np.sort(self.uid2items_num[self.uid_list])[::-1]
        fits = np.cumsum(rows) <= max(samples, int(rows[0]))
        self.step = max(1, int(fits.sum()))
        self.set_batch_size(int(rows[: self.step].sum()))

    def collate_fn(self, index):
        uid_list = self.uid_list[np.array(index)]
        slices = self.uid2index[uid_list]
        counts = np.array([sl.stop - sl.start for sl in slices])
        rows = np.concatenate([np.arange(sl.start, sl.stop) for sl in slices])
        data = self._dataset[rows]  # every sample of the batch's users once, joined
        users, items = data[self.uid_field].numpy(), data[self.iid_field].numpy()
        ends = np.cumsum(counts)
        candidates = []
        if getattr(self, "_draw_for", None) is not self._sampler:  # built once per sampler
            self._draw_for, self._draw = self._sampler, repeatable_draw(self._sampler)
        draw, num = self._draw, self.neg_sample_num
        if draw is not None and self._sampler.distribution == "uniform":  # all users at once
            flat = torch.from_numpy(uniform_draws(self._sampler.item_num, items, counts, num))
            if (counts == 1).all():
                negatives = flat.view(-1, num)  # [users, N]
            else:
                parts = flat.split((counts * num).tolist())
                negatives = torch.cat([x.view(-1, k).T for x, k in zip(parts, counts, strict=True)])
            data.update(
                Interaction({CANDIDATES: torch.cat([data[self.iid_field][:, None], negatives], 1)})
            )
            positive_u = torch.from_numpy(np.repeat(np.arange(len(uid_list)), counts))
            return data, None, positive_u, data[self.iid_field]
        for start, end in zip(ends - counts, ends, strict=True):  # RecBole's calls, user by user
            k = end - start
            if draw is None:
                negatives = self._sampler.sample_by_user_ids(
                    users[start:end], items[start:end], self.neg_sample_num
                )  # [N * k]: negative j of row r at j * k + r
            else:
                negatives = draw(items[start:end], self.neg_sample_num)
            candidates.append(negatives.view(-1, k).T)
        negatives = torch.cat(candidates)  # [rows, N]
        data.update(
            Interaction({CANDIDATES: torch.cat([data[self.iid_field][:, None], negatives], 1)})
        )
        positive_u = torch.from_numpy(np.repeat(np.arange(len(uid_list)), counts))
        return data, None, positive_u, data[self.iid_field]


def _recbole_order(positive_u: torch.Tensor, n_candidates: int) -> torch.Tensor:
    """Where RecBole's loader puts candidate j of row i: user by user (a user's rows are
    contiguous), and within a user j-major (the positives of all its rows, then each round of
    negatives): [rows, 1 + N] positions in the flat order."""
    rows = torch.arange(len(positive_u))
    counts = torch.bincount(positive_u)
    starts = torch.cumsum(counts, 0) - counts  # each user's first row
    first, k = starts[positive_u], counts[positive_u]
    j = torch.arange(n_candidates)
    return first[:, None] * n_candidates + j[None, :] * k[:, None] + (rows - first)[:, None]


def candidate_scores_matrix(batch, scores: torch.Tensor, n_items: int) -> torch.Tensor:
    """RecBole's [users, n_items] matrix for one ``CandidateEvalDataLoader`` batch: -inf, and
    each candidate's score written in the order RecBole's trainer writes it, so that a repeated
    candidate keeps the score RecBole would keep. ``scores`` [rows, 1 + N]."""
    data, _, positive_u, _ = batch
    candidates = data[CANDIDATES]  # [rows, 1 + N]
    order = _recbole_order(positive_u, candidates.size(1)).reshape(-1).to(scores.device)
    flat = torch.empty(order.numel(), dtype=torch.long, device=scores.device)
    user_of, item_of = flat.clone(), flat
    item_of[order] = candidates.reshape(-1).to(scores.device)
    user_of[order] = positive_u[:, None].expand_as(candidates).reshape(-1).to(scores.device)
    value_of = torch.empty(order.numel(), dtype=scores.dtype, device=scores.device)
    value_of[order] = scores.reshape(-1)
    matrix = torch.full((int(positive_u[-1]) + 1, n_items), -np.inf, device=scores.device)
    matrix[user_of, item_of] = value_of
    return matrix


def candidate_scores_compact(candidates: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """candidates, scores [users, 1 + N] -> the scores with every repeat of an item after its
    first occurrence -inf: one column per distinct candidate, as RecBole's matrix has one cell
    per item (a repeated item has one score)."""
    ordered, index = candidates.sort(dim=1, stable=True)
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]  # later copies, in column order
    repeated = torch.zeros_like(repeat).scatter_(1, index, repeat).to(scores.device)
    return scores.masked_fill(repeated, -np.inf)


def candidate_labelled_scores(batch, scores: torch.Tensor, label_field: str):
    """For value metrics (AUC, LogLoss): RecBole's scored rows, one per (sample, candidate), in
    RecBole's order, as ``(Interaction with the labels, scores [rows])``."""
    _, _, positive_u, _ = batch
    order = _recbole_order(positive_u, scores.size(1)).to(scores.device)  # [rows, 1 + N]
    values = torch.empty(order.numel(), dtype=scores.dtype, device=scores.device)
    values[order.reshape(-1)] = scores.reshape(-1)
    labels = torch.zeros(order.numel())
    labels[order[:, 0].cpu()] = 1.0  # candidate 0 of every row: its positive
    return Interaction({label_field: labels}), values


class CandidateScoringMixin:
    """The trainer's half of sampled evaluation: each sample's candidates scored from one
    encoding (``model.score_candidates``), into what RecBole's evaluator reads from its own
    loader. RecBole's [users, items] matrix makes its evaluator rank whole catalogue rows; when
    the metrics read only the positives' ranks and each user has one sample, it gets the
    [users, 1 + N] candidate scores instead (a repeated negative's copies -inf): the same ranks."""

    def _neg_sample_batch_eval(self, batched_data):
        interaction = batched_data[0]
        if CANDIDATES not in interaction:
            return super()._neg_sample_batch_eval(batched_data)
        data = interaction.to(self.device)
        scores = self.model.score_candidates(data, data[CANDIDATES])  # [rows, 1 + N]
        _, _, positive_u, positive_i = batched_data
        batch = (data, None, positive_u, positive_i)
        if self.config["eval_type"] == EvaluatorType.VALUE:
            labelled, flat = candidate_labelled_scores(batch, scores, self.config["LABEL_FIELD"])
            return labelled, flat, positive_u, positive_i
        one_each = torch.equal(positive_u, torch.arange(len(positive_u)))
        if one_each and ranks_only(self.config):
            # only ranks are read (NDCG, Hit, MRR, ...): the candidates' columns are enough
            compact = candidate_scores_compact(data[CANDIDATES], scores)
            return interaction, compact, positive_u, torch.zeros_like(positive_u)
        return (
            interaction,
            candidate_scores_matrix(batch, scores, self.tot_item_num),
            positive_u,
            positive_i,
        )
