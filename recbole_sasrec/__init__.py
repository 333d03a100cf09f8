"""SASRec and a LightSANs-style model for RecBole, trained at every position.

Layers, each importing only those below it:

    core/         configuration keys and their errors, batch fields, atomic file writes
    models/       shared layers, the base both models share, SASRec, LightSANs, the losses
    data/         RecBole's split and windows without per-prefix rows, batching, evaluation
                  loaders, convert, download
    integration/  RecBole's Config, model registry, trainer, optimiser, distributed training,
                  checkpoints, quick start
    inference/    recommendations, attention maps and exported artifacts of a saved model
    tuning/       hyperopt and Ray Tune

The names below are imported when first used, so that ``recbole_sasrec.inference.artifact``
(serving an exported model) runs without RecBole or torch.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "ConfigError": "core.keys",
    "ConvertError": "data.convert",
    "convert": "data.convert",
    "Config": "integration.config",
    "create_dataset": "integration.quick_start",
    "load_data_and_model": "integration.quick_start",
    "load_model": "integration.quick_start",
    "run": "integration.quick_start",
    "run_recbole": "integration.quick_start",
    "BUILTIN_PREFIX": "integration.registry",
    "MODELS": "integration.registry",
    "get_model": "integration.registry",
    "get_trainer": "integration.trainer",
    "Recommendation": "inference.recommender",
    "Recommender": "inference.recommender",
    "recommend": "inference.recommender",
    "Artifact": "inference.artifact",
    "export": "inference.export",
    "LightSANs": "models",
    "SASRec": "models",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'recbole_sasrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
