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

from .checks import (
    ConfigError,
    _get,
    check_bool,
    check_choice,
    check_positive,
    check_positive_int,
    check_probability,
)
from .data import SEGMENT_USERS, SEGMENTS, AllPositionDataset, target_list_field
from .layers import ACTIVATIONS, Block, Packed, SequenceEmbedding, causal_mask
from .losses import (
    LOSSES,
    NEGATIVE_SAMPLERS,
    PAIRWISE,
    SAMPLED,
    cross_entropy,
    gbce,
    log_expected_count,
    sampled_softmax,
    uniform_log_q,
)


def earlier_items(item_seq, is_target, visible):
    """For every target position (row-major order of is_target [B, T]) the items at the
    positions it sees (visible [B|1, T, T]): pairs (target index [P], item [P]), by target."""
    index = torch.cumsum(is_target.reshape(-1).long(), 0).view_as(is_target) - 1  # [B, T]
    pairs = visible.expand(item_seq.size(0), -1, -1) & is_target[:, :, None]  # [B, T, T]
    b, t, j = pairs.nonzero(as_tuple=True)
    return index[b, t], item_seq[b, j]


def properties_dir() -> Path:
    """The folder of this package's ``<Model>.yaml`` files: ``recbole_sasrec/properties`` when
    installed (pyproject maps the repository's ``properties/`` there), the repository's
    ``properties/`` in a checkout or an editable install."""
    package = Path(__file__).resolve().parent
    installed = package / "properties"
    return installed if installed.is_dir() else package.parent / "properties"


