"""Model resolution and configuration: this package's models first, then RecBole's.

RecBole's ``Config`` and quick-start functions resolve a model by *name* inside ``recbole.model``
and always merge ``recbole/properties/model/<Name>.yaml``: a plug-in called ``SASRec`` would get
RecBole's SASRec class and its yaml. This module's ``Config`` resolves names here first and reads
our ``properties/<Name>.yaml`` in place of RecBole's, so no key of RecBole's model file leaks in.

Priority, highest first: command line > ``config_dict`` > ``config_file_list`` > our model yaml >
RecBole's internal defaults (overall, dataset, sequential quick-start files).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from typing import Any

import recbole
import recbole.config
import recbole.utils
import torch
import yaml
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import InputType, ModelType

from .base import SelfAttentiveRecommender
from .checks import ConfigError
from .keys import EXTRA_KEYS, check_keys, is_ours, yaml_keys
from .lightsans import LightSANs
from .losses import PAIRWISE, SAMPLED
from .sasrec import SASRec

MODELS: dict[str, type[SelfAttentiveRecommender]] = {"SASRec": SASRec, "LightSANs": LightSANs}
BUILTIN_PREFIX = "RecBole."  # model="RecBole.SASRec" is RecBole's own SASRec, for side-by-side runs


def get_model(name: str | type) -> type:
    """The model class for ``name``: ours (SASRec, LightSANs), else RecBole's built-in.

    ``"RecBole.<Name>"`` always means RecBole's built-in model of that name.
    """
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
    builtin = name.removeprefix(BUILTIN_PREFIX)
    try:
        return recbole.utils.get_model(builtin)
    except (ValueError, AttributeError, ImportError):  # ImportError: exlib needs lightgbm
        raise ConfigError(
            f"model={name!r} is neither a model of recbole_sasrec nor of RecBole; allowed: "
            f"{', '.join(MODELS)}, or a RecBole model name such as GRU4Rec or {BUILTIN_PREFIX}SASRec"
        ) from None


def model_name(model_class: type) -> str:
    """The name under which ``get_model`` finds ``model_class`` again."""
    name = model_class.__name__
    if name in MODELS and MODELS[name] is not model_class and not is_ours(model_class):
        return BUILTIN_PREFIX + name
    return name


def has_recbole_dataset_file(dataset: str) -> bool:
    """Whether RecBole ships ``properties/dataset/<dataset>.yaml`` (ml-100k does)."""
    path = os.path.join(recbole.__path__[0], "properties", "dataset", f"{dataset}.yaml")
    return os.path.isfile(path)


def parse_value(text: str) -> Any:
    """A command-line value as RecBole types it, without running it: a Python literal
    (``32``, ``0.2``, ``[10, 20]``, ``{'mode': 'uni100'}``, ``None``), ``true``/``false`` in
    any case, else the text itself (RecBole ``eval``s the text, so ``--output=int.result``
    raised AttributeError and ``--x=__import__(...)`` ran)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.lower()
        return True if lowered == "true" else False if lowered == "false" else text


def parse_command_line(args: Sequence[str]) -> dict[str, Any]:
    """``--key=value`` arguments -> {key: value}; ``ConfigError`` for any other argument, and for
    a key given twice with different values."""
    parsed: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep or not key:
            raise ConfigError(
                f"command line argument {arg!r} is not of the form --key=value; allowed: "
                f"--key=value with no spaces around '=' (e.g. --n_layers=3)"
            )
        value = parse_value(value)
        if key in parsed and parsed[key] != value:
            raise ConfigError(f"--{key} is given twice, as {parsed[key]!r} and {value!r}")
        parsed[key] = value
    return parsed


def check_training_keys(final: dict[str, Any]) -> None:
    """Training keys RecBole would accept and then train badly with, or fail on late."""
    for key in ("epochs", "train_batch_size", "eval_batch_size", "stopping_step", "eval_step"):
        value = final.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            why = " (0 would save and test an untrained model)" if key == "epochs" else ""
            raise ConfigError(f"{key}={value!r} must be a positive integer (1, 2, ...){why}")
    lr = final.get("learning_rate")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ConfigError(f"learning_rate={lr!r} must be a number > 0, e.g. 0.001")


