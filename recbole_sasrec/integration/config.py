"""RecBole's ``Config`` with this package's model resolution, key declarations and checks.

RecBole's ``Config`` resolves a model by name inside ``recbole.model`` and always merges
``recbole/properties/model/<Name>.yaml``. Ours resolves names through ``registry`` first and
takes our models' defaults from their key declarations in place of RecBole's file, so no key of
RecBole's SASRec leaks in. Priority, highest first: command line > ``config_dict`` >
``config_file_list`` > our defaults > RecBole's internal defaults.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import recbole
import recbole.config
import torch
import yaml
from recbole.utils import InputType, ModelType

from ..core.keys import ConfigError, check_all
from ..models.losses import CRITERIA
from . import checks
from .inputs import config_file_names, parse_command_line, parse_value, plain_numbers
from .known_keys import EXTRA_KEYS, check_keys, yaml_keys
from .memory import check_model_memory
from .registry import MODELS, get_model, is_ours, model_keys, model_name

BUNDLED = "ml-100k"  # the data set the recbole wheel carries (recbole/dataset_example/)


def bundled_data_path() -> str:
    """The folder of RecBole's own copy of ml-100k."""
    return os.path.join(recbole.__path__[0], "dataset_example", BUNDLED)


def has_recbole_dataset_file(dataset: str) -> bool:
    """Whether RecBole ships ``properties/dataset/<dataset>.yaml`` (ml-100k does)."""
    path = os.path.join(recbole.__path__[0], "properties", "dataset", f"{dataset}.yaml")
    return os.path.isfile(path)


