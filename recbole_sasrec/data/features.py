"""Item attributes through RecBole's own data path: the ``.item`` atomic file, ``load_col`` and
``selected_features`` (the key RecBole's SASRecF reads), loaded and remapped by RecBole.

Refused before the interactions are read, naming the key and what is allowed: a selected field
the ``.item`` file lacks or ``load_col`` leaves out, or no ``.item`` file. Refused once read: items
of the log without a row in the ``.item`` file, which RecBole's ``filter_inter_by_user_or_item``
(True by default) would silently drop with all their interactions.
"""

from __future__ import annotations

import os

import numpy as np
from recbole.data.dataset import Dataset

from ..core.keys import ConfigError


def check_selected_features(config) -> None:
    """``ConfigError`` unless every ``selected_features`` field will be loaded from the
    ``.item`` file."""
    selected = list(config["selected_features"] or [])
    if not selected:
        return
    path = os.path.join(config["data_path"], f"{config['dataset']}.item")
    here = f"selected_features={selected!r}"
    if not os.path.isfile(path):
        raise ConfigError(
            f"{here} are item fields, and there is no item file {path}; allowed: a .item atomic "
            f"file beside the .inter file (python -m recbole_sasrec convert --format attributes "
            f"writes one), or selected_features: []"
        )
    with open(path, encoding=config["encoding"] or "utf-8-sig") as f:
        header = f.readline().rstrip("\r\n").lstrip("\ufeff")
    fields = [h.split(":")[0] for h in header.split(config["field_separator"])]
    iid = config["ITEM_ID_FIELD"]
    missing = [name for name in selected if name not in fields or name == iid]
    if missing:
        others = [f for f in fields if f != iid]
        raise ConfigError(
            f"{here}: {missing} not in {path} (its fields: {others}); allowed: fields of the "
            f"item file other than {iid!r}"
        )
    load_col = config["load_col"]
    if load_col is None:  # every column of every file
        return
    wanted = [iid, *selected]
    loaded = load_col.get("item") if isinstance(load_col, dict) else None
    left_out = [name for name in wanted if loaded is None or name not in loaded]
    if left_out:
        now = "no 'item' entry" if loaded is None else f"item: {list(loaded)}"
        raise ConfigError(
            f"{here}: load_col ({now}) does not load {left_out} from {path}; allowed: load_col "
            f"with item: {wanted + [f for f in (loaded or []) if f not in wanted]} (or load_col: "
            f"~ to load every column)"
        )


class ItemFeatureReader(Dataset):
    """RecBole's ``Dataset``, checking the item fields before loading and refusing to drop
    interactions of items the ``.item`` file does not list."""

    def _load_data(self, token, dataset_path):
        check_selected_features(self.config)
        super()._load_data(token, dataset_path)

    def _filter_inter_by_user_or_item(self):
        if self.config["filter_inter_by_user_or_item"] is True and self.item_feat is not None:
            listed = self.item_feat[self.iid_field].to_numpy()
            logged = self.inter_feat[self.iid_field].to_numpy()
            unlisted = ~np.isin(logged, listed)
            if unlisted.any():
                items = list(dict.fromkeys(logged[unlisted].tolist()))
                shown = ", ".join(repr(str(i)) for i in items[:5])
                more = f" and {len(items) - 5} more" if len(items) > 5 else ""
                path = os.path.join(self.dataset_path, f"{self.dataset_name}.item")
                raise ConfigError(
                    f"{path} has no row for {len(items)} item(s) of the interactions ({shown}"
                    f"{more}); RecBole's filter_inter_by_user_or_item=True would drop their "
                    f"{int(unlisted.sum())} interactions; allowed: a row for every item (its "
                    f"attributes may be empty), or filter_inter_by_user_or_item: False to keep "
                    f"them with no attributes"
                )
        super()._filter_inter_by_user_or_item()
