"""Checks made once the data is loaded, before training: what evaluation ranks fits the
catalogue, and the split gives the rows it should. Each a ``ConfigError`` naming the key, the
value and what is allowed, instead of a failure after the first epoch."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..core.keys import ConfigError
from ..data.split import min_interactions


def check_catalogue(config, dataset) -> None:
    """``ConfigError`` when the catalogue is smaller than what evaluation ranks (``topk``, or a
    sampled mode's negatives), before training rather than after its first epoch."""
    items, cut = dataset.item_num - 1, max(config["topk"])  # id 0 is the pad
    for phase, mode in config["eval_args"]["mode"].items():
        sampled = mode[3:] if mode[:3] in ("uni", "pop") else None
        if sampled is not None and int(sampled) > items - 1:
            raise ConfigError(
                f"eval_args mode {phase}={mode!r} draws {sampled} negatives, but data set "
                f"{config['dataset']!r} has {items} items; allowed: at most {items - 1} "
                f"(uni{items - 1}), or mode 'full'"
            )
        ranked = items if sampled is None else int(sampled) + 1
        if cut > ranked:
            raise ConfigError(
                f"topk={config['topk']} ranks {cut} items, but eval_args mode {phase}={mode!r} "
                f"on data set {config['dataset']!r} ranks {ranked}; allowed: topk up to {ranked}"
            )


def check_evaluation_rows(config, dataset, valid_data, test_data) -> None:
    """``ConfigError`` when the split leaves no validation or no test rows although it should
    make them (every user too short), with the users counted by length, instead of training
    to ``best valid: None``."""
    split = config["eval_args"]["split"]
    mode, value = next(iter(split.items()))
    wanted = {"valid": True, "test": True}
    if mode == "LS":
        wanted = {"valid": value != "test_only", "test": value != "valid_only"}
    for part, loader in (("valid", valid_data), ("test", test_data)):
        if not wanted[part] or (loader is not None and len(loader._dataset) > 0):
            continue
        per_user = getattr(dataset, "interactions_per_user", lambda: None)()
        if per_user is None:  # RecBole's keeps the samples: a user's first interaction is none
            per_user = np.bincount(dataset.inter_feat[dataset.uid_field].numpy()) + 1
            per_user[per_user == 1] = 0
        lengths = Counter(per_user[per_user > 0].tolist())
        counts = ", ".join(f"{n}: {lengths[n]}" for n in sorted(lengths)[:8])
        hint = (
            f"a user needs at least {min_interactions(value, part)} interactions to get a "
            f"{part} row"
            if mode == "LS"
            else "no user's interactions reach that part"
        )
        raise ConfigError(
            f"data set {config['dataset']!r} gives no {part} rows with eval_args split "
            f"{split}: {hint}, and its users have these numbers of interactions (count: users) "
            f"{counts or 'none'}; allowed: data with longer histories, or another split"
        )
