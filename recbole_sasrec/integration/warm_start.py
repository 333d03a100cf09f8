"""Training that starts from yesterday's model: ``init_from`` a checkpoint, on a grown log.

A catalogue changes between two trainings: new items, new users, new interactions, sometimes new
attribute values (a new brand). ``init_from: saved/SASRec-....pth`` builds the model for today's
data as usual, then fills it from the checkpoint:

- every weight that does not depend on the catalogue (attention, feed-forward, LayerNorms,
  positions) is copied; it must have the same shape (same ``hidden_size``, ``n_layers``,
  ``inner_size``, ``MAX_ITEM_LIST_LENGTH``, ...);
- a table whose rows a vocabulary numbers (the item ids, each selected token feature's values:
  the modules' ``vocabulary_rows``) is copied row by row, matched by token through the
  vocabularies the checkpoint stores (``fingerprint.data_fingerprint``). A row of a token the
  checkpoint never saw keeps its fresh initialisation, except a new item's id row in a model
  with ``selected_features``: it starts at zero, so that the new item's vector is its attributes'
  alone, as for an item added after training (``Recommender.add_items``). Tokens the new data no
  longer has are dropped;
- what the data decides (each item's attribute values, the floats' mean and std: the modules'
  ``data_buffers``) is today's.

``init_shrink`` (lambda) and ``init_perturb`` (sigma) make every copied parameter, rows
included, ``lambda * yesterday's + sigma * a fresh initialisation`` ("shrink and perturb", Ash &
Adams, NeurIPS 2020): a network warm-started at a converged point tends to stay in its basin and
generalise worse than one trained from scratch on the grown data; shrinking the weights toward
zero and adding a little of the initialiser's noise keeps most of what was learned while letting
training leave that basin. By default (0.8, 0.01): on Beauty a plain copy (1.0, 0.0) stopped
below the model trained from scratch on the grown log, and these did not (docs/results.md).

The optimiser starts afresh (Adam's moments at zero, ``learning_rate`` as configured), and so do
the epoch count and early stopping: yesterday's moments describe yesterday's rows and gradients,
and a checkpoint saved at its best epoch carries the moments of that epoch, not of a finished run.
To continue one run where it stopped on the same data, RecBole's ``resume_checkpoint`` is the
tool; ``init_from`` is for new data.

Refused, before any data is loaded, naming both values: a checkpoint of another model, another
``hidden_size`` or other ``selected_features``; after the model is built, any weight of another
shape, naming it.
"""

from __future__ import annotations

from logging import getLogger
from typing import Any

import numpy as np
import torch

from ..core.keys import ConfigError, Key, number
from .checkpoint import first_few, load_checkpoint

KEY = "init_from"


# shrink and perturb by default: chosen on Beauty's validation NDCG@10 (seed 2020: 0.3, 0.5 and
# 0.8 tried, 0.8 reached the from-scratch run's best soonest and ended above it; seeds 1 and 2
# confirmed it), against a plain copy that stayed below the from-scratch run (docs/results.md)
SHRINK, PERTURB = 0.8, 0.01


def _needs_init_from(config, key: str, default: float) -> str | None:
    if config[key] == default or config[KEY] is not None:
        return None
    return (
        f"{key}={config[key]!r} acts on the weights init_from copies, and init_from is None; "
        f"allowed: init_from naming a checkpoint, or {key} left at its default {default}"
    )


KEYS = (
    Key(
        KEY,
        None,
        "a checkpoint of the same model (hidden size, features) to start from on a grown log: "
        "weights copied, item and attribute rows matched by token, new rows fresh; None: a new "
        "model",
        "str",
        lambda v: v is None or (isinstance(v, str) and v != ""),
        "must be the path of a checkpoint written by recbole_sasrec, or None",
        "path of a checkpoint, or None",
    ),
    number(
        "init_shrink",
        SHRINK,
        "with init_from: each copied parameter multiplied by this before training (shrink and "
        "perturb); 1.0 with init_perturb 0.0: yesterday's weights as they are",
        closed=(False, True),
        high=1.0,
        relation=lambda c: _needs_init_from(c, "init_shrink", SHRINK),
    ),
    number(
        "init_perturb",
        PERTURB,
        "with init_from: this much of a fresh initialisation added to each copied parameter "
        "(shrink and perturb); 0.0: none",
        closed=(True, False),
        relation=lambda c: _needs_init_from(c, "init_perturb", PERTURB),
    ),
)
# keys that must be equal for yesterday's weights to mean the same today, checked by name before
# the data loads (the shapes of the rest are checked weight by weight)
SAME = ("model", "hidden_size", "selected_features")


def read(config) -> dict[str, Any] | None:
    """The checkpoint ``init_from`` names (None without it), checked against ``config``."""
    path = config[KEY]
    if path is None:
        return None
    try:
        checkpoint = load_checkpoint(path)
    except ConfigError as error:
        raise ConfigError(f"{KEY}={path!r}: {error}") from None
    saved = checkpoint.get("config") or {}
    for key in SAME:
        was, now = saved.get(key), config[key]
        if key == "selected_features":
            was, now = list(was or []), list(now or [])
        if was != now:
            raise ConfigError(
                f"{KEY}={path!r} was trained with {key}={was!r}, and this run has {key}={now!r}; "
                f"allowed: a checkpoint of the same {', '.join(SAME)}, or {key}={was!r}"
            )
    vocabularies = (checkpoint.get("data") or {}).get("vocabularies")
    if not vocabularies:
        raise ConfigError(
            f"{KEY}={path!r} records no vocabularies (written before recbole_sasrec stored "
            f"them), so its rows cannot be matched to today's items; allowed: a checkpoint "
            f"written by this version (retrain once, then start from it)"
        )
    return checkpoint


