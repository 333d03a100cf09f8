"""What SASRec and LightSANs share: the encoder loop, training at every position, scoring.

A subclass supplies ``make_attention`` (one block's attention module) and, if its attention
reads positions itself, ``make_positions``; everything RecBole calls (``forward``,
``calculate_loss``, ``predict``, ``full_sort_predict``) lives here once.
"""

from __future__ import annotations

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from ..core.fields import SEGMENT_USERS, SEGMENTS, target_list_field
from ..core.keys import Key, check_all
from .embedding import SequenceEmbedding
from .encoder_keys import KEYS
from .item_features import ItemFeatures, ItemVectors
from .layers import Block, Packed, causal_mask
from .losses import CRITERIA
from .negatives import NegativeSampler


def earlier_items(item_seq, is_target, visible):
    """For each target position (row-major order of is_target [B, T]) the items at the
    positions it sees (visible [B|1, T, T]): pairs (target index [P], item [P]), by target."""
    index = torch.cumsum(is_target.reshape(-1).long(), 0).view_as(is_target) - 1  # [B, T]
    pairs = visible.expand(item_seq.size(0), -1, -1) & is_target[:, :, None]  # [B, T, T]
    b, t, j = pairs.nonzero(as_tuple=True)
    return index[b, t], item_seq[b, j]