def check_eval_keys(final: dict[str, Any]) -> None:
    """The evaluation mode and the metric early stopping reads (after RecBole's own checks
    normalised them): ``uni0`` would rank the positive alone (every metric 1.0), and a
    ``valid_metric`` that is not computed fails only after the first epoch."""
    for phase, mode in final["eval_args"]["mode"].items():
        if isinstance(mode, str) and mode[:3] in ("uni", "pop"):
            n = mode[3:]
            if not n.isdigit() or int(n) < 1:
                raise ConfigError(
                    f"eval_args mode {phase}={mode!r}: {mode[:3]}<N> needs N >= 1 sampled "
                    f"negatives ({mode[:3]}0 ranks the positive alone: every metric 1.0); "
                    f"allowed: full, labeled, uni<N> or pop<N> with N >= 1, e.g. uni100"
                )
    from recbole.evaluator.register import metrics_dict

    topk = final["topk"]
    computed = []
    for metric in (m.lower() for m in final["metrics"]):
        need = getattr(metrics_dict.get(metric), "metric_need", [])
        at_k = any(n in ("rec.items", "rec.topk") for n in need)  # reported as name@k
        computed += [f"{metric}@{t}" for t in topk] if at_k else [metric]
    valid = str(final.get("valid_metric", ""))
    if valid.lower() not in computed:
        raise ConfigError(
            f"valid_metric={valid!r} is not computed from metrics={final['metrics']} and "
            f"topk={topk}; allowed: one of {', '.join(computed[:12])}"
            + (" ..." if len(computed) > 12 else "")
        )


def check_history_exclusion(final: dict[str, Any]) -> None:
    """``eval_exclude_history`` needs full ranking and the rows of all-position training."""
    if not final.get("eval_exclude_history"):
        return
    sampled = {p: m for p, m in final["eval_args"]["mode"].items() if m != "full"}
    if sampled:
        raise ConfigError(
            f"eval_exclude_history=True removes the user's earlier items from a full ranking, "
            f"but eval_args mode is {sampled}; allowed: mode 'full', or eval_exclude_history=False"
        )
    if not final.get("train_all_positions"):
        raise ConfigError(
            "eval_exclude_history=True reads each user's whole history from all-position "
            "training's data set; allowed: train_all_positions=True, or eval_exclude_history=False"
        )


