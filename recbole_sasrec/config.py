"""Model resolution and configuration: this package's models first, then RecBole's.

RecBole's ``Config`` and quick-start functions resolve a model by *name* inside ``recbole.model``
and always merge ``recbole/properties/model/<Name>.yaml``: a plug-in called ``SASRec`` would get
RecBole's SASRec class and its yaml. This module's ``Config`` resolves names here first and reads
our ``properties/<Name>.yaml`` in place of RecBole's, so no key of RecBole's model file leaks in.

Priority, highest first: command line > ``config_dict`` > ``config_file_list`` > our model yaml >
RecBole's internal defaults (overall, dataset, sequential quick-start files).
"""

from __future__ import annotations

import os
from typing import Any

import recbole
import recbole.config
import recbole.utils
from recbole.utils import InputType, ModelType

from .base import SelfAttentiveRecommender
from .checks import ConfigError
from .lightsans import LightSANs
from .sasrec import SASRec

MODELS: dict[str, type[SelfAttentiveRecommender]] = {"SASRec": SASRec, "LightSANs": LightSANs}
BUILTIN_PREFIX = "RecBole."  # model="RecBole.SASRec" is RecBole's own SASRec, for side-by-side runs


def get_model(name: str | type) -> type:
    """The model class for ``name``: ours (SASRec, LightSANs), else RecBole's built-in.

    ``"RecBole.<Name>"`` always means RecBole's built-in model of that name.
    """
    if isinstance(name, type):
        return name
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


def is_ours(model_class: type) -> bool:
    return issubclass(model_class, SelfAttentiveRecommender)


class Config(recbole.config.Config):
    """RecBole's ``Config`` with this package's model resolution, property files and checks.

    Also fills in the negative sampler RecBole's defaults get wrong for sequential models: with
    ``loss_type: CE`` and no ``train_neg_sample_args`` given, it is None (RecBole would raise);
    BPR/BCE keep RecBole's default of one uniform negative.
    """

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
            if "train_neg_sample_args" not in external and loss_type == "CE":
                final["train_neg_sample_args"] = None
            if "load_col" not in external and not has_recbole_dataset_file(self.dataset):
                # RecBole's default for data sets it does not ship loads user and item ids only,
                # and the sequential split needs the timestamp: load every column instead.
                final["load_col"] = None
        if is_ours(self.model_class):
            self.model_class.resolve_aliases(final, external)
            self.model_class.check_config(final)
            self._check_negative_sampling(final, loss_type)
        super()._set_default_parameters()
        if is_ours(self.model_class) and loss_type in ("BPR", "BCE"):
            # RecBole knows BPR only; both need (positive, negative) pairs from the loader.
            final["MODEL_INPUT_TYPE"] = InputType.PAIRWISE

    @staticmethod
    def _check_negative_sampling(final: dict[str, Any], loss_type: str) -> None:
        args = final.get("train_neg_sample_args")
        distribution = args.get("distribution") if isinstance(args, dict) else args
        sampling = distribution not in (None, "none", "None")
        if loss_type == "CE":
            if sampling:
                raise ConfigError(
                    f"train_neg_sample_args={args!r} cannot be used with loss_type='CE' (it scores "
                    f"every item); allowed: train_neg_sample_args=None, or loss_type BPR/BCE"
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
