"""The data a checkpoint was trained on: its fingerprint, and the check made when it is loaded.

The fingerprint records the token -> id maps of users and items (the rows of the embedding), a
hash of the interaction file and the vocabularies of the items and selected token features (what
``init_from`` matches rows by). Loading refuses a checkpoint whose users or items no longer map to
the same ids (a re-converted data set, a changed catalogue), naming both; a changed file with the
same users and items is reported and allowed.
"""

from __future__ import annotations

import hashlib
import os
from logging import getLogger
from typing import Any

from ..core.keys import ConfigError


def _tokens_hash(tokens) -> str:
    digest = hashlib.sha256()
    for token in tokens:
        digest.update(str(token).encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


def file_hash(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def data_fingerprint(dataset, config) -> dict[str, Any]:
    """Users and items as the model knows them (token -> id maps) and the interaction file;
    ``vocabularies``: the tokens of the items and of the selected token features, in id order
    (what a model started from this one on a grown catalogue maps its rows by: ``init_from``)."""
    inter_file = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    users = dataset.field2id_token[dataset.uid_field]
    items = dataset.field2id_token[dataset.iid_field]
    numbered = [dataset.iid_field, *(config["selected_features"] or [])]
    prepared = getattr(dataset, "prepared", None)
    if prepared is not None:  # each process holds its users only: the preparation names them
        inter_file = os.path.join(config["data_path"], "partitions.json")
    return {
        "dataset": config["dataset"],
        "inter_file": os.path.abspath(inter_file),
        "inter_sha256": file_hash(inter_file),
        "users": len(users) - 1 if prepared is None else prepared["users"],
        "items": len(items) - 1,
        "user_ids": _tokens_hash(users) if prepared is None else prepared["prepared_id"],
        "item_ids": _tokens_hash(items),
        "vocabularies": {
            field: [str(token) for token in dataset.field2id_token[field]]
            for field in numbered
            if field in dataset.field2id_token  # token fields; floats have none
        },
    }


def check_fingerprint(saved: dict | None, dataset, config, model_file: str) -> None:
    """``ConfigError`` when the data's users or items no longer map to the ids the checkpoint
    was trained with; a warning when only the file changed."""
    if not saved:
        getLogger().warning(f"{model_file} records no data fingerprint: the data is not checked")
        return
    now = data_fingerprint(dataset, config)
    changed = [key for key in ("user_ids", "item_ids") if saved.get(key) != now[key]]
    if changed:

        def describe(f: dict) -> str:
            return (
                f"{f['users']} users (ids {f['user_ids']}), {f['items']} items "
                f"(ids {f['item_ids']}), file {f['inter_file']} (sha256 {f['inter_sha256']})"
            )

        raise ConfigError(
            f"model_file={model_file!r} was trained on {describe(saved)}, but data set "
            f"{config['dataset']!r} is now {describe(now)}: its "
            f"{' and '.join(c.split('_')[0] + 's' for c in changed)} no longer map to the ids the "
            f"model learned; allowed: the data it was trained on (data_path=... to point at a "
            f"copy), or a model trained on the current data"
        )
    if saved.get("inter_sha256") != now["inter_sha256"]:
        getLogger().warning(
            f"{now['inter_file']} has changed since {model_file} was trained (same users and "
            f"items): histories are read from the file as it is now"
        )
