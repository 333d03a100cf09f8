"""SASRec and a LightSANs-style model for RecBole, trained at every position."""

from .checks import ConfigError
from .config import BUILTIN_PREFIX, MODELS, Config, get_model
from .convert import ConvertError, convert
from .lightsans import LightSANs
from .quick_start import create_dataset, load_data_and_model, load_model, run, run_recbole
from .recommend import Recommendation, Recommender, recommend
from .sasrec import SASRec

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
    "load_data_and_model",
    "load_model",
    "recommend",
    "run",
    "run_recbole",
]
