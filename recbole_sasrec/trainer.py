"""RecBole's trainers with safe checkpoints, and, for our models, sampled evaluation scored from
one encoding per sequence.

RecBole's trainer pickles its ``Config`` into every checkpoint and reads checkpoints back with a
plain ``torch.load``; on torch >= 2.6 (``weights_only=True`` by default) its best-model testing
and ``resume_checkpoint`` fail, and with ``weights_only=False`` a crafted file runs code.
``CheckpointMixin`` writes and reads ``checkpoint.py``'s plain-data format instead, with the
data fingerprint of the training data, for RecBole's models as for ours.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import recbole.utils
import torch
import torch.distributed as dist
from recbole.utils import EvaluatorType, set_color
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import data_fingerprint, load_checkpoint, save_checkpoint
from .config import BUILTIN_PREFIX, get_model
from .dataloader import (
    CANDIDATES,
    candidate_labelled_scores,
    candidate_scores_compact,
    candidate_scores_matrix,
)
from .keys import is_ours


class CheckpointMixin:
    """The three places where RecBole's ``Trainer`` writes or reads a checkpoint."""

    data_fingerprint: dict | None = None

    def fit(self, train_data, valid_data=None, *args, **kwargs):
        self.data_fingerprint = data_fingerprint(train_data._dataset, self.config)
        return super().fit(train_data, valid_data, *args, **kwargs)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "epoch": epoch,
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),  # RecBole's is a numpy float
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }
        save_checkpoint(saved_model_file, state, self.config, self.data_fingerprint)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(checkpoint_file, self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        checkpoint = load_checkpoint(resume_file, self.device)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        saved_model = checkpoint["config"]["model"]
        if saved_model.lower() != self.config["model"].lower():
            self.logger.warning(
                f"checkpoint {resume_file} is of model {saved_model}, not "
                f"{self.config['model']}: loading its state_dict may fail"
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


PER_ROW = ("rec.items", "rec.topk", "rec.meta")  # one row per evaluated sample, in order
PER_CANDIDATE = ("rec.score", "data.label")  # value metrics: one row per scored candidate


class _GatheringEvaluator:
    """RecBole's ``Evaluator`` over the rows of every process: each process evaluated every
    ``world``-th sample, or user (``dataloader._eval_loader``), so the rows are gathered and put back in the
    single-process order before the metrics are computed; every process then reports the same
    metrics, the metrics of all samples. (RecBole averages each process's metrics, weighted by
    its number of batches.)"""

    def __init__(self, evaluator, world: int):
        self.evaluator, self.world = evaluator, world

    def evaluate(self, struct):
        for key in PER_ROW + PER_CANDIDATE:
            if key not in struct:
                continue
            local = struct[key]
            parts = [None] * self.world
            dist.all_gather_object(parts, local.cpu())
            if key in PER_ROW:  # rank r held samples r, r + world, ...
                total = sum(len(p) for p in parts)
                merged = torch.empty((total, *local.shape[1:]), dtype=local.dtype)
                for rank, part in enumerate(parts):
                    merged[np.arange(rank, total, self.world)] = part
            else:
                merged = torch.cat(parts)
            struct[key] = merged.to(local.device)
        return self.evaluator.evaluate(struct)


class DistributedMixin:
    """Several processes (``torch.distributed``), on CPU (gloo) as on GPU (NCCL).

    RecBole wraps the model in ``DistributedDataParallel(model, device_ids=[local_rank])``, which
    a CPU model refuses; here ``device_ids`` is the process's GPU, or None on CPU. Training then
    runs RecBole's loop (its reduce hook all-reduces every gradient). Every process waits for
    the others after training, so that none reads the best checkpoint before rank 0 has written
    it, and evaluation gathers the rows of all processes (``_GatheringEvaluator``)."""

    def __init__(self, config, model):
        distributed = not config["single_spec"]
        config["single_spec"] = True  # let RecBole's __init__ build no DDP of its own
        # RecBole's ensure_dir checks, then creates: processes starting together race on it
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        try:
            super().__init__(config, model)
        finally:
            config["single_spec"] = not distributed
        if distributed:
            device = config["device"]
            self.distributed_model = DistributedDataParallel(
                self.model, device_ids=[device] if device.type == "cuda" else None
            )
            self.evaluator = _GatheringEvaluator(self.evaluator, config["world_size"])

    def fit(self, train_data, valid_data=None, *args, **kwargs):
        result = super().fit(train_data, valid_data, *args, **kwargs)
        if not self.config["single_spec"]:
            dist.barrier()  # rank 0 has written its last checkpoint
        return result

    def _map_reduce(self, result, num_sample):
        return result  # already the metrics of all processes' rows


class CandidateScoringMixin:
    """Sampled evaluation from ``CandidateEvalDataLoader``: each sample's candidates scored from
    one encoding of its sequence (``model.score_candidates``), into the matrix (or, for value
    metrics, the rows) RecBole's evaluator reads from its own loader.

    RecBole's matrix is [users, items], -inf but for the 1 + N candidates: its evaluator then
    ranks, fills and sums whole catalogue rows, which costs more than the model at 20k items
    and grows with the catalogue. When the metrics read only the ranks of the positives (rec.topk:
    NDCG, Hit, MRR, Recall, Precision, MAP) and each user has one sample, the evaluator gets
    the [users, 1 + N] candidate scores instead, the positive in column 0 and a repeated
    negative's copies -inf: the same ranks, hence the same metrics (tested against RecBole's
    path; only exactly equal scores of two different items could be ordered differently)."""

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
        register = self.eval_collector.register
        one_each = torch.equal(positive_u, torch.arange(len(positive_u)))
        if one_each and not any(
            register.need(k) for k in ("rec.items", "rec.meanrank", "rec.score")
        ):
            # only ranks are read (NDCG, Hit, MRR, ...): the candidates' columns are enough
            compact = candidate_scores_compact(data[CANDIDATES], scores)
            return interaction, compact, positive_u, torch.zeros_like(positive_u)
        return (
            interaction,
            candidate_scores_matrix(batch, scores, self.tot_item_num),
            positive_u,
            positive_i,
        )


class AdamBetasMixin:
    """Adam's (and AdamW's) betas from our models' ``adam_betas``: RecBole builds Adam with
    torch's default (0.9, 0.999); the SASRec paper's code uses beta2 = 0.98. ``adam_fused``:
    torch's fused kernel, which updates each parameter in one pass; on long-tailed data a batch
    holds few positions and the update of the whole item table is a large part of every step
    (the shapes benchmark, docs/results.md)."""

    def _build_optimizer(self, **kwargs):
        learner = kwargs.get("learner", self.learner)
        if learner.lower() not in ("adam", "adamw"):
            return super()._build_optimizer(**kwargs)
        lr = kwargs.get("learning_rate", self.learning_rate)
        betas = tuple(self.config["adam_betas"])
        fused = {"fused": True} if self.config["adam_fused"] else {}
        params = list(kwargs.get("params", self.model.parameters()))
        if self.config["sparse_item_updates"]:
            tables = {
                id(m.weight)
                for m in self.model.modules()
                if isinstance(m, torch.nn.Embedding) and m.sparse
            }
            sparse = [p for p in params if id(p) in tables]
            dense = [p for p in params if id(p) not in tables]
            return ItemSparseAdam(dense, sparse, lr=lr, betas=betas, **fused)
        cls = torch.optim.Adam if learner.lower() == "adam" else torch.optim.AdamW
        return cls(
            params,
            lr=lr,
            weight_decay=kwargs.get("weight_decay", self.weight_decay),
            betas=betas,
            **fused,
        )


class ItemSparseAdam:
    """Adam whose cost does not grow with the catalogue (``sparse_item_updates``).

    With dense Adam every step reads and writes the whole item table, its gradient and its two
    moment tables (four [items, D] arrays), however few items the batch used: at 200k items this
    is most of a step's time. Here parameters with a sparse gradient (the item table, looked up
    with ``sparse=True``) get torch's ``SparseAdam``, which updates the rows a batch used, and
    their moments, only ("lazy" Adam: a row's moments decay only when the row is used, so
    rarely used items move more than dense Adam would move them); every other parameter gets
    torch's Adam. The two have one learning rate and betas; RecBole's trainer sees one optimiser
    (``step``, ``zero_grad``, ``param_groups``, ``state_dict``, ``load_state_dict``: what it
    and GradScaler call)."""

    def __init__(self, dense, sparse, lr: float, betas: tuple[float, float], **dense_options):
        self.dense = torch.optim.Adam(dense, lr=lr, betas=betas, **dense_options)
        self.sparse = torch.optim.SparseAdam(sparse, lr=lr, betas=betas) if sparse else None
        self.optimizers = [self.dense] + ([self.sparse] if self.sparse else [])

    @property
    def param_groups(self) -> list[dict]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for opt in self.optimizers:
            opt.step()
        return loss

    def state_dict(self) -> dict:
        return {
            "dense": self.dense.state_dict(),
            "sparse": self.sparse and self.sparse.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"dense", "sparse"}:
            raise ValueError(
                "this optimiser state is not sparse_item_updates' (a checkpoint trained with "
                "sparse_item_updates=False); resume it with the same setting"
            )
        self.dense.load_state_dict(state["dense"])
        if self.sparse is not None:
            self.sparse.load_state_dict(state["sparse"])


@functools.cache
def get_trainer(model_type, model_name: str) -> type:
    """RecBole's trainer class for the model, writing and reading safe checkpoints (and, for our
    models, scoring sampled evaluation from one encoding per sequence)."""
    base = recbole.utils.get_trainer(model_type, model_name.removeprefix(BUILTIN_PREFIX))
    mixins = (DistributedMixin, CheckpointMixin)
    if is_ours(get_model(model_name)):
        mixins = (CandidateScoringMixin, AdamBetasMixin, *mixins)
    return type(base.__name__, (*mixins, base), {"__module__": __name__})
