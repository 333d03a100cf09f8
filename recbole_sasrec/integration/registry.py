"""Which models this package serves, and everything a model brings: its keys, its data set.

RecBole resolves a model by *name* inside ``recbole.model``, so a plug-in called ``SASRec`` would
get RecBole's class; ``get_model`` resolves names here first. A model's keys are those its own
modules declare and those of the data path and training that serve it.
"""

from __future__ import annotations

import recbole.utils
import torch
from recbole.model.abstract_recommender import AbstractRecommender

from ..core.keys import ConfigError, Key
from ..data import batching, full_sort, windows
from ..data.dataset import AllPositionDataset
from ..models import LightSANs, SASRec, SelfAttentiveRecommender
from . import allocator, optim, presets, warm_start

MODELS: dict[str, type[SelfAttentiveRecommender]] = {"SASRec": SASRec, "LightSANs": LightSANs}
BUILTIN_PREFIX = "RecBole."  # "RecBole.SASRec" is RecBole's own SASRec, for side-by-side runs
# Keys of the data path and of training that every one of our models reads, in the order the
# property files list them after the model's own.
SERVING_KEYS: tuple[Key, ...] = (
    *windows.KEYS,
    *batching.KEYS,
    *full_sort.KEYS,
    *optim.KEYS,
    *allocator.KEYS,
    *warm_start.KEYS,
    *presets.KEYS,
)


def is_ours(model_class) -> bool:
    return isinstance(model_class, type) and issubclass(model_class, SelfAttentiveRecommender)


def model_keys(model_class: type[SelfAttentiveRecommender]) -> tuple[Key, ...]:
    """Every key our model reads, with its default: the model's, then the serving keys."""
    return (*model_class.KEYS, *SERVING_KEYS)


def dataset_class(model_class: type) -> type | None:
    """Our models' data set (all-position windows); None: RecBole chooses."""
    return AllPositionDataset if is_ours(model_class) else None


def get_model(name: str | type) -> type:
    """The model class for ``name``: ours (SASRec, LightSANs), else RecBole's built-in;
    ``"RecBole.<Name>"`` always RecBole's."""
    if isinstance(name, type):
        if not issubclass(name, AbstractRecommender):
            raise ConfigError(
                f"model={name!r} is a class but not a RecBole recommender; allowed: a subclass "
                f"of recbole.model.abstract_recommender.AbstractRecommender, or a model name"
            )
        return name
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"model={name!r} is neither a model name nor a model class; allowed: "
            f"{', '.join(MODELS)}, a RecBole model name such as GRU4Rec, or a model class"
        )
    if name in MODELS:
        return MODELS[name]
    # Importing RecBole's sequential models imports its SINE, which turns autograd's anomaly
    # detection on for the whole process (recbole/model/sequential_recommender/sine.py): every
    # later training step records stack traces, several times slower. The caller's setting stays.
    anomaly, check_nan = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    try:
        return recbole.utils.get_model(name.removeprefix(BUILTIN_PREFIX))
    except (ValueError, AttributeError, ImportError):  # ImportError: exlib needs lightgbm
        raise ConfigError(
            f"model={name!r} is neither a model of recbole_sasrec nor of RecBole; allowed: "
            f"{', '.join(MODELS)}, or a RecBole model name such as GRU4Rec or {BUILTIN_PREFIX}SASRec"
        ) from None
    finally:
        torch.autograd.set_detect_anomaly(anomaly, check_nan)


def model_name(model_class: type) -> str:
    """The name under which ``get_model`` finds ``model_class`` again."""
    name = model_class.__name__
    if name in MODELS and MODELS[name] is not model_class and not is_ours(model_class):
        return BUILTIN_PREFIX + name
    return name
