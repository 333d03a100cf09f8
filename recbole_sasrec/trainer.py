"""RecBole's trainers, able to read their own checkpoints on torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and RecBole's checkpoints pickle the
``Config``: ``Trainer.evaluate(load_best_model=True)`` and ``Trainer.resume_checkpoint`` raise
``UnpicklingError``. The checkpoints are files the user's own run wrote, so we load them in full.
"""

from __future__ import annotations

import functools
from typing import Any

import recbole.utils
import torch

from .config import BUILTIN_PREFIX


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


@functools.cache
def get_trainer(model_type, model_name: str) -> type:
    """RecBole's trainer class for the model, with checkpoint loading that works on torch >= 2.6."""
    base = recbole.utils.get_trainer(model_type, model_name.removeprefix(BUILTIN_PREFIX))
    return type(base.__name__, (CheckpointLoadingMixin, base), {"__module__": __name__})
