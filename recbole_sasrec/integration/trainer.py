"""RecBole's trainers, with safe checkpoints for every model and, for ours, sampled evaluation
from one encoding per sequence, our optimiser and several processes.

RecBole's trainer pickles its ``Config`` into every checkpoint and reads checkpoints back with a
plain ``torch.load``: on torch >= 2.6 its best-model testing and ``resume_checkpoint`` fail, and
with ``weights_only=False`` a crafted file runs code. ``CheckpointMixin`` writes and reads
``checkpoint.py``'s plain-data format, with the fingerprint of the training data.
"""

from __future__ import annotations

import functools
import os
import secrets

import recbole.utils
from recbole.utils import set_color

from ..data.sampled_eval import CandidateScoringMixin
from .checkpoint import load_checkpoint, load_weights, remove_stale_temporaries, save_checkpoint
from .distributed import DistributedMixin
from .fingerprint import data_fingerprint
from .optim import OptimiserMixin
from .registry import BUILTIN_PREFIX, get_model, is_ours, model_name


class CheckpointMixin:
    """The three places where RecBole's ``Trainer`` writes or reads a checkpoint."""

    data_fingerprint: dict | None = None

    def __init__(self, config, model):
        super().__init__(config, model)
        self.saved_model_file = unique_name(self.saved_model_file)
        if config["single_spec"] or config["local_rank"] == 0:
            remove_stale_temporaries(os.path.dirname(self.saved_model_file))

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
            load_weights(self.model, checkpoint["state_dict"], checkpoint_file)
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
        load_weights(self.model, checkpoint["state_dict"], resume_file)
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


def unique_name(path: str) -> str:
    """RecBole's checkpoint name (model and second) with a random suffix: two runs started in
    the same second in one folder never write, or test, one file."""
    stem, suffix = os.path.splitext(path)
    while True:
        candidate = f"{stem}-{secrets.token_hex(3)}{suffix}"
        if not os.path.exists(candidate):
            return candidate


def get_trainer(model_type, model: str | type) -> type:
    """RecBole's trainer class for the model (a name or a class), writing and reading safe
    checkpoints; for our models also scoring sampled evaluation from one encoding, our
    optimiser keys and several processes."""
    model_class = get_model(model)
    return _trainer(model_type, model_class, model_name(model_class))


@functools.cache
def _trainer(model_type, model_class: type, name: str) -> type:
    base = recbole.utils.get_trainer(model_type, name.removeprefix(BUILTIN_PREFIX))
    mixins = (DistributedMixin, CheckpointMixin)
    if is_ours(model_class):
        mixins = (CandidateScoringMixin, OptimiserMixin, *mixins)
    return type(base.__name__, (*mixins, base), {"__module__": __name__})