def apply(checkpoint: dict[str, Any], model: torch.nn.Module, dataset, config) -> dict[str, str]:
    """Fill ``model`` (built for ``dataset``) from ``checkpoint`` as the module says; a line per
    vocabulary table saying how many rows were kept and how many are new (also logged)."""
    path, old = config[KEY], checkpoint["state_dict"]
    vocabularies = checkpoint["data"]["vocabularies"]
    rows, data = {}, set()
    for prefix, module in model.named_modules():
        at = f"{prefix}." if prefix else ""
        for name, field in getattr(module, "vocabulary_rows", {}).items():
            rows[at + name] = dataset.iid_field if field is None else field
        data.update(at + name for name in getattr(module, "data_buffers", ()))
    state, parameters = model.state_dict(), {name for name, _ in model.named_parameters()}
    shrink, perturb = config["init_shrink"], config["init_perturb"]
    # (yesterday's values [*], fresh values [*]) -> where a parameter starts; None: a copy
    blended = None if (shrink, perturb) == (1.0, 0.0) else lambda o, f: shrink * o + perturb * f
    report, wrong = {}, []
    for key, now in state.items():
        if key in data:
            continue
        blend = blended if key in parameters else None  # buffers are copied as they are
        if key not in old:
            wrong.append(f"{key}: not in the checkpoint")
        elif key in rows:
            report[key] = _match_rows(
                now, old[key], vocabularies, rows[key], dataset, config, blend
            )
        elif old[key].shape != now.shape:
            wrong.append(f"{key}: {list(old[key].shape)} in the checkpoint, {list(now.shape)} now")
        else:  # state_dict's tensors share the parameters' storage
            now.copy_(old[key] if blend is None else blend(old[key].to(now), now))
    if wrong:
        raise ConfigError(
            f"{KEY}={path!r}: {len(wrong)} weight(s) do not fit the model built now: "
            f"{first_few(wrong)}; "
            f"allowed: the configuration the checkpoint was trained with (n_layers, inner_size, "
            f"MAX_ITEM_LIST_LENGTH, ... as training wrote them)"
        )
    for key, line in report.items():
        getLogger().info(f"{KEY}: {key}: {line}")
    if blended is not None:
        getLogger().info(
            f"{KEY}: every copied parameter is {shrink:g} x the checkpoint's + {perturb:g} x a "
            f"fresh initialisation (init_shrink, init_perturb)"
        )
    return report


def _match_rows(
    now: torch.Tensor, old: torch.Tensor, vocabularies, field, dataset, config, blend=None
) -> str:
    """Copy into ``now`` [N', D] (in place) the rows of ``old`` [N, D] whose tokens ``field``'s
    vocabularies share (through ``blend`` with their fresh values, when given); the rest stay as
    initialised (a new item's id row zeroed when the model has attributes). Returns what was
    done, in words."""
    if field not in vocabularies:
        raise ConfigError(
            f"{KEY}={config[KEY]!r} records no vocabulary of {field!r} (it has "
            f"{sorted(vocabularies)}); allowed: a checkpoint trained with the same fields"
        )
    if old.shape[1:] != now.shape[1:]:
        raise ConfigError(
            f"{KEY}={config[KEY]!r}: rows of {field!r} are {list(old.shape[1:])} wide in the "
            f"checkpoint and {list(now.shape[1:])} now; allowed: the same hidden_size"
        )
    was = vocabularies[field]
    if len(was) != len(old):
        raise ConfigError(
            f"{KEY}={config[KEY]!r}: its vocabulary of {field!r} holds {len(was)} tokens and its "
            f"table {len(old)} rows; the file is inconsistent"
        )
    position = {token: i for i, token in enumerate(was)}
    tokens = [str(t) for t in dataset.field2id_token[field]]
    found = np.array([position.get(t, -1) for t in tokens])  # [N'] old row or -1
    kept = np.nonzero(found >= 0)[0]
    new = np.nonzero(found < 0)[0]
    zeroed = field == dataset.iid_field and bool(config["selected_features"])
    with torch.no_grad():
        at = torch.as_tensor(kept, device=now.device)
        rows = old[torch.as_tensor(found[kept])].to(now.device, now.dtype)  # [K, D]
        now[at] = rows if blend is None else blend(rows, now[at])
        if zeroed and len(new):
            now[torch.as_tensor(new, device=now.device)] = 0.0
    start = "zero (attributes alone)" if zeroed else "freshly initialised"
    return (
        f"{len(kept) - 1} of {len(tokens) - 1} {field} rows from the checkpoint, {len(new)} new "
        f"({start}), {len(was) - 1 - (len(kept) - 1)} of its {len(was) - 1} no longer in the data"
    )
