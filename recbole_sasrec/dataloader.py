"""RecBole's data loaders, fitted to our models: training batches with little padding, and
sampled evaluation that encodes each sequence once.

Training (``train_all_positions: True``). A batch is trimmed to its longest window, so a random
batch of a long-tailed log costs what its longest member costs: nearly every batch of 128
windows holds one near MAX_ITEM_LIST_LENGTH (L), and most of the positions it encodes are
padding. Three ways to batch windows (``train_batching``):

* ``packed`` (the default): windows in random order, cut into batches of as many real
  positions as a random batch of ``train_batch_size`` windows holds on average
  (``train_batch_size`` x the mean window length), each batch packed into rows of L positions
  that hold several windows one after another (``pack_windows``; ``layers.Packed`` keeps every
  window's attention to itself and restarts its positions). The same number of steps per epoch
  as random batching and, in expectation, the same batches, without their padding.
* ``length``: windows sorted by length and cut into batches of up to ``train_batch_size x L``
  positions: little padding and no masks, but every batch holds windows of one length only
  (on ml-100k these correlate with where in a history a window lies), and such batches
  trained to a lower validation NDCG@10 at equal epochs (docs/results.md).
* ``random``: RecBole's, ``train_batch_size`` windows drawn at random (batch for batch what
  RecBole's loader draws).

Every window is in exactly one batch per epoch, and the same seed gives the same batches.

Sampled evaluation (``eval_args`` mode ``uni<N>``/``pop<N>``). RecBole's
``NegSampleEvalDataLoader`` repeats each sample once per candidate (1 positive + N negatives)
and the trainer calls ``model.predict`` on all of them: the same sequence is encoded N + 1
times. ``CandidateEvalDataLoader`` draws the same negatives (RecBole's sampler, called user by
user in RecBole's order) but returns each sample once with its candidates, and the trainer
scores the candidates from one encoding (``trainer.CandidateScoringMixin``); the scores land in the
same matrix RecBole's evaluator reads, so the metrics are RecBole's.

Several processes (``torch.distributed``): every process builds the same batches and takes its
rows of each (``WindowBatchSampler``), so that each window is trained exactly once per epoch
across processes.
"""

from __future__ import annotations

import copy
from logging import getLogger

import numpy as np
import recbole.data
import torch
from recbole.data.dataloader import FullSortEvalDataLoader, NegSampleEvalDataLoader, TrainDataLoader
from recbole.data.interaction import Interaction
from recbole.data.transform import construct_transform
from recbole.data.utils import create_samplers, load_split_dataloaders, save_split_dataloaders
from recbole.sampler import RepeatableSampler
from recbole.utils import ModelType, set_color

from .data import HISTORY_BEGIN, HISTORY_END, SEGMENT_USERS, SEGMENTS, ranks, take
from .keys import is_ours

BATCHINGS = ("packed", "length", "random")
FULL_SORT_SCORES = 2**26  # full ranking: scores a batch at most (BoundedFullSortEvalDataLoader)
EVAL_SCORES = 2**20  # sampled evaluation: scores a batch at most (CandidateEvalDataLoader)
CANDIDATES = "candidate_item_id"  # [rows, 1 + N]: the positive item, then the N negatives


