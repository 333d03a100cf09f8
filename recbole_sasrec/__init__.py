"""SASRec and a LightSANs-style model for RecBole, trained at every position.

Layers, each importing only those below it:

    core/         configuration keys and their errors, batch fields, atomic file writes
    models/       shared layers, the base both models share, SASRec, LightSANs, the losses
    data/         RecBole's split and windows without per-prefix rows, batching, evaluation
                  loaders, convert, download
    integration/  RecBole's Config, model registry, trainer, optimiser, distributed training,
                  checkpoints, quick start
    inference/    recommendations and attention maps from a saved model
    tuning/       hyperopt and Ray Tune
"""

from .core.keys import ConfigError
from .data.convert import ConvertError, convert
from .inference.recommender import Recommendation, Recommender, recommend
from .integration.config import Config
from .integration.quick_start import (
    create_dataset,
    load_data_and_model,
    load_model,
    run,
    run_recbole,
)
from .integration.registry import BUILTIN_PREFIX, MODELS, get_model
from .integration.trainer import get_trainer
from .models import LightSANs, SASRec

__all__ = [
    "BUILTIN_PREFIX",
    "MODELS",
    "Config",
    "ConfigError",
    "ConvertError",
    "LightSANs",
    "Recommendation",
    "Recommender",
    "SASRec",
    "convert",
    "create_dataset",
    "get_model",
    "get_trainer",
    "load_data_and_model",
    "load_model",
    "recommend",
    "run",
    "run_recbole",
]
