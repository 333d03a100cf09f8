"""RecBole's trainers, able to read their own checkpoints on torch >= 2.6, and scoring sampled
evaluation from one encoding per sequence for our models.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and RecBole's checkpoints pickle the
``Config``: ``Trainer.evaluate(load_best_model=True)`` and ``Trainer.resume_checkpoint`` raise
``UnpicklingError``. The checkpoints are files the user's own run wrote, so we load them in full.
"""

from __future__ import annotations

import functools
from typing import Any

import recbole.utils
import torch
from recbole.utils import EvaluatorType

from .config import BUILTIN_PREFIX, get_model
from .dataloader import CANDIDATES, candidate_labelled_scores, candidate_scores_matrix
from .keys import is_ours


def load_checkpoint(path: str, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by a RecBole trainer (the user's own file)."""
    return torch.load(path, map_location=map_location, weights_only=False)


class CheckpointLoadingMixin:
    """Overrides the two places where RecBole's ``Trainer`` calls ``torch.load``."""

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
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(
                f"checkpoint {resume_file} is of model {checkpoint['config']['model']}, "
                f"not {self.config['model']}: loading its state_dict may fail"
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


class CandidateScoringMixin:
    """Sampled evaluation from ``CandidateEvalDataLoader``: each sample's candidates scored from
    one encoding of its sequence (``model.score_candidates``), into the matrix (or, for value
    metrics, the rows) RecBole's evaluator reads from its own loader."""

    def _neg_sample_batch_eval(self, batched_data):
        interaction = batched_data[0]
        if CANDIDATES not in interaction:
            return super()._neg_sample_batch_eval(batched_data)
        data = interaction.to(self.device)
        scores = self.model.score_candidates(data, data[CANDIDATES])  # [rows, 1 + N]
        _, _, positive_u, positive_i = batched_data
        if self.config["eval_type"] == EvaluatorType.VALUE:
            labelled, flat = candidate_labelled_scores(
                (data, None, positive_u, positive_i), scores, self.config["LABEL_FIELD"]
            )
            return labelled, flat, positive_u, positive_i
        matrix = candidate_scores_matrix(
            (data, None, positive_u, positive_i), scores, self.tot_item_num
        )
        return interaction, matrix, positive_u, positive_i


@functools.cache
def get_trainer(model_type, model_name: str) -> type:
    """RecBole's trainer class for the model, with checkpoint loading that works on torch >= 2.6
    (and, for our models, sampled evaluation from one encoding per sequence)."""
    base = recbole.utils.get_trainer(model_type, model_name.removeprefix(BUILTIN_PREFIX))
    mixins = (CheckpointLoadingMixin,)
    if is_ours(get_model(model_name)):
        mixins = (CandidateScoringMixin, *mixins)
    return type(base.__name__, (*mixins, base), {"__module__": __name__})