class WindowBatchSampler(torch.utils.data.Sampler):
    """The batches of one epoch of training windows (lists of row indices).

    ``lengths`` [R]: each window's real length. ``batching``: ``random`` (RecBole's: consecutive
    runs of ``batch_size`` in a random permutation) or ``length`` (see the module docstring).
    ``world``/``rank``: the share of one of several processes. Every process draws the same
    batches from the same seed and takes rows ``rank::world`` of each, so a step of ``world``
    processes trains on one batch of the single-process run (a batch with fewer rows than
    processes is merged into the one before it); each window is trained once per epoch.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        max_len: int,
        batching: str,
        generator: torch.Generator,
        world: int = 1,
        rank: int = 0,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.max_len, self.batching = batch_size, max_len, batching
        self.generator, self.world, self.rank = generator, world, rank

    def epoch_batches(self) -> list[np.ndarray]:
        """Every batch of the next epoch, for all processes (draws from the generator)."""
        n = len(self.lengths)
        order = (
            None
            if self.batching == "ordered"
            else torch.randperm(n, generator=self.generator).numpy()
        )
        if self.batching == "ordered":  # no shuffling: RecBole's loader with shuffle=False
            order = np.arange(n)
            batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        elif self.batching == "random":
            # torch's RandomSampler draws a second permutation for the remainder (n % n rows);
            # drawn and dropped here too, so this reproduces RecBole's loader batch for batch.
            torch.randperm(n, generator=self.generator)
            batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        elif self.batching == "packed":
            # as many real positions as a random batch holds on average: the same number of
            # steps per epoch and, in expectation, the same batch as random batching
            budget = self.batch_size * float(self.lengths.mean()) if n else 1.0
            batches = _packed_batches(order, self.lengths, budget)
        else:
            budget = self.batch_size * self.max_len  # positions per batch
            order = order[np.argsort(-self.lengths[order], kind="stable")]  # longest first
            batches = _cut_by_budget(order, self.lengths[order], budget)
            shuffle = torch.randperm(len(batches), generator=self.generator).numpy()
            batches = [batches[i] for i in shuffle]
        return _merge_small(batches, self.world)

    def __iter__(self):
        for batch in self.epoch_batches():
            yield batch[self.rank :: self.world].tolist()

    def __len__(self) -> int:
        if self.batching == "random" and self.world == 1:
            return -(-len(self.lengths) // self.batch_size)
        # data-dependent: count without drawing from the real generator
        state = self.generator.get_state()
        try:
            return len(self.epoch_batches())
        finally:
            self.generator.set_state(state)


def pack_rows(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack windows into rows of ``capacity`` positions: each window's row and its offset in
    the row, both [n]. Longest first, each row topped up with the shortest windows that still
    fit (a two-pointer first-fit decreasing, linear in n): a few percent of the positions stay
    padding on long-tailed lengths, where packing in arrival order left 16%."""
    n = len(lengths)
    order = np.argsort(-lengths, kind="stable")
    size = lengths[order].tolist()
    row, offset = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    i, j, r = 0, n - 1, 0
    while i <= j:
        row[order[i]], used = r, size[i]
        i += 1
        while j >= i and used + size[j] <= capacity:
            row[order[j]], offset[order[j]] = r, used
            used += size[j]
            j -= 1
        r += 1
    return row, offset


def _packed_batches(order, lengths, budget: float) -> list[np.ndarray]:
    """Windows in ``order``, cut into batches of about ``budget`` real positions."""
    batch = np.floor(np.cumsum(lengths[order]) / budget)
    return np.split(order, np.flatnonzero(np.diff(batch)) + 1)