class Config(recbole.config.Config):
    """RecBole's ``Config`` with this package's model resolution, property files and checks.

    ``Config(model, dataset, config_file_list, config_dict, command_line=())``: the arguments
    and priorities of RecBole's ``Config``, except that the command line is what the caller
    passes in ``command_line`` (``--key=value`` strings; the entry points pass theirs), never
    ``sys.argv``: a library call does not read the process's arguments.

    Also, before anything is loaded:
      * every key given (files, ``config_dict``, command line) must be one the model or RecBole
        reads (``keys.check_keys``: a misspelled key names the closest known one), or be
        listed in ``extra_keys``;
      * values are typed without ``eval`` (``parse_value``); a config file that does not exist
        or is not YAML is named with its line;
      * the device is chosen without setting ``CUDA_VISIBLE_DEVICES`` for the process.

    And it fills in the negative sampler RecBole's defaults get wrong for sequential models:
    with ``loss_type: CE`` and no ``train_neg_sample_args`` given, it is None (RecBole would
    raise); BPR/BCE keep RecBole's default of one uniform negative.
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

    # ---- where keys come from --------------------------------------------------------------
    def _convert_config_dict(self, config_dict):
        return {
            key: parse_value(value) if isinstance(value, str) else value
            for key, value in config_dict.items()
        }

    def _load_config_files(self, file_list):
        merged: dict[str, Any] = {}
        for file in file_list or []:
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
            # A name no RecBole yaml has, so RecBole's own <Name>.yaml is not merged; ours
            # takes its place (it sets no key that RecBole's later internal files set).
            super()._load_internal_config_dict(
                f"{model_class.__module__}.{model}", model_class, dataset
            )
            self._update_internal_config_dict(model_class.properties_file())
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
        loss_type = final.get("loss_type")
        if self.model_class.type == ModelType.SEQUENTIAL:
            if "train_neg_sample_args" not in external and loss_type in ("CE", *SAMPLED):
                final["train_neg_sample_args"] = None
            if "load_col" not in external and not has_recbole_dataset_file(self.dataset):
                # RecBole's default for data sets it does not ship loads user and item ids only,
                # and the sequential split needs the timestamp: load every column instead.
                final["load_col"] = None
        if is_ours(self.model_class):
            self.model_class.resolve_aliases(final, external)
            self.model_class.check_config(final)
            self._check_negative_sampling(final, loss_type)
        check_training_keys(final)
        super()._set_default_parameters()
        check_eval_keys(final)
        if is_ours(self.model_class):
            check_history_exclusion(final)
        if is_ours(self.model_class) and loss_type in PAIRWISE:
            # RecBole knows BPR only; both need (positive, negative) pairs from the loader.
            final["MODEL_INPUT_TYPE"] = InputType.PAIRWISE

    def _init_device(self):
        """RecBole's device choice without its side effect and with CPU processes:

        * one process: ``cuda:<gpu_id>`` (RecBole sets the process's ``CUDA_VISIBLE_DEVICES`` to
          ``gpu_id`` and uses ``cuda``: the same GPU), or CPU when ``gpu_id`` is empty,
          ``use_gpu`` is False or CUDA is absent;
        * several (``local_rank`` set, by ``run(nproc=...)`` or ``run.py`` under torchrun): the
          process group is joined with NCCL on CUDA and gloo on CPU (RecBole hard-codes NCCL
          and CUDA), at ``init_method`` (``env://`` under torchrun) or ``tcp://ip:port``; the
          process's device is ``cuda:<gpu_id[local_rank]>`` or CPU; only rank 0 logs.
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
        import torch.distributed as dist

        if not dist.is_initialized():
            init = final.get("init_method") or f"tcp://{final.get('ip')}:{final.get('port')}"
            dist.init_process_group(
                backend="nccl" if cuda else "gloo", init_method=init, rank=rank, world_size=world
            )
        final["single_spec"] = False
        final["device"] = torch.device("cuda", ids[local_rank]) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(final["device"])
        if rank != 0:
            final.update(state="error", show_progress=False, verbose=False)

    @staticmethod
    def _check_negative_sampling(final: dict[str, Any], loss_type: str) -> None:
        args = final.get("train_neg_sample_args")
        distribution = args.get("distribution") if isinstance(args, dict) else args
        sampling = distribution not in (None, "none", "None")
        if loss_type not in PAIRWISE:
            if sampling:
                raise ConfigError(
                    f"train_neg_sample_args={args!r} cannot be used with loss_type={loss_type!r} "
                    f"(CE scores every item; SSM and gBCE draw loss_negatives themselves); "
                    f"allowed: train_neg_sample_args=None, or loss_type BPR/BCE"
                )
            return
        if not sampling:
            raise ConfigError(
                f"loss_type={loss_type!r} needs one negative per target, but "
                f"train_neg_sample_args={args!r}; allowed: {{'distribution': 'uniform', "
                f"'sample_num': 1}} (the default when the key is not given)"
            )
        if args.get("sample_num", 1) != 1:
            raise ConfigError(
                f"train_neg_sample_args.sample_num={args['sample_num']!r}: {loss_type} uses one "
                f"negative per target; allowed: 1"
            )
        if final.get("train_all_positions") and distribution != "uniform":
            raise ConfigError(
                f"train_neg_sample_args.distribution={distribution!r} is not used by all-position "
                f"training, which draws uniform negatives per position; allowed: 'uniform', or "
                f"train_all_positions=False to use RecBole's sampler"
            )