class SelfAttentiveRecommender(SequentialRecommender):
    """Base class: item embedding shared between input and output (paper eq. 6), a stack of
    pre-LN ``Block``s, a final LayerNorm, and the losses of ``losses.py``.

    Training (``calculate_loss``):
      * ``train_all_positions: True`` (default): a batch row is a window of a user's history
        (see ``data.AllPositionDataset``); the loss averages over every non-pad position.
      * ``train_all_positions: False``: RecBole's per-prefix rows; the loss reads the last
        position only, exactly as RecBole's SASRec.

    Losses (``loss_type``, see ``losses.py``): CE over all items; BPR and BCE with one negative
    per target; SSM (sampled softmax) with ``loss_negatives`` negatives shared by the batch, and
    gBCE with ``loss_negatives`` uniform negatives per target. BPR/BCE negatives: with
    all-position training drawn here, uniformly over items and never equal to the position's
    target (as the paper's code does; ``negatives_exclude_history`` also keeps the user's
    training items out); with last-position training from RecBole's sampler
    (``train_neg_sample_args``). SSM/gBCE negatives are always drawn here (``negative_sampler``).
    """

    dataset_class = AllPositionDataset

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.check_config(config)
        self.loss_type = config["loss_type"]
        self.loss_negatives = config["loss_negatives"]
        self.negative_sampler = config["negative_sampler"]
        self.gbce_t = config["gbce_t"]
        self.ce_max_logits = config["ce_max_logits"]
        self.train_all_positions = config["train_all_positions"]
        self.TARGET_SEQ = target_list_field(config)
        self.initializer_range = config["initializer_range"]
        self.weight_init = config["weight_init"]

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
        self.exclude_history = config["negatives_exclude_history"]
        self.exclude_earlier = bool(config["loss_exclude_earlier"])
        self._register_training_statistics(dataset)

    def _register_training_statistics(self, dataset) -> None:
        """Buffers the training data gives the losses, rebuilt from it rather than saved (a
        model loaded for inference, from a data set not yet split, gets empty ones):

        * ``item_probability`` [n_items]: each item's share of the training targets (the pad
          0 none), for popularity and in-batch negatives and their log-Q correction;
        * ``history_keys`` [pairs]: every (user, item) of a user's training history as sorted
          keys user * n_items + item, for negatives drawn outside it.
        """
        built = hasattr(dataset.inter_feat, "interaction")  # an Interaction, not a DataFrame
        counts = torch.zeros(self.n_items)
        if built and self.loss_type in SAMPLED and self.negative_sampler != "uniform":
            counter = dataset.item_counter
            items = torch.tensor(list(counter.keys()), dtype=torch.long)
            counts[items] = torch.tensor(list(counter.values()), dtype=torch.float)
            counts[0] = 0
        self.register_buffer("item_probability", counts / counts.sum().clamp(min=1), False)
        keys = torch.zeros(0, dtype=torch.long)
        if built and self.exclude_history:
            rows = dataset.inter_feat
            items = torch.cat([rows[self.ITEM_SEQ], rows[self.TARGET_SEQ]], dim=1)  # [R, 2L]
            users = rows[self.USER_ID].unsqueeze(1).expand_as(items)
            real = items > 0
            keys = torch.unique(users[real] * self.n_items + items[real])  # sorted
        self.register_buffer("history_keys", keys, False)

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
        check_choice(config, "negative_sampler", NEGATIVE_SAMPLERS)
        check_choice(config, "weight_init", ("normal", "xavier"))
        check_bool(config, "embedding_scale")
        check_bool(config, "negatives_exclude_history")
        check_bool(config, "eval_exclude_history")
        check_bool(config, "loss_exclude_earlier")
        check_bool(config, "adam_fused")
        check_bool(config, "sparse_item_updates")
        if config["sparse_item_updates"]:
            why = None
            if config["loss_type"] == "CE":
                why = "loss_type='CE' scores every item, so its gradient is never sparse"
            elif str(_get(config, "learner") or "adam").lower() != "adam":
                why = f"learner={config['learner']!r}: it needs RecBole's learner 'adam'"
            elif _get(config, "weight_decay"):
                why = f"weight_decay={config['weight_decay']!r}: lazy Adam has no weight decay"
            elif (_get(config, "world_size") or 1) > 1 or (_get(config, "nproc") or 1) > 1:
                why = "several processes: DistributedDataParallel on NCCL has no sparse gradients"
            if why:
                raise ConfigError(
                    f"sparse_item_updates=True cannot train here: {why}; "
                    "set sparse_item_updates=False"
                )
        betas = config["adam_betas"]
        if (
            not isinstance(betas, (list, tuple))
            or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(
                f"adam_betas={betas!r} must be two numbers in [0, 1), e.g. [0.9, 0.98]"
            )
        if config["negatives_exclude_history"] and (
            not config["train_all_positions"] or config["loss_type"] not in (*PAIRWISE, "gBCE")
        ):
            raise ConfigError(
                f"negatives_exclude_history=True draws the per-target negatives of all-position "
                f"training (loss_type BPR, BCE or gBCE), not those of loss_type="
                f"{config['loss_type']!r} with train_all_positions={config['train_all_positions']}; "
                f"allowed: False, or one of those losses with train_all_positions=True"
            )
        if config["loss_exclude_earlier"] and (
            config["loss_type"] != "CE" or not config["train_all_positions"]
        ):
            raise ConfigError(
                f"loss_exclude_earlier=True leaves earlier items out of the full softmax of "
                f"all-position training, not loss_type={config['loss_type']!r} with "
                f"train_all_positions={config['train_all_positions']}; allowed: False, or "
                f"loss_type='CE' with train_all_positions=True"
            )
        check_positive_int(config, "loss_negatives")
        check_positive_int(config, "ce_max_logits")
        t = config["gbce_t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
            raise ConfigError(f"gbce_t={t!r} must be a number in [0, 1] (gSASRec's calibration)")
        if config["loss_type"] == "gBCE" and config["negative_sampler"] != "uniform":
            raise ConfigError(
                f"negative_sampler={config['negative_sampler']!r} cannot be used with "
                f"loss_type='gBCE', whose calibration assumes uniform negatives; allowed: "
                f"'uniform', or loss_type='SSM'"
            )
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
        check_choice(config, "train_batching", ("packed", "length", "random"))
        check_bool(config, "keep_freed_memory")
        L, C = config["MAX_ITEM_LIST_LENGTH"], config["window_context"]
        if isinstance(C, bool) or not isinstance(C, int) or not 0 <= C < L:
            raise ConfigError(
                f"window_context={C!r} must be an integer in 0..{L - 1} "
                f"(below MAX_ITEM_LIST_LENGTH={L}); 0: windows do not overlap"
            )
        if config["train_all_positions"] and config["benchmark_filename"]:
            raise ConfigError(
                f"benchmark_filename={config['benchmark_filename']!r} (pre-split, pre-augmented "
                f"files) cannot be used with train_all_positions=True, which splits and windows "
                f"the interaction file itself; allowed: benchmark_filename=None, or "
                f"train_all_positions=False"
            )

    # ---- architecture (what subclasses change) -------------------------------------------
    def make_embedding(self, config) -> nn.Module:
        return SequenceEmbedding(
            self.n_items,
            self.max_seq_length,
            config["hidden_size"],
            config["hidden_dropout_prob"],
            scale=config["embedding_scale"],
            sparse=config["sparse_item_updates"],
        )

    def make_attention(self, config) -> nn.Module:
        raise NotImplementedError

    def _init_weights(self, module: nn.Module) -> None:
        """``weight_init: normal``: Normal(0, initializer_range) weights, RecBole's (BERT's)
        initialisation, so ``initializer_range`` means what it means in RecBole; ``xavier``:
        Glorot uniform, the SASRec paper's TensorFlow initialisation. Zero biases, unit
        LayerNorm either way."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            if self.weight_init == "xavier":
                nn.init.xavier_uniform_(module.weight.data)
            else:
                module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    # ---- encoder -------------------------------------------------------------------------
    def encode(
        self,
        item_seq: torch.Tensor,
        rows: torch.Tensor | None = None,
        packed: Packed | None = None,
    ) -> torch.Tensor:
        """item_seq [B, T] -> hidden states at every position [B, T, D]; with rows [B], the
        state at position rows[b] of each sequence only, [B, 1, D]: the last block then
        computes that one query per sequence (earlier blocks still need every position).
        ``packed``: rows holding several windows (``layers.Packed``)."""
        x = self.embedding(item_seq, None if packed is None else packed.positions)
        for i, block in enumerate(self.blocks):
            x = block(x, rows if i == len(self.blocks) - 1 else None, packed)
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
        """RecBole's contract: the state after each sequence's last real item, [B, D].

        A batch is trimmed to its longest sequence. Outside training, where batches are
        RecBole's (users in id order) and a long-tailed log puts a near-L history in nearly
        every one, sequences of similar length are encoded together, each group trimmed to its
        longest: little of the padding is encoded."""
        if self.training:
            T = int(item_seq_len.max())
            return self.encode(item_seq[:, :T], rows=item_seq_len - 1)[:, 0]  # [B, D]
        # lengths in (2^(b-1), 2^b] share bucket b: each trimmed to its longest, at most half
        # of a bucket's encoded positions are padding, and a batch makes at most log2(L) + 1
        bucket = torch.ceil(torch.log2(item_seq_len.clamp(min=1).double())).long()  # [B]
        out = None
        for b in torch.unique(bucket).tolist():
            rows = torch.nonzero(bucket == b).squeeze(1)
            T = int(item_seq_len[rows].max())
            h = self.encode(item_seq[rows, :T], rows=item_seq_len[rows] - 1)[:, 0]  # [b, D]
            if out is None:
                out = h.new_empty(len(item_seq_len), h.size(-1))
            out[rows] = h
        return out

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
            packed = None
            if SEGMENTS in interaction:  # several windows a row (train_batching: packed)
                packed = Packed.from_segments(interaction[SEGMENTS][:, :T])
                users = interaction[SEGMENT_USERS][:, :T]  # [B, T]
            else:
                users = interaction[self.USER_ID].unsqueeze(1).expand(-1, T)  # [B, T]
            hidden = self.encode(interaction[self.ITEM_SEQ][:, :T], packed=packed)  # [B, T, D]
            targets = interaction[self.TARGET_SEQ][:, :T]  # [B, T]
            is_target = targets > 0
            h = hidden[is_target]  # [N, D]: only positions with a target reach the output layer
            pos = targets[is_target]  # [N]
            users = users[is_target]  # [N]
            neg = self.sample_negatives(pos, users) if self.loss_type in PAIRWISE else None
            if self.exclude_earlier:
                seq = interaction[self.ITEM_SEQ][:, :T]
                visible = causal_mask(T, seq.device) if packed is None else packed.visible[:, 0]
                self._earlier = earlier_items(seq, is_target, visible)
        else:
            h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B, D]
            pos = interaction[self.POS_ITEM_ID]  # [B]
            users = interaction[self.USER_ID]
            neg = interaction[self.NEG_ITEM_ID] if self.loss_type in PAIRWISE else None
        return self.loss(h, pos, neg, users)

    def loss(
        self,
        h: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor | None,
        users: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """h [N, D] states, pos [N] target items, neg [N] one negative each (BPR, BCE; else
        None) -> scalar. Embeddings are looked up with ``F.embedding``, whose backward adds
        gradients in a fixed order (indexing ``weight[pos]`` adds them in a thread-dependent
        order on CPU, so runs with the same seed drifted apart)."""
        items = self.embedding.item.weight  # [n_items, D], shared with the input (paper eq. 6)
        sparse = self.embedding.item.sparse
        if self.loss_type == "CE":
            earlier = getattr(self, "_earlier", None) if self.exclude_earlier else None
            return cross_entropy(h, items, pos, self.ce_max_logits, earlier)
        pos_emb = F.embedding(pos, items, sparse=sparse)  # [N, D]
        if self.loss_type in PAIRWISE:
            pos_score = (h * pos_emb).sum(-1)  # [N]
            neg_score = (h * F.embedding(neg, items, sparse=sparse)).sum(-1)  # [N]
            if self.loss_type == "BPR":
                return -F.logsigmoid(pos_score - neg_score).mean()
            return -(F.logsigmoid(pos_score) + F.logsigmoid(-neg_score)).mean()  # BCE
        if self.loss_type == "gBCE":  # k uniform negatives per target, as gSASRec draws them
            k = self.loss_negatives
            many = None if users is None else users[:, None].expand(-1, k)
            neg = self.sample_negatives(pos[:, None].expand(-1, k), many)  # [N, k]
            neg_emb = F.embedding(neg, items, sparse=sparse)  # [N, k, D]
            return gbce(h, pos_emb, neg_emb, pos, neg, self.n_items, self.gbce_t)
        neg, log_q_pos, log_q_neg = self.shared_negatives(pos)
        neg_emb = F.embedding(neg, items, sparse=sparse)  # [k, D]
        return sampled_softmax(h, pos_emb, neg_emb, pos, neg, log_q_pos, log_q_neg)

    def sample_negatives(
        self, pos: torch.Tensor, users: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A uniform negative for each target pos [...] from items 1..n_items-1, never the
        target, and with ``negatives_exclude_history`` never an item of the user's training
        history (users [...], the targets' users): [...]. Draws again where a draw clashes (a
        few rounds: a user who has seen nearly every item keeps what the last round drew)."""
        exclude = self.exclude_history and users is not None and len(self.history_keys) > 0

        def clashes(neg):
            hit = neg == pos
            if exclude:
                keys = users * self.n_items + neg
                at = torch.searchsorted(self.history_keys, keys).clamp(
                    max=len(self.history_keys) - 1
                )
                hit |= self.history_keys[at] == keys
            return hit

        neg = torch.randint(1, self.n_items, pos.shape, device=pos.device)
        clash = clashes(neg)
        for _ in range(100):
            if not clash.any():
                break
            neg[clash] = torch.randint(1, self.n_items, (int(clash.sum()),), device=pos.device)
            clash = clashes(neg)
        return neg

    def shared_negatives(self, pos: torch.Tensor):
        """k = ``loss_negatives`` negatives for the whole batch, by ``negative_sampler``, with
        log(k Q) of the targets [N] and of the negatives [k] for the log-Q correction."""
        k, device = self.loss_negatives, pos.device
        if self.negative_sampler == "uniform":
            neg = torch.randint(1, self.n_items, (k,), device=device)
            log_q = uniform_log_q(self.n_items, k)
            return (
                neg,
                torch.full(pos.shape, log_q, device=device),
                torch.full((k,), log_q, device=device),
            )
        if self.negative_sampler == "popularity":
            neg = torch.multinomial(self.item_probability, k, replacement=True)
        else:  # in_batch: the batch's own targets, each draw in proportion to its frequency
            neg = pos[torch.randint(0, pos.numel(), (k,), device=device)]
        q = self.item_probability
        return neg, log_expected_count(q[pos], k), log_expected_count(q[neg], k)

    # ---- scoring -------------------------------------------------------------------------
    def predict(self, interaction) -> torch.Tensor:
        """Score of ``interaction[ITEM_ID]`` for each sequence: [B]."""
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B, D]
        return (h * self.embedding.item(interaction[self.ITEM_ID])).sum(-1)

    def score_candidates(self, interaction, candidates: torch.Tensor) -> torch.Tensor:
        """Scores of candidates [B, C] (item ids) for each sequence, from one encoding: [B, C]."""
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B, D]
        return torch.einsum("bd,bcd->bc", h, self.embedding.item(candidates))

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Scores of every item for each sequence: [B, n_items]."""
        h = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # [B, D]
        return h @ self.embedding.item.weight.T