def _cut_by_budget(rows: np.ndarray, lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive batches of rows sorted longest first, each with rows x its longest (first)
    length <= budget (at least one row per batch)."""
    batches, i, n = [], 0, len(rows)
    while i < n:
        size = max(1, budget // max(1, int(lengths[i])))
        batches.append(rows[i : i + size])
        i += size
    return batches


def _merge_small(batches: list[np.ndarray], world: int) -> list[np.ndarray]:
    """Merge each batch with fewer than ``world`` rows into the batch before it (after it, for
    the first), so that every process gets at least one row of every batch."""
    if world == 1:
        return batches
    merged: list[np.ndarray] = []
    for batch in batches:
        if merged and (len(batch) < world or len(merged[-1]) < world):
            merged[-1] = np.concatenate([merged[-1], batch])
        else:
            merged.append(batch)
    if sum(map(len, merged)) and len(merged[-1]) < world:
        raise ValueError(f"{sum(map(len, merged))} training windows cannot be shared by {world}")
    return merged


class WindowTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` over training windows, its batches from a
    ``WindowBatchSampler`` (``train_batching``); RecBole's negative sampling and transforms
    apply unchanged."""

    def __init__(self, config, dataset, sampler, shuffle=True):
        self.logger = getLogger()
        self._set_neg_sample_args(
            config, dataset, config["MODEL_INPUT_TYPE"], config["train_neg_sample_args"]
        )
        self.sample_size = len(dataset)
        # AbstractDataLoader.__init__, with a batch sampler in place of RecBole's index sampler.
        # With several processes RecBole's trainer calls sampler.set_epoch() when shuffle is
        # set; the batch sampler reshuffles from its own generator, the same in every process.
        world = 1 if config["single_spec"] else config["world_size"]
        self.shuffle = shuffle and world == 1
        self.config, self._dataset, self._sampler = config, dataset, sampler
        self._batch_size = self.step = self.model = None
        self._init_batch_size_and_step()
        self.generator = torch.Generator()
        self.generator.manual_seed(config["seed"])
        self.transform = construct_transform(config)
        self.is_sequential = True
        rank = 0 if config["single_spec"] else config["local_rank"] + (config["offset"] or 0)
        lengths = dataset.inter_feat[dataset.item_list_length_field].numpy()
        self.batches = WindowBatchSampler(
            lengths,
            self.step,
            config["MAX_ITEM_LIST_LENGTH"],
            config["train_batching"] if shuffle else "ordered",
            self.generator,
            world,
            rank,
        )
        torch.utils.data.DataLoader.__init__(
            self,
            dataset=list(range(self.sample_size)),
            batch_sampler=self.batches,
            collate_fn=self.collate_fn,
            num_workers=config["worker"],
            generator=self.generator,
        )

    def collate_fn(self, index):
        data = super().collate_fn(index)
        if self.batches.batching != "packed":
            return data
        return pack_windows(data, self._dataset, self.config["MAX_ITEM_LIST_LENGTH"])


def pack_windows(windows, dataset, capacity: int):
    """A batch of windows [n, L] repacked into rows that hold several each, one after another
    (``pack_rows``): item lists, target lists, the window and the user of every position
    (``data.SEGMENTS``, ``data.SEGMENT_USERS``), and each row's used length. A row's user and
    item fields are those of its first window."""
    seq_field, len_field = dataset.item_id_list_field, dataset.item_list_length_field
    target_field = next(f for f in windows.interaction if f.startswith("next_"))
    lengths = windows[len_field].numpy()
    row, offset = pack_rows(lengths, capacity)
    R = int(row.max()) + 1 if len(row) else 0
    real = np.arange(capacity)[None, :] < lengths[:, None]  # [n, L] real positions of windows
    window_of, step = np.nonzero(real)
    dest_row, dest_col = row[window_of], offset[window_of] + step
    out = {}
    src = torch.from_numpy(window_of), torch.from_numpy(step)
    dest = torch.from_numpy(dest_row), torch.from_numpy(dest_col)
    for field in (seq_field, target_field):
        packed = torch.zeros((R, capacity), dtype=windows[field].dtype)
        packed[dest] = windows[field][src]
        out[field] = packed
    segment = torch.zeros((R, capacity), dtype=torch.long)
    # windows numbered 1, 2, ... within their row, in order of offset
    by_row = np.lexsort((offset, row))
    rank = np.empty(len(row), dtype=np.int64)
    first = np.r_[0, np.flatnonzero(np.diff(row[by_row])) + 1]
    rank[by_row] = np.arange(len(row)) - np.repeat(first, np.diff(np.r_[first, len(row)]))
    segment[dest] = torch.from_numpy(rank[window_of] + 1)
    users = torch.zeros((R, capacity), dtype=torch.long)
    users[dest] = windows[dataset.uid_field][src[0]]
    used = np.bincount(row, weights=lengths, minlength=R).astype(np.int64)
    head = torch.from_numpy(by_row[first])  # each row's first window
    out.update(
        {
            SEGMENTS: segment,
            SEGMENT_USERS: users,
            len_field: torch.from_numpy(used),
            dataset.uid_field: windows[dataset.uid_field][head],
            dataset.iid_field: windows[dataset.iid_field][head],
        }
    )
    return Interaction(out)


class BoundedFullSortEvalDataLoader(FullSortEvalDataLoader):
    """RecBole's full-ranking loader, with a batch of at most FULL_SORT_SCORES scores. For
    sequential models RecBole's batch is ``eval_batch_size`` samples, each scoring every item
    (a dense [4096, items] matrix and the evaluator's copies of it: 16 GB each at 1M items);
    for other models it already divides by the number of items. Batches change no metric.
    ``exclude_history``: with ``eval_exclude_history``, remove the rows' earlier items (False:
    RecBole's ranking of the same rows)."""

    exclude_history = True

    def _init_batch_size_and_step(self):
        super()._init_batch_size_and_step()
        if self.is_sequential:
            rows = min(self.step, max(1, FULL_SORT_SCORES // self._dataset.item_num))
            self.step = rows
            self.set_batch_size(rows)

    def collate_fn(self, index):
        """RecBole's batch; with ``eval_exclude_history`` its history index holds each row's
        earlier items (rows [n], items [n]), which RecBole's trainer scores -inf."""
        interaction, history, positive_u, positive_i = super().collate_fn(index)
        if self.is_sequential and self.exclude_history and HISTORY_BEGIN in interaction:
            begin = interaction[HISTORY_BEGIN].numpy()
            sizes = interaction[HISTORY_END].numpy() - begin
            items = self._dataset._sorted[self._dataset.iid_field]
            rows = torch.from_numpy(np.repeat(np.arange(len(begin)), sizes))
            history = rows, items[torch.from_numpy(np.repeat(begin, sizes) + ranks(sizes))]
        return interaction, history, positive_u, positive_i


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


class CandidateEvalDataLoader(NegSampleEvalDataLoader):
    """RecBole's sampled evaluation (``uni<N>``, ``pop<N>``) with each sample once: a batch is
    ``(rows, None, positive_u, positive_i)`` where ``rows`` holds every sample of the batch's
    users once and ``rows[CANDIDATES]`` [rows, 1 + N] its positive item and the N negatives
    RecBole's sampler draws for it (the same calls, in the same order, as RecBole's loader)."""

    def _init_batch_size_and_step(self):
        """Batches of whole users, as RecBole's. RecBole counts a sample 1 + N times (its
        repeated rows), so a batch of ``eval_batch_size`` encodes eval_batch_size / (1 + N)
        sequences (40 for uni100): many small calls in every layer. Encoding each sample once,
        a batch may hold more, but RecBole's evaluator reads the scores as a dense [samples,
        items] matrix, which stops fitting in cache beyond about a million scores: a batch holds
        RecBole's number of samples, or more up to ``eval_batch_size`` samples and
        EVAL_SCORES scores. The batches do not change the candidates (RecBole's sampler is
        called user by user in the same order, whatever the batches)."""
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
        draw = self._draw
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


def _sampled(config, phase: str) -> bool:
    args = config[f"{phase}_neg_sample_args"]
    return args["distribution"] != "none" and args["sample_num"] != "none"


def _eval_loader(config, phase: str, part, sampler):
    """The evaluation loader of one phase; with several processes, each process's share: every
    ``world``-th sample (``trainer._GatheringEvaluator`` puts the rows back in order)."""
    world = 1 if config["single_spec"] else config["world_size"]
    rank = 0 if config["single_spec"] else config["local_rank"] + (config["offset"] or 0)
    if world > 1:  # a loader of this process's share, built as a single process builds one
        local = copy.copy(config)
        local.final_config_dict = dict(config.final_config_dict, single_spec=True)
        config = local
    if not _sampled(config, phase):
        if world > 1:
            part = part.copy(take(part.inter_feat, np.arange(rank, len(part), world)))
        return BoundedFullSortEvalDataLoader(config, part, sampler, shuffle=False)
    if world > 1:  # whole users (sampled evaluation groups a user's samples), in uid order
        uid = part.inter_feat[part.uid_field].numpy()
        mine = np.unique(uid)[rank::world]
        part = part.copy(take(part.inter_feat, np.flatnonzero(np.isin(uid, mine))))
    if config["transform"] is None:
        return CandidateEvalDataLoader(config, part, sampler, shuffle=False)
    # a transform may draw per row: RecBole's own loader, rows repeated per candidate
    return NegSampleEvalDataLoader(config, part, sampler, shuffle=False)


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``, with our loaders for our models: training windows batched
    by ``train_batching``, and sampled evaluation that encodes each sequence once. Other
    models get RecBole's own."""
    if not is_ours(recbole_model_class(config)):
        return recbole.data.data_preparation(config, dataset)
    dataloaders = load_split_dataloaders(config)
    if dataloaders is not None:
        dataset._change_feat_format()
        return dataloaders
    built = dataset.build()
    train_dataset, valid_dataset, test_dataset = built
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    if config["train_all_positions"]:
        train_loader = WindowTrainDataLoader
    else:
        train_loader = TrainDataLoader
    train = train_loader(config, train_dataset, train_sampler, shuffle=config["shuffle"])
    loaders = [train]
    for phase, part, sampler in (
        ("valid", valid_dataset, valid_sampler),
        ("test", test_dataset, test_sampler),
    ):
        loaders.append(_eval_loader(config, phase, part, sampler))
    if config["save_dataloaders"]:
        save_split_dataloaders(config, dataloaders=tuple(loaders))
    getLogger().info(
        set_color("[Training]: ", "pink")
        + set_color("train_batch_size", "cyan")
        + f" = [{config['train_batch_size']}], "
        + set_color("train_batching", "cyan")
        + f" = [{config['train_batching'] if config['train_all_positions'] else 'random'}]"
    )
    return tuple(loaders)


def recbole_model_class(config) -> type:
    from .config import get_model

    return get_model(config["model"])


__all__ = [
    "BATCHINGS",
    "CANDIDATES",
    "CandidateEvalDataLoader",
    "ModelType",
    "WindowBatchSampler",
    "WindowTrainDataLoader",
    "candidate_scores_matrix",
    "data_preparation",
]
