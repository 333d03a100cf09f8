"""Item attributes in the item representation, on both sides of the model.

With ``selected_features`` (RecBole's key, as its SASRecF reads it) an item's vector is its id's
learned row plus the sum, over the selected fields, of its attributes' vectors:

    e_i = E_id[i] + sum_f a_f(i)                                        [D]
    a_f(i) = mean of E_f[v] over the tokens v of field f                token, token_seq
             ((x_f(i) - mean_f) / std_f) @ W_f                          float [1], float_seq [S]

The same e_i enters the encoder and is what each position is scored against, so two items with
the same interactions but different attributes score differently, and an item that has no
trained id row (``item_id_dropout``; a new item) still has a vector from its attributes alone.
Summing keeps the score an inner product with one [N, D] table: full softmax, sampled losses,
ONNX export and top-k search work unchanged. (What was tried and chosen on validation:
docs/design.md, "Item attributes".)

The feature values are buffers of the model (and so of its checkpoint): the model scores with
the attributes it trained with, whatever file is read later. Row 0, the pad item, is zero. So are
each float field's training mean and std, with which ``vectors`` standardises the floats of items
added after training (new items: their vector is the attribute part alone, no id row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from recbole.utils import FeatureType
from torch import nn

from ..core.keys import ConfigError, Key, number

TOKENS = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)
FLOATS = (FeatureType.FLOAT, FeatureType.FLOAT_SEQ)


def _names(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _needs_features(config, key: str) -> str | None:
    if config[key] == 0 or config["selected_features"]:
        return None
    return (
        f"{key}={config[key]!r} acts on item attributes, and selected_features is empty; "
        f"allowed: 0, or selected_features naming the .item file's fields"
    )


KEYS = (
    Key(
        "selected_features",
        [],
        "item fields of the `.item` file whose attributes join the item's id on both sides "
        "(token, token_seq, float, float_seq); []: the id alone",
        "list",
        lambda v: _names(v) and len(set(v)) == len(v),
        "must be a list of distinct field names of the .item file, e.g. [categories, brand]",
        "list of `.item` fields",
    ),
    number(
        "item_id_dropout",
        0.0,
        "training: each step leaves out this share of the items' id rows, so that an item's "
        "attributes alone can score it (new items)",
        0,
        1,
        closed=(True, False),
        must="must be a probability in [0, 1)",
        relation=lambda c: _needs_features(c, "item_id_dropout"),
    ),
    number(
        "attribute_loss_weight",
        0.0,
        "training: weight of an auxiliary loss predicting each target's attributes from the "
        "state (multi-label, scored against the attribute vectors); 0: off",
        0,
        closed=(True, False),
        must="must be a number >= 0",
        relation=lambda c: _needs_features(c, "attribute_loss_weight"),
    ),
)


class ItemFeatures(nn.Module):
    """Attribute vectors of items, from RecBole's ``item_feat`` (one row per item id).

    ``fields``: (name, type, values, vocabulary) per selected field; values [N] or [N, S]
    (token ids, 0 the pad token; or floats), vocabulary the field's token count (floats: 0).
    """

    def __init__(self, fields: Sequence[tuple[str, FeatureType, torch.Tensor, int]], D: int):
        super().__init__()
        self.names = [name for name, *_ in fields]
        self.floats = [name for name, ftype, *_ in fields if ftype in FLOATS]
        # buffers a checkpoint written before they existed lacks (``_load_from_state_dict``)
        self.optional_buffers = [f"{name}_{s}" for name in self.floats for s in ("mean", "std")]
        # what the data decides (a model started from another one's weights keeps its own:
        # init_from), and the tables whose rows the field's tokens number
        self.data_buffers = [f"{name}_values" for name in self.names] + self.optional_buffers
        self.vocabulary_rows = {
            f"tables.{name}.weight": name for name, ftype, *_ in fields if ftype in TOKENS
        }
        self.tables = nn.ModuleDict()
        for name, ftype, values, vocabulary in fields:
            values = values.reshape(len(values), -1)  # [N, S]
            if ftype in TOKENS:
                self.register_buffer(f"{name}_values", values.long())
                # mean over the item's tokens, pad tokens (id 0) left out of sum and count
                self.tables[name] = nn.EmbeddingBag(vocabulary, D, mode="mean", padding_idx=0)
            else:
                values = values.float()
                real = values[1:]
                mean, std = real.mean(0), real.std(0, unbiased=False).clamp(min=1e-6)  # [S]
                standard = (values - mean) / std
                standard[0] = 0.0  # the pad item
                self.register_buffer(f"{name}_values", standard)
                self.register_buffer(f"{name}_mean", mean)
                self.register_buffer(f"{name}_std", std)
                self.tables[name] = nn.Linear(values.size(1), D, bias=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint written before the floats' statistics were saved: NaN, which ``vectors``
        # refuses (the model scores its own items as before; new items' floats need them)
        for name in self.optional_buffers:
            state_dict.setdefault(prefix + name, torch.full_like(getattr(self, name), torch.nan))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def from_dataset(cls, dataset, names: Sequence[str], D: int) -> ItemFeatures | None:
        """The selected fields of a RecBole data set's ``item_feat``; None when none is."""
        if not names:
            return None
        feat = getattr(dataset, "item_feat", None)
        if feat is not None and not hasattr(feat, "interaction"):  # a data set not yet built
            feat = dataset._dataframe_to_interaction(feat)  # what RecBole's build() makes of it
        loaded = sorted(feat.interaction) if feat is not None else []
        fields = []
        for name in names:
            if name not in loaded or name == dataset.iid_field:
                raise ConfigError(
                    f"selected_features={list(names)!r}: {name!r} is not an item field the "
                    f"data set loaded; allowed: fields of the .item file loaded through "
                    f"load_col's 'item' entry (now: {[f for f in loaded if f != dataset.iid_field]})"
                )
            ftype = dataset.field2type[name]
            if ftype not in TOKENS + FLOATS:
                raise ConfigError(
                    f"selected_features: field {name!r} is {ftype.value}; allowed: token, "
                    f"token_seq, float, float_seq"
                )
            values = feat[name]
            if ftype in FLOATS and values.dim() == (2 if ftype == FeatureType.FLOAT else 3):
                values = values[..., 0]  # RecBole's numerical_features: (value, 1) pairs
            fields.append((name, ftype, values, dataset.num(name) if ftype in TOKENS else 0))
        return cls(fields, D)

    def values(self, name: str) -> torch.Tensor:
        return getattr(self, f"{name}_values")

    def attribute_loss(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """How well states h [N, D] tell their targets' attributes (items [N]): per token field,
        binary cross-entropy of every attribute against h . E_f[v], the field's own vectors
        (DIF-SR's auxiliary task, with the attribute table as the output layer), averaged over
        attributes and fields; the pad token is left out."""
        losses = []
        for name in self.names:
            table = self.tables[name]
            if not isinstance(table, nn.EmbeddingBag):
                continue
            logits = h.float() @ table.weight[1:].float().T  # [N, V - 1]
            labels = torch.zeros_like(logits)
            tokens = self.values(name)[items]  # [N, S]
            rows = torch.arange(len(items), device=h.device)[:, None].expand_as(tokens)
            real = tokens > 0
            labels[rows[real], tokens[real] - 1] = 1.0
            losses.append(F.binary_cross_entropy_with_logits(logits, labels))
        return torch.stack(losses).mean() if losses else h.new_zeros(())

    def _sum(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The sum over fields of their vectors, from each field's values [n, S] (token ids, 0
        the pad; standardised floats) -> [n, D]."""
        out = None
        for name in self.names:
            v = self.tables[name](values[name])  # EmbeddingBag: the mean; Linear: x @ W.T
            out = v if out is None else out + v
        return out

    def forward(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Attribute vectors of items ids [...] -> [..., D]; None: every item, [N, D]."""
        values = {name: self.values(name) for name in self.names}  # [N, S] each
        if ids is not None:
            values = {name: v[ids.reshape(-1)] for name, v in values.items()}  # [n, S]
        out = self._sum(values)
        shape = (len(out),) if ids is None else ids.shape
        return out.view(*shape, -1)

    def vectors(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Attribute vectors [n, D] of items the model has no row for (new items), from their
        values, per selected field [n, S]: token ids of the field's vocabulary (0, the pad,
        left out of the mean: an item without tokens gets the zero vector), or raw floats,
        standardised here with the training mean and std (NaN, a missing value: the training
        mean, as RecBole fills a missing float). The code ``forward`` sums with."""
        missing = [name for name in self.names if name not in values]
        if missing:
            raise ValueError(f"no values of the selected fields {missing}; given {list(values)}")
        standard = dict(values)
        for name in self.floats:
            mean, std = self.statistics(name)
            x = values[name].to(mean.device, torch.float32).reshape(len(values[name]), -1)
            if x.size(1) != self.tables[name].in_features:
                raise ValueError(
                    f"{name}: {x.size(1)} values an item; the model was trained with "
                    f"{self.tables[name].in_features}"
                )
            standard[name] = torch.nan_to_num((x - mean) / std, nan=0.0)
        for name in self.names:
            if name not in self.floats:
                tokens = values[name].to(self.tables[name].weight.device, torch.long)
                standard[name] = tokens.reshape(len(tokens), -1)
        return self._sum(standard)

    def statistics(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Training mean and std [S] of float field ``name``; a ``ConfigError`` if the
        checkpoint predates them."""
        mean, std = getattr(self, f"{name}_mean"), getattr(self, f"{name}_std")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ConfigError(
                f"selected_features: float field {name!r} has no training mean and std in this "
                f"checkpoint (written before they were saved), so a new item's {name} cannot be "
                f"standardised as training did; allowed: a checkpoint trained by this version, or "
                f"a model whose selected_features are token or token_seq fields"
            )
        return mean, std


class ItemVectors:
    """The item table of one step, ``weight`` [N, D], duck-typed as the ``nn.Embedding`` the
    losses read: the id rows (``item_id_dropout``: some left out), plus attribute vectors
    computed once for the step. ``rows(ids)`` looks up a few items without building the whole
    sum's gradient (sparse id updates stay sparse)."""

    def __init__(self, ids: nn.Embedding, attributes: torch.Tensor, keep: torch.Tensor | None):
        self.ids, self.attributes, self.keep = ids, attributes, keep
        self.sparse = ids.sparse

    @property
    def weight(self) -> torch.Tensor:
        table = self.ids.weight
        if self.keep is not None:
            table = table * self.keep[:, None]
        return table + self.attributes

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [...] -> [..., D]."""
        rows = F.embedding(ids, self.ids.weight, sparse=self.sparse)
        if self.keep is not None:
            rows = rows * self.keep[ids].unsqueeze(-1)
        return rows + F.embedding(ids, self.attributes)