class SelfAttentiveRecommender(SequentialRecommender):
    """Item embedding shared between input and output (paper eq. 6), a stack of pre-LN
    ``Block``s, a final LayerNorm, and the ``loss_type``'s ``Criterion``.

    Training batches either hold windows of a user's history with a target at every position
    (the field ``next_item_id_list``, built by the data layer; packed rows carry the window and
    user of each position too) and the loss averages over every target, or RecBole's
    per-prefix rows, whose last position alone is the target.

    ``dataset`` may tell the training data (``training_targets()``, ``training_history()``:
    (users, items) arrays, or None): the negative samplers read them.
    """

    KEYS: tuple[Key, ...] = KEYS

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        check_all(self.KEYS, config)
        self.TARGET_SEQ = target_list_field(config)
        self.initializer_range = config["initializer_range"]
        self.weight_init = config["weight_init"]
        D = config["hidden_size"]
        positions = self.make_positions(config)
        if positions is not None:
            self.position_embedding = positions  # read by every block's attention
        self.embedding = SequenceEmbedding(
            self.n_items,
            self.max_seq_length,
            D,
            config["hidden_dropout_prob"],
            positions=positions is None,
            scale=config["embedding_scale"],
            sparse=config["sparse_item_updates"],
            features=ItemFeatures.from_dataset(dataset, config["selected_features"], D),
            id_dropout=config["item_id_dropout"],
        )
        self.blocks = nn.ModuleList(
            Block(
                self.make_attention(config, positions),
                D,
                config["inner_size"],
                config["hidden_act"],
                config["hidden_dropout_prob"],
                config["layer_norm_eps"],
                query_norm=self.block_norm(config) == "query",
            )
            for _ in range(config["n_layers"])
        )
        self.final_ln = nn.LayerNorm(D, eps=config["layer_norm_eps"])
        self.apply(self._init_weights)
        with torch.no_grad():
            # the pad item starts at 0; CE's softmax trains its row like any other item's,
            # and scoring and recommendations leave it out
            self.embedding.item.weight[0].zero_()
        criterion = CRITERIA[config["loss_type"]]
        self.criterion = criterion(config, self._sampler(config, dataset, criterion))
        self.exclude_earlier = config["loss_exclude_earlier"]
        self.attribute_loss_weight = config["attribute_loss_weight"]
        self.positions_from_end = config["positions_from_end"]

    def _sampler(self, config, dataset, criterion) -> NegativeSampler:
        kind, exclude = config["negative_sampler"], config["negatives_exclude_history"]
        counts = history = None
        if kind != "uniform" and (found := _training(dataset, "training_targets")) is not None:
            counts = torch.bincount(torch.as_tensor(found[1]), minlength=self.n_items).numpy()
        if exclude:
            history = _training(dataset, "training_history")
        return NegativeSampler(self.n_items, kind, exclude, counts, history)

    # ---- what subclasses change ------------------------------------------------------------
    @classmethod
    def resolve_aliases(cls, final: dict, external: dict) -> None:
        """Map alternative key names in the user's configuration onto the keys the model reads."""

    def make_positions(self, config) -> nn.Embedding | None:
        """A position table the attention reads (None: positions are added to the input)."""
        return None

    def make_attention(self, config, positions: nn.Embedding | None) -> nn.Module:
        raise NotImplementedError

    def block_norm(self, config) -> str:
        """Where each block's LayerNorms sit (``layers.Block``): ``pre``; ``query`` only for a
        model whose attention reads its keys and values from another input than its queries."""
        return "pre"

    def _init_weights(self, module: nn.Module) -> None:
        """``normal``: Normal(0, initializer_range), RecBole's (BERT's); ``xavier``: Glorot
        uniform, the SASRec paper's TensorFlow initialisation. Zero biases, unit LayerNorm."""
        if isinstance(module, (nn.Linear, nn.Embedding, nn.EmbeddingBag)):
            if self.weight_init == "xavier":
                nn.init.xavier_uniform_(module.weight.data)
            else:
                module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    # ---- encoder ---------------------------------------------------------------------------
    def encode(self, item_seq, rows=None, packed: Packed | None = None, lengths=None, vectors=None):
        """item_seq [B, T] -> states at every position [B, T, D]; with rows [B], the state at
        position rows[b] only, [B, 1, D] (the last block computes that one query; earlier blocks
        need every position). ``packed``: rows holding several windows; ``lengths`` [B] (T if
        not given) place the newest items for ``positions_from_end``; ``vectors``: the step's
        item table (``SequenceEmbedding.forward``)."""
        if self.positions_from_end and packed is None:
            T = item_seq.size(1)
            lengths = item_seq.new_full((len(item_seq),), T) if lengths is None else lengths
            packed = Packed.from_end(lengths, T)
        x = self.embedding(item_seq, None if packed is None else packed.positions, vectors)
        for i, block in enumerate(self.blocks):
            x = block(x, rows if i == len(self.blocks) - 1 else None, packed)
        return self.final_ln(x)

    @torch.no_grad()
    def attention_maps(self, item_seq: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Every block's attention weights for item_seq [B, T] (or the items' vectors [B, T, D],
        as ``SequenceEmbedding.forward`` reads them), one dict per block (e.g.
        ``{"self-attention": [B, h, T, T]}``)."""
        maps, T = [], item_seq.size(1)
        full = torch.full((len(item_seq),), T, device=item_seq.device)
        packed = Packed.from_end(full, T) if self.positions_from_end else None
        x = self.embedding(item_seq, None if packed is None else packed.positions)
        for block in self.blocks:
            maps.append(block.attention_weights(x, packed))
            x = block(x, packed=packed)
        return maps

    def forward(
        self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, vectors=None
    ) -> torch.Tensor:
        """RecBole's contract: the state after each sequence's last real item, [B, D]
        (``vectors``: the step's item table, as ``encode`` reads it).

        Outside training, batches come in user order and a long-tailed log puts a long history
        in nearly every one: sequences of similar length are encoded together, each group
        trimmed to its longest, so little padding is encoded."""
        if self.training:
            T = int(item_seq_len.max())
            rows, lengths = item_seq_len - 1, item_seq_len
            return self.encode(item_seq[:, :T], rows, lengths=lengths, vectors=vectors)[:, 0]
        # lengths in (2^(b-1), 2^b] share bucket b: at most half of a bucket is padding
        bucket = torch.ceil(torch.log2(item_seq_len.clamp(min=1).double())).long()  # [B]
        out = None
        for b in torch.unique(bucket).tolist():
            rows = torch.nonzero(bucket == b).squeeze(1)
            T = int(item_seq_len[rows].max())
            lengths = item_seq_len[rows]
            h = self.encode(item_seq[rows, :T], lengths - 1, lengths=lengths, vectors=vectors)
            h = h[:, 0]  # [b, D]
            if out is None:
                out = h.new_empty(len(item_seq_len), h.size(-1))
            out[rows] = h
        return out

    # ---- training --------------------------------------------------------------------------
    def calculate_loss(self, interaction) -> torch.Tensor:
        items = self.embedding.vectors()  # one item table for the input and the loss
        if self.TARGET_SEQ not in interaction:  # RecBole's per-prefix rows: the last position
            seq, lengths = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
            h = self.forward(seq, lengths, items)  # [B, D]
            neg = interaction[self.NEG_ITEM_ID] if self.criterion.recbole_negative else None
            pos, users = interaction[self.POS_ITEM_ID], interaction[self.USER_ID]
            return self._with_attributes(self.criterion(h, pos, items, users, neg), h, pos)
        lengths = interaction[self.ITEM_SEQ_LEN]
        T = int(lengths.max())
        seq = interaction[self.ITEM_SEQ][:, :T]
        packed = None
        if SEGMENTS in interaction:  # several windows a row (train_batching: packed)
            packed = Packed.from_segments(interaction[SEGMENTS][:, :T], self.positions_from_end)
            users = interaction[SEGMENT_USERS][:, :T]  # [B, T]
        else:
            users = interaction[self.USER_ID].unsqueeze(1).expand(-1, T)  # [B, T]
        hidden = self.encode(seq, packed=packed, lengths=lengths, vectors=items)  # [B, T, D]
        targets = interaction[self.TARGET_SEQ][:, :T]  # [B, T]
        is_target = targets > 0
        earlier = None
        if self.exclude_earlier:
            packs = packed is not None and packed.visible is not None
            visible = packed.visible[:, 0] if packs else causal_mask(T, seq.device)
            earlier = earlier_items(seq, is_target, visible)
        # only positions with a target reach the output layer: [N, D], [N], [N]
        h, pos, users = hidden[is_target], targets[is_target], users[is_target]
        loss = self.criterion(h, pos, items, users, None, earlier)
        return self._with_attributes(loss, h, pos)

    def _with_attributes(self, loss: torch.Tensor, h: torch.Tensor, pos: torch.Tensor):
        """``loss`` plus ``attribute_loss_weight`` times the targets' attribute loss."""
        if not self.attribute_loss_weight:
            return loss
        return loss + self.attribute_loss_weight * self.embedding.features.attribute_loss(h, pos)

    # ---- scoring ---------------------------------------------------------------------------
    def item_vectors(self) -> torch.Tensor:
        """Every item's vector, [n_items, D]: what states are scored against (row 0 the pad)."""
        return self.embedding.vectors().weight

    def _encode_with_table(self, interaction):
        """The states [B, D] of the interaction's sequences and the item table they read."""
        items = self.embedding.vectors()
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], items)
        return h, items

    def predict(self, interaction) -> torch.Tensor:
        """Score of ``interaction[ITEM_ID]`` for each sequence: [B]."""
        h, items = self._encode_with_table(interaction)  # [B, D]
        return (h * _rows(items, interaction[self.ITEM_ID])).sum(-1)

    def score_candidates(self, interaction, candidates: torch.Tensor) -> torch.Tensor:
        """Scores of candidates [B, C] (item ids) for each sequence, from one encoding: [B, C]."""
        h, items = self._encode_with_table(interaction)  # [B, D]
        return torch.einsum("bd,bcd->bc", h, _rows(items, candidates))

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Scores of every item for each sequence: [B, n_items]."""
        h, items = self._encode_with_table(interaction)  # [B, D]
        return h @ items.weight.T


def _rows(items: nn.Embedding | ItemVectors, ids: torch.Tensor) -> torch.Tensor:
    """The item table's rows for ids [...] -> [..., D]."""
    return items.rows(ids) if isinstance(items, ItemVectors) else items(ids)


def _training(dataset, what: str):
    """The data set's ``training_targets()`` or ``training_history()`` ((users, items)), if it
    tells them (recbole_sasrec's data set does, once split), else None."""
    tell = getattr(dataset, what, None)
    return tell() if tell is not None else None
