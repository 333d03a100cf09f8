"""A model too large for the machine, refused from its configuration before it is allocated.

``hidden_size=10**9`` or ``n_layers=10**6`` would otherwise end, after the data has been
prepared, in an allocation error (or the kernel's out-of-memory killer). The estimate counts the
parameters every model of this package has, so it never exceeds the real count:

    item table       n_items x hidden_size
    positions        MAX_ITEM_LIST_LENGTH x hidden_size
    each block       4 hidden_size^2 (queries, keys, values, output) + 2 hidden_size x inner_size

and, for RecBole's models, their item table (``embedding_size``, else ``hidden_size``). Training
needs more (gradients, Adam's two moments): a model that passes may still not train.
"""

from __future__ import annotations

from typing import Any

import psutil
import torch

from ..core.keys import ConfigError
from .registry import is_ours

BYTES = 4  # float32


def _size(config, key: str) -> int:
    value = config[key] if key in config else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parameter_estimate(config, n_items: int) -> tuple[int, dict[str, Any]]:
    """``(parameters at least, {key: value} they follow from)`` for ``n_items`` items (the pad
    included; 0 when the data is not read yet)."""
    if is_ours(config.model_class):
        names = ("hidden_size", "inner_size", "n_layers", "MAX_ITEM_LIST_LENGTH")
        keys = {k: _size(config, k) for k in names}
        H, inner, N, L = keys.values()
        return (n_items + L) * H + N * (4 * H * H + 2 * H * inner), keys
    key = "embedding_size" if _size(config, "embedding_size") else "hidden_size"
    return n_items * _size(config, key), {key: _size(config, key)}


def device_memory(device: torch.device) -> tuple[int, str]:
    """``(bytes, what)``: the GPU's memory for a CUDA device, else the machine's RAM."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory, f"GPU {device}"
    return psutil.virtual_memory().total, "RAM"


def check_model_memory(config, n_items: int = 0) -> None:
    """``ConfigError`` when the parameters alone would not fit in the memory of the run's
    device, naming the keys, the item count and the estimate."""
    count, keys = parameter_estimate(config, n_items)
    need = count * BYTES
    have, what = device_memory(config["device"])
    if need <= have:
        return
    given = ", ".join(f"{k}={v}" for k, v in keys.items())
    items = f" and the {n_items} items of data set {config['dataset']!r}" if n_items else ""
    raise ConfigError(
        f"{given}{items} make a model of at least {count:.3g} parameters, {_gib(need)} in "
        f"float32, more than the {_gib(have)} of this machine's {what}; allowed: smaller "
        f"values of these keys (training needs several times the parameters' memory)"
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"
