"""What every search does before its first trial: resolve the model (once), parse and check the
search space and the fixed keys, and build the fixed configuration as every trial will build it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.keys import ConfigError
from ..integration.config import BUNDLED, Config
from ..integration.inputs import config_file_names
from ..integration.known_keys import check_keys
from ..integration.registry import BUILTIN_PREFIX, MODELS, get_model
from .results import SearchResult
from .space import Param, load_search_space

ALGOS = ("exhaustive", "random", "bayes")
DEFAULT_OUTPUT_FILE = "hyper_example.result"  # RecBole's run_hyper.py default


@dataclass
class Search:
    """A search ready to run: the model, the search space, the fixed configuration."""

    model: str
    model_class: type
    params: list[Param]
    config: Config  # the fixed configuration, built once before any trial
    config_dict: dict[str, Any]  # the fixed keys every trial gets (data_path made absolute)
    config_file_list: list[str] | None
    dataset: str
    algo: str

    def result(self, tool: str, output_file: str | os.PathLike | None) -> SearchResult:
        """An empty record of this search, written to ``output_file`` after every trial."""
        return SearchResult(
            model=self.model,
            dataset=self.dataset,
            tool=tool,
            algo=self.algo,
            valid_metric=self.config["valid_metric"],
            bigger=self.config["valid_metric_bigger"],
            output_file=output_file,
        )


def infer_model(params_file: str | os.PathLike) -> str | None:
    """The model a params file is for, from its name: ``hyper/sasrec.test`` and
    ``hyper/sasrec-short.test`` -> ``SASRec`` (the stem up to its first ``-`` or ``_``, matched
    case-insensitively against this package's models); None if no match."""
    stem = re.split(r"[-_]", Path(params_file).stem.lower())[0]
    return next((name for name in MODELS if name.lower() == stem), None)


def resolve_model(params_file: str | os.PathLike, model: str | None) -> str:
    """The model to tune: ``model`` if given, else the one the file name names. ``ConfigError``
    if neither names one, or if both do and they disagree (never silently the wrong model)."""
    inferred = infer_model(params_file)
    if model is None:
        if inferred is None:
            stems = ", ".join(f"{name.lower()}[-<anything>].test" for name in MODELS)
            raise ConfigError(
                f"params_file={str(params_file)!r} does not name a model of recbole_sasrec, and "
                f"no model was given; allowed: a file named like {stems} (-> "
                f"{', '.join(MODELS)}), or --model=<name>"
            )
        return inferred
    get_model(model)  # ConfigError for an unknown name
    if inferred is not None and model != inferred:
        raise ConfigError(
            f"model={model!r} disagrees with params_file={str(params_file)!r}, which is "
            f"{inferred}'s search space; allowed: model={inferred!r} or no model, or a params "
            f"file not named after another model (e.g. {BUILTIN_PREFIX}SASRec needs a copy of "
            f"the file under another name)"
        )
    return model


def prepare_search(
    params_file: str | os.PathLike,
    model: str | None,
    dataset: str,
    config_file_list: list[str] | None,
    config_dict: dict[str, Any] | None,
    algo: str,
) -> Search:
    """Everything that can fail before the first trial: model, params file, fixed keys, algo,
    and the fixed configuration itself (built once, as every trial will build it)."""
    if algo not in ALGOS:
        raise ConfigError(f"algo={algo!r} is not supported; allowed: {', '.join(ALGOS)}")
    model = resolve_model(params_file, model)
    model_class = get_model(model)
    params = load_search_space(params_file, model_class)
    # config_dict holds defaults that each trial's own values override.
    config_dict = dict(config_dict or {})
    check_keys(config_dict, model_class, where=lambda key: f"config_dict/command line key {key!r}")
    if algo == "exhaustive":
        continuous = [p for p in params if p.grid() is None]
        if continuous:
            raise ConfigError(
                f"{params_file}: {continuous[0].where}: exhaustive search needs a finite grid; "
                f"allowed: choice or quniform lines, or algo random or bayes"
            )
    # Config files and data paths relative to this directory must still resolve from Ray's
    # per-trial working directories.
    files = config_file_names(config_file_list)
    config_file_list = [os.path.abspath(f) for f in files] if files else None
    config = Config(
        model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict
    )
    if dataset != BUNDLED or "data_path" in config.external_config_dict:  # else RecBole's copy
        given = {**config.internal_config_dict, **config.external_config_dict}["data_path"]
        config_dict["data_path"] = os.path.abspath(given)
    return Search(model, model_class, params, config, config_dict, config_file_list, dataset, algo)


def finish(result: SearchResult, display_file: str | os.PathLike | None) -> SearchResult:
    """Draw ``display_file`` (when given) and print the best trial."""
    if display_file is not None:
        result.plot(display_file)
    result.print_best()
    return result
