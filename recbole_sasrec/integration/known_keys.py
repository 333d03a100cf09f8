"""Which configuration keys exist: those a model declares and those RecBole reads.

RecBole accepts any key and ignores the ones nothing reads, so ``n_layer: 1`` trains with the
default ``n_layers``. ``check_keys`` refuses such a key, naming the closest known one, before any
data is loaded: ``Config`` for every key the user gives, the tuning code for a params file.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import recbole
import yaml
from recbole.utils import argument_list

from ..core.keys import ConfigError
from .registry import is_ours, model_keys

RECBOLE_PROPERTIES = Path(recbole.__file__).parent / "properties"

# Keys RecBole reads that no argument list or property file of RecBole's declares: the
# distributed set-up ``recbole.quick_start.run`` writes, and the one-file configuration key.
RECBOLE_RUNTIME_KEYS = frozenset(
    {
        "model",
        "dataset",
        "config_files",
        "nproc",
        "world_size",
        "ip",
        "port",
        "offset",
        "local_rank",
    }
)
# Ours, for every model run through this package: torch.distributed's rendezvous (``env://``
# under torchrun; ``tcp://ip:port`` by default).
OUR_RUNTIME_KEYS = frozenset({"init_method"})
# Keys that say which further keys are deliberate: listed there, they are not checked.
EXTRA_KEYS = "extra_keys"


def yaml_keys(path: str | os.PathLike) -> set[str]:
    """The top-level keys of a yaml file (none when it does not exist)."""
    if not os.path.isfile(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return set(yaml.safe_load(f) or {})


@functools.cache
def recbole_keys() -> frozenset[str]:
    """Keys RecBole itself reads for any model: its general, training, evaluation and dataset
    arguments (``recbole/utils/argument_list.py``), ``recbole/properties/overall.yaml`` (trainer
    keys such as ``enable_amp``, ``shuffle``, ``worker``), the data set defaults
    (``properties/dataset/sample.yaml``) and the quick-start files."""
    lists = (
        argument_list.general_arguments
        + argument_list.training_arguments
        + argument_list.evaluation_arguments
        + argument_list.dataset_arguments
    )
    files = [RECBOLE_PROPERTIES / "overall.yaml", RECBOLE_PROPERTIES / "dataset" / "sample.yaml"]
    files += sorted((RECBOLE_PROPERTIES / "quick_start_config").glob("*.yaml"))
    found = set(lists) | RECBOLE_RUNTIME_KEYS | OUR_RUNTIME_KEYS | {EXTRA_KEYS}
    for path in files:
        found |= yaml_keys(path)
    return frozenset(found)


def own_keys(model_class: type) -> set[str]:
    """The keys the model reads: ours declare them, RecBole's list them in ``<Name>.yaml``."""
    if is_ours(model_class):
        return {key.name for key in model_keys(model_class)}
    return yaml_keys(RECBOLE_PROPERTIES / "model" / f"{model_class.__name__}.yaml")


def is_alias(model_class: type, key: str, value: Any) -> bool:
    """Whether our model accepts ``key`` as another name of one of its keys (LightSANs'
    ``num_layers``): its ``resolve_aliases`` then writes a key into the final configuration."""
    if not is_ours(model_class):
        return False
    final: dict[str, Any] = {}
    try:
        model_class.resolve_aliases(final, {key: value})
    except ConfigError:
        return True  # it recognised the key (and disliked the value, which is reported later)
    return bool(final)


def check_keys(
    keys: dict[str, Any],
    model_class: type,
    where: Callable[[str], str] = repr,
    extra: Iterable[str] = (),
) -> None:
    """``ConfigError`` for the first key of ``keys`` that neither the model nor RecBole reads.

    ``keys`` maps each key to a sample value (for the alias probe); ``where(key)`` says where the
    key was given (file and line, the command line); ``extra`` are keys the user declared
    deliberate (``extra_keys``), accepted as they are.
    """
    name = model_class.__name__
    own = own_keys(model_class)
    known = own | recbole_keys() | set(extra)
    for key, value in keys.items():
        if key in known or is_alias(model_class, key, value):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where(key)}: {key!r} is not a key {name} or RecBole reads{hint} Allowed: "
            f"{name}'s keys ({', '.join(sorted(own))}) and aliases it accepts, RecBole's "
            f"general, training, evaluation and dataset keys (recbole/utils/argument_list.py, "
            f"recbole/properties/), or a key listed in {EXTRA_KEYS!r} to pass it deliberately"
        )
