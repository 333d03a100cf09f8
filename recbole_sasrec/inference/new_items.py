"""New items for a trained model with item attributes: their file read through the model's
vocabularies (``data.new_items``), their vectors computed by the model (``ItemFeatures.vectors``),
and the attribute tables an export writes for the artifact to do the same in NumPy.

A new item's vector is its attributes' part alone: it has no trained id row (the id part is
zero). A model trained with ``item_id_dropout`` > 0 has learned to score items from that part
alone; without it, every trained item's score leaned on its id row too (docs/design.md).

Ranked among known items, new items lose: a known item the user is likely to want has an id row
that adds to its score, a new item's score holds its attributes' part only. Among themselves,
new items rank well by it (docs/results.md, "Cold start"). ``boost``, a number added to new
items' scores when ranking, trades the two: the more new items reach the top k, the fewer known
ones. It is a score offset, not a vector, so an approximate (HNSW) index cannot rank with it.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..core.keys import ConfigError
from ..data.new_items import Field, NewItems, read_new_items
from ..integration.registry import is_ours
from .attribute_tables import AttributeTables


def features_of(model):
    """The model's ``ItemFeatures``, or None (no attributes, or not one of our models)."""
    if not is_ours(type(model)):
        return None
    return getattr(model.embedding, "features", None)


def fields_of(features, dataset) -> list[Field]:
    """The selected fields as the model was trained with them (``data.new_items.Field``)."""
    fields = []
    for name in features.names:
        ftype = dataset.field2type[name].value
        if name in features.floats:
            fields.append(Field(name, ftype, width=features.tables[name].in_features))
        else:
            fields.append(Field(name, ftype, vocabulary=dataset.field2token_id[name]))
    return fields


def read_for_model(
    model_file: str,
    config,
    model,
    dataset,
    path: str | os.PathLike,
    catalogue: dict[str, int],
    format: str | None = None,
) -> NewItems:
    """The new items of ``path`` for ``model`` (refused, naming ``model_file``, if it has no
    item attributes), read with the data set's item field, separators and encoding."""
    features = features_of(model)
    if features is None:
        raise ConfigError(
            f"{path}: model_file={model_file!r} ({config['model']}) reads no item attributes "
            f"(selected_features: {list(config['selected_features'] or [])}), so a new item "
            f"has nothing to compute its vector from; allowed: a model trained with "
            f"selected_features (best also with item_id_dropout > 0)"
        )
    if rescaled := _rescaled(config, features):
        raise ConfigError(
            f"{path}: model_file={model_file!r} read the float field(s) {rescaled} as RecBole "
            f"rescaled them (normalize_all, normalize_field or discretization), a scale a new "
            f"item's raw values cannot be put on; allowed: a model trained without rescaling "
            f"its selected float fields"
        )
    return read_new_items(
        path,
        dataset.iid_field,
        fields_of(features, dataset),
        catalogue,
        format,
        config["field_separator"],
        config["seq_separator"],
        config["encoding"],
    )


def _rescaled(config, features) -> list[str]:
    """Float fields RecBole rescaled by the training data's range before the model saw them."""
    scaled = set(config["normalize_field"] or []) | set(config["discretization"] or {})
    if config["normalize_all"]:
        scaled |= set(features.floats)
    return [name for name in features.floats if name in scaled]


@torch.no_grad()
def vectors_for_model(model, new: NewItems) -> np.ndarray:
    """The new items' vectors [n, D] (float32): their attributes' part, no id row."""
    features = features_of(model)
    values = {name: torch.from_numpy(v) for name, v in new.values.items()}
    return features.vectors(values).float().cpu().numpy()


def attribute_tables(model, dataset, config) -> AttributeTables | None:
    """What an exported folder needs to add items (``attribute_tables.py``): None for a model
    without attributes, or one whose float fields cannot take new values (rescaled by RecBole,
    or a checkpoint that predates their training mean and std)."""
    features = features_of(model)
    if features is None or _rescaled(config, features):
        return None
    arrays = {}
    for name in features.names:
        arrays[f"{name}.weight"] = features.tables[name].weight.detach().float().cpu().numpy()
        if name in features.floats:
            try:
                mean, std = features.statistics(name)
            except ConfigError:
                return None
            arrays[f"{name}.mean"], arrays[f"{name}.std"] = mean.cpu().numpy(), std.cpu().numpy()
    return AttributeTables(
        dataset.iid_field,
        config["field_separator"],
        config["seq_separator"],
        config["encoding"] or "utf-8",
        fields_of(features, dataset),
        arrays,
    )
