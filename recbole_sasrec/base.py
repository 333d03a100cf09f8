"""What SASRec and LightSANs share: configuration checks, the encoder loop, losses, scoring.

A subclass supplies ``make_attention`` (the attention module of one block) and may override
``embed``; everything RecBole calls (``forward``, ``calculate_loss``, ``predict``,
``full_sort_predict``) lives here once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from .allocator import keep_freed_memory
from .checks import (
    ConfigError,
    check_bool,
    check_choice,
    check_positive,
    check_positive_int,
    check_probability,
)
from .data import AllPositionDataset, target_list_field
from .layers import ACTIVATIONS, Block, SequenceEmbedding

LOSSES = ("CE", "BPR", "BCE")


def properties_dir() -> Path:
    """The folder of this package's ``<Model>.yaml`` files: ``recbole_sasrec/properties`` when
    installed (pyproject maps the repository's ``properties/`` there), the repository's
    ``properties/`` in a checkout or an editable install."""
    package = Path(__file__).resolve().parent
    installed = package / "properties"
    return installed if installed.is_dir() else package.parent / "properties"


class SelfAttentiveRecommender(SequentialRecommender):
    """Base class: item embedding shared between input and output (paper eq. 6), a stack of
    pre-LN ``Block``s, a final LayerNorm, and three losses.

    Training (``calculate_loss``):
      * ``train_all_positions: True`` (default): a batch row is a window of a user's history
        (see ``data.AllPositionDataset``); the loss averages over every non-pad position.
      * ``train_all_positions: False``: RecBole's per-prefix rows; the loss reads the last
        position only, exactly as RecBole's SASRec.

    Losses, with r = <h_t, M_j> the score of item j at position t:
      * CE: softmax cross-entropy over all items (RecBole's default; Klenitskiy & Vasilev 2023).
      * BPR: -log sigmoid(r_pos - r_neg), one sampled negative.
      * BCE: -log sigmoid(r_pos) - log(1 - sigmoid(r_neg)), one sampled negative (the paper).
    With all-position training the negatives are drawn here, uniformly over items and never equal
    to the position's target (as the paper's code does); with last-position training they come
    from RecBole's sampler (``train_neg_sample_args``).
    """

    dataset_class = AllPositionDataset

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        keep_freed_memory()  # glibc: reuse freed step buffers instead of page-faulting (allocator.py)
        self.loss_type = config["loss_type"]
        self.train_all_positions = config["train_all_positions"]
        self.TARGET_SEQ = target_list_field(config)
        self.initializer_range = config["initializer_range"]

        D = config["hidden_size"]
        self.embedding = self.make_embedding(config)
        self.blocks = nn.ModuleList(
            Block(
                self.make_attention(config),
                D,
                config["inner_size"],
                config["hidden_act"],
                config["hidden_dropout_prob"],
                config["layer_norm_eps"],
            )
            for _ in range(config["n_layers"])
        )
        self.final_ln = nn.LayerNorm(D, eps=config["layer_norm_eps"])
        self.apply(self._init_weights)
        with torch.no_grad():
            self.embedding.item.weight[0].zero_()  # the pad item: never trained, scores 0

    # ---- configuration -------------------------------------------------------------------
    @classmethod
    def properties_file(cls) -> Path:
        return properties_dir() / f"{cls.__name__}.yaml"

    @classmethod
    def resolve_aliases(cls, final: dict, external: dict) -> None:
        """Map alternative key names in the user's configuration onto the keys the model reads."""

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Raise ``ConfigError`` for any value this model cannot train with."""
        check_choice(config, "loss_type", LOSSES)
        check_choice(config, "hidden_act", ACTIVATIONS)
        for key in ("hidden_size", "inner_size", "n_layers", "n_heads", "MAX_ITEM_LIST_LENGTH"):
            check_positive_int(config, key)
        D, h = config["hidden_size"], config["n_heads"]
        if D % h:
            divisors = [n for n in range(1, D + 1) if D % n == 0]
            raise ConfigError(
                f"hidden_size={D} is not divisible by n_heads={h}; "
                f"with hidden_size={D}, n_heads may be one of {divisors}"
            )
        check_probability(config, "hidden_dropout_prob")
        check_probability(config, "attn_dropout_prob")
        check_positive(config, "layer_norm_eps")
        check_positive(config, "initializer_range")
        check_bool(config, "train_all_positions")

    # ---- architecture (what subclasses change) -------------------------------------------
    def make_embedding(self, config) -> nn.Module:
        return SequenceEmbedding(
            self.n_items, self.max_seq_length, config["hidden_size"], config["hidden_dropout_prob"]
        )

    def make_attention(self, config) -> nn.Module:
        raise NotImplementedError

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range) weights, zero biases, unit LayerNorm: RecBole's (BERT's)
        initialisation, so ``initializer_range`` means what it means in RecBole."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    # ---- encoder -------------------------------------------------------------------------
    def encode(self, item_seq: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """item_seq [B, T] -> hidden states at every position [B, T, D]; with rows [B], the
        state at position rows[b] of each sequence only, [B, 1, D]: the last block then
        computes that one query per sequence (earlier blocks still need every position)."""
        x = self.embedding(item_seq)
        for i, block in enumerate(self.blocks):
            x = block(x, rows if i == len(self.blocks) - 1 else None)
        return self.final_ln(x)

    @torch.no_grad()
    def attention_maps(self, item_seq: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The attention weights of every block for item_seq [B, T]: one dict per block, from
        the attention module's ``attention_weights`` (e.g. ``{"self-attention": [B, h, T, T]}``)."""
        maps = []
        x = self.embedding(item_seq)
        for block in self.blocks:
            maps.append(block.attn.attention_weights(block.ln_1(x)))
            x = block(x)
        return maps

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """RecBole's contract: the state after each sequence's last real item, [B, D]."""
        T = int(item_seq_len.max())  # trim the batch to its longest real sequence
        return self.encode(item_seq[:, :T], rows=item_seq_len - 1)[:, 0]  # [B, D]

    # ---- training ------------------------------------------------------------------------
    def calculate_loss(self, interaction) -> torch.Tensor:
        if self.train_all_positions:
            if self.TARGET_SEQ not in interaction:
                raise ConfigError(
                    f"train_all_positions=True needs the training rows built by "
                    f"recbole_sasrec (field {self.TARGET_SEQ!r} is missing): train through "
                    f"recbole_sasrec.run_recbole, or set train_all_positions=False"
                )
            lengths = interaction[self.ITEM_SEQ_LEN]
            T = int(lengths.max())
            hidden = self.encode(interaction[self.ITEM_SEQ][:, :T])  # [B, T, D]
            targets = interaction[self.TARGET_SEQ][:, :T]  # [B, T]
            is_target = targets > 0
            h = hidden[is_target]  # [N, D]: only positions with a target reach the output layer
            pos = targets[is_target]  # [N]
            neg = None if self.loss_type == "CE" else self.sample_negatives(pos)
        else:
            h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B, D]
            pos = interaction[self.POS_ITEM_ID]  # [B]
            neg = None if self.loss_type == "CE" else interaction[self.NEG_ITEM_ID]
        return self.loss(h, pos, neg)

    def loss(self, h: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None) -> torch.Tensor:
        """h [N, D] states, pos [N] target items, neg [N] negatives (None for CE) -> scalar."""
        items = self.embedding.item.weight  # [n_items, D], shared with the input (paper eq. 6)
        if self.loss_type == "CE":
            return F.cross_entropy(h @ items.T, pos)  # logits [N, n_items]
        pos_score = (h * items[pos]).sum(-1)  # [N]
        neg_score = (h * items[neg]).sum(-1)  # [N]
        if self.loss_type == "BPR":
            return -F.logsigmoid(pos_score - neg_score).mean()
        return -(F.logsigmoid(pos_score) + F.logsigmoid(-neg_score)).mean()  # BCE

    def sample_negatives(self, pos: torch.Tensor) -> torch.Tensor:
        """One uniform negative per target, from items 1..n_items-1, never the target: [N]."""
        neg = torch.randint(1, self.n_items, pos.shape, device=pos.device)
        clash = neg == pos
        while clash.any():
            neg[clash] = torch.randint(1, self.n_items, (int(clash.sum()),), device=pos.device)
            clash = neg == pos
        return neg

    # ---- scoring -------------------------------------------------------------------------
    def predict(self, interaction) -> torch.Tensor:
        """Score of ``interaction[ITEM_ID]`` for each sequence: [B]."""
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B, D]
        return (h * self.embedding.item(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Scores of every item for each sequence: [B, n_items]."""
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B, D]
        return h @ self.embedding.item.weight.T
