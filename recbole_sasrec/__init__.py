"""SASRec and a LightSANs-style model for RecBole, trained at every position."""

from .checks import ConfigError
from .config import BUILTIN_PREFIX, MODELS, Config, get_model
from .lightsans import LightSANs
from .quick_start import create_dataset, load_data_and_model, run_recbole
from .sasrec import SASRec

__all__ = [
    "BUILTIN_PREFIX",
    "MODELS",
    "Config",
    "ConfigError",
    "LightSANs",
    "SASRec",
    "create_dataset",
    "get_model",
    "load_data_and_model",
    "run_recbole",
]