class Config(recbole.config.Config):
    """RecBole's ``Config`` with this package's model resolution, property files and checks.

    ``Config(model, dataset, config_file_list, config_dict, command_line=())``: the arguments
    and priorities of RecBole's ``Config``, except that the command line is what the caller
    passes in ``command_line`` (``--key=value`` strings; the entry points pass theirs), never
    ``sys.argv``: a library call does not read the process's arguments.

    Also, before anything is loaded: every key given must be one the model or RecBole reads
    (``known_keys.check_keys``), or be listed in ``extra_keys``; every value is checked against
    its declaration (``core.keys.check_all``); values are typed without ``eval``; a config file
    that does not exist or is not YAML is named with its line; the device is chosen without
    setting ``CUDA_VISIBLE_DEVICES`` and without joining a process group (``distributed.join``).

    A loss that draws its own negatives (CE, SSM, gBCE) gets ``train_neg_sample_args: None``
    when the key is not given (RecBole's default would raise); BPR/BCE keep RecBole's one
    uniform negative.
    """

    def __init__(
        self,
        model: str | type | None = None,
        dataset: str | None = None,
        config_file_list: list[str] | None = None,
        config_dict: dict[str, Any] | None = None,
        *,
        command_line: Sequence[str] = (),
    ):
        self._command_line = list(command_line)
        self._key_sources: dict[str, str] = {}
        super().__init__(model, dataset, config_file_list, config_dict)
        check_model_memory(self)  # before any data is read: the model without its item table

    # ---- where keys come from --------------------------------------------------------------
    def _convert_config_dict(self, config_dict):
        return {
            key: parse_value(value) if isinstance(value, str) else plain_numbers(value)
            for key, value in config_dict.items()
        }

    def _load_config_files(self, file_list):
        merged: dict[str, Any] = {}
        for file in config_file_names(file_list):
            if not os.path.isfile(file):
                raise ConfigError(f"config file {file!r} does not exist")
            with open(file, encoding="utf-8") as f:
                try:
                    loaded = yaml.load(f.read(), Loader=self.yaml_loader)
                except yaml.YAMLError as error:
                    mark = getattr(error, "problem_mark", None)
                    where = f", line {mark.line + 1}" if mark is not None else ""
                    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
                    raise ConfigError(
                        f"config file {file!r}{where}: not valid YAML ({problem}); allowed: "
                        f"one 'key: value' per line"
                    ) from None
            if loaded is None:
                continue
            if not isinstance(loaded, dict):
                raise ConfigError(
                    f"config file {file!r} holds a {type(loaded).__name__}, not 'key: value' lines"
                )
            merged.update(loaded)
            self._key_sources.update({key: f"config file {file!r}: key {key!r}" for key in loaded})
        return merged

    def _load_variable_config_dict(self, config_dict):
        if config_dict is not None and not isinstance(config_dict, dict):
            raise ConfigError(f"config_dict={config_dict!r} must be a dict of keys and values")
        self._key_sources.update({key: f"config_dict key {key!r}" for key in config_dict or {}})
        return super()._load_variable_config_dict(config_dict)

    def _load_cmd_line(self):
        parsed = parse_command_line(self._command_line)
        self._key_sources.update({key: f"command line --{key}" for key in parsed})
        return parsed

    def _check_keys(self, model_class: type, dataset: str) -> None:
        extra = self.external_config_dict.get(EXTRA_KEYS) or []
        if isinstance(extra, str):
            extra = [extra]
        if not isinstance(extra, list) or not all(isinstance(k, str) for k in extra):
            raise ConfigError(f"{EXTRA_KEYS}={extra!r} must be a list of key names")
        dataset_file = os.path.join(recbole.__path__[0], "properties", "dataset", f"{dataset}.yaml")
        check_keys(
            self.external_config_dict,
            model_class,
            where=lambda key: self._key_sources.get(key, repr(key)),
            extra=[*extra, *yaml_keys(dataset_file)],
        )

    # ---- model, files, defaults -----------------------------------------------------------
    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            if "model" not in self.external_config_dict:
                raise ConfigError(
                    "model is not set; allowed: " + ", ".join(MODELS) + " or a RecBole model"
                )
            model = self.external_config_dict["model"]
        model_class = get_model(model)
        if dataset is None:
            if "dataset" not in self.external_config_dict:
                raise ConfigError("dataset is not set; give dataset='ml-100k' or a data set name")
            dataset = self.external_config_dict["dataset"]
        if not isinstance(dataset, str) or not dataset:
            raise ConfigError(f"dataset={dataset!r} must be the name of a data set, e.g. 'ml-100k'")
        self._check_keys(model_class, dataset)
        return model_name(model_class), model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        if is_ours(model_class):
            # A name no RecBole yaml has, so RecBole's own <Name>.yaml is not merged; our
            # declared defaults take its place (none of them is set by RecBole's later files).
            super()._load_internal_config_dict(
                f"{model_class.__module__}.{model}", model_class, dataset
            )
            defaults = {key.name: key.default for key in model_keys(model_class) if key.ours}
            self.internal_config_dict.update(copy.deepcopy(defaults))
        else:
            super()._load_internal_config_dict(model_class.__name__, model_class, dataset)

    def _get_final_config_dict(self):
        # RecBole replaces eval_args whole, so {'mode': 'uni100'} would silently drop the
        # sequential split and time ordering; we merge it over the internal eval_args instead.
        final = super()._get_final_config_dict()
        internal, external = self.internal_config_dict, self.external_config_dict
        if isinstance(internal.get("eval_args"), dict) and isinstance(
            external.get("eval_args"), dict
        ):
            final["eval_args"] = {**internal["eval_args"], **external["eval_args"]}
        return final

    def _set_default_parameters(self):
        final, external = self.final_config_dict, self.external_config_dict
        ours, loss = is_ours(self.model_class), CRITERIA.get(final.get("loss_type"))
        if self.model_class.type == ModelType.SEQUENTIAL:
            if "train_neg_sample_args" not in external and loss and not loss.recbole_negative:
                final["train_neg_sample_args"] = None
            if "load_col" not in external and not has_recbole_dataset_file(self.dataset):
                # RecBole's default for data sets it does not ship loads user and item ids only,
                # and the sequential split needs the timestamp: load every column instead.
                final["load_col"] = None
        if ours:
            self.model_class.resolve_aliases(final, external)
            check_all((*model_keys(self.model_class), *checks.OURS), final)
        sequential = checks.SEQUENTIAL if self.model_class.type == ModelType.SEQUENTIAL else ()
        check_all(checks.TRAINING + checks.SHARED + sequential, final)
        checks.check_metrics(final)
        checks.check_eval_args(final)
        checks.check_columns(final)
        super()._set_default_parameters()
        self._own_ml_100k()
        checks.check_evaluation(final)
        if ours and loss.recbole_negative:
            # RecBole knows BPR only; both need (positive, negative) pairs from the loader.
            final["MODEL_INPUT_TYPE"] = InputType.PAIRWISE

    def _own_ml_100k(self) -> None:
        """RecBole reads its bundled ml-100k whatever ``data_path`` says; a ``data_path`` the user
        gave is read instead, or refused when it holds no ml-100k (never ignored)."""
        given = self.external_config_dict.get("data_path")
        if self.dataset != BUNDLED or given is None:
            return
        if not isinstance(given, (str, os.PathLike)):
            raise ConfigError(f"data_path={given!r} must be a folder (a path)")
        folder = os.path.join(os.fspath(given), BUNDLED)
        readable = (f"{BUNDLED}.inter", "partitions.json")  # the file, or a prepared log
        if not any(os.path.isfile(os.path.join(folder, name)) for name in readable):
            raise ConfigError(
                f"data_path={os.fspath(given)!r} holds no {os.path.join(folder, BUNDLED)}.inter; "
                f"allowed: a data_path holding {BUNDLED}/{BUNDLED}.inter (or a log prepared by "
                f"python -m recbole_sasrec prepare), or no data_path for RecBole's own copy "
                f"({bundled_data_path()})"
            )
        self.final_config_dict["data_path"] = folder

    def _init_device(self):
        """RecBole's device choice without its side effect and with CPU processes:

        * one process: ``cuda:<gpu_id>`` (RecBole sets the process's ``CUDA_VISIBLE_DEVICES`` to
          ``gpu_id`` and uses ``cuda``: the same GPU), or CPU when ``gpu_id`` is empty,
          ``use_gpu`` is False or CUDA is absent;
        * several (``local_rank`` set, by ``run(nproc=...)`` or ``run.py`` under torchrun): the
          process's device is ``cuda:<gpu_id[local_rank]>`` or CPU (RecBole hard-codes CUDA);
          only rank 0 logs. ``distributed.join`` enters the process group.
        """
        final = self.final_config_dict
        gpu_id = final.get("gpu_id")
        if isinstance(gpu_id, (tuple, list)):
            gpu_id = ",".join(map(str, gpu_id))
        final["gpu_id"] = gpu_id = "" if gpu_id is None else str(gpu_id)
        try:
            ids = [int(g) for g in gpu_id.split(",") if g.strip()]
        except ValueError:
            raise ConfigError(
                f"gpu_id={gpu_id!r} is not a GPU index or a comma-separated list of them; "
                f"allowed: e.g. '0', '0,1', or '' for CPU"
            ) from None
        cuda = bool(ids) and final.get("use_gpu") is not False and torch.cuda.is_available()
        if "local_rank" not in final:
            final["single_spec"] = True
            final["local_rank"] = 0
            final["device"] = torch.device("cuda", ids[0]) if cuda else torch.device("cpu")
            return
        local_rank, world = final["local_rank"], final.get("world_size")
        nproc = final.get("nproc") or 1
        if isinstance(world, bool) or not isinstance(world, int) or world < 1:
            raise ConfigError(f"world_size={world!r} must be the number of processes, >= 1")
        if cuda and len(ids) < nproc:
            raise ConfigError(
                f"gpu_id={gpu_id!r} names {len(ids)} GPU(s) for nproc={nproc} processes; "
                f"allowed: one GPU id per process (e.g. gpu_id='0,1' for 2), or gpu_id='' (CPU)"
            )
        rank = local_rank + (final.get("offset") or 0)
        final["single_spec"] = False
        final["device"] = torch.device("cuda", ids[local_rank]) if cuda else torch.device("cpu")
        if rank != 0:
            final.update(state="error", show_progress=False, verbose=False)
