"""Training losses over the shared item embedding: one ``Criterion`` per ``loss_type``.

With h the state at a position, e_j the embedding of item j and s_j = <h, e_j> its score:

* ``CE``: softmax cross-entropy over every item (Klenitskiy & Vasilev, RecSys 2023, "SASRec+"),
  in chunks of targets beyond ``ce_max_logits`` logits (``softmax.py``).
* ``BPR``: -log sigmoid(s_pos - s_neg); ``BCE``: -log sigmoid(s_pos) - log(1 - sigmoid(s_neg))
  (the SASRec paper's); one uniform negative per target.
* ``SSM``: sampled softmax over the target and k negatives shared by the batch, each logit
  corrected by -log(k Q(j)) (Bengio & Senecal 2008; Yi et al., RecSys 2019); a negative equal
  to the target is masked. Shared negatives make the scores one [targets, k] product.
* ``gBCE``: gSASRec's generalised BCE (Petrov & Macdonald, RecSys 2023) with k uniform negatives
  per target: -beta log sigmoid(s_pos + c) - sum_i log(1 - sigmoid(s_neg_i + c)), beta = alpha
  (t (1 - 1/alpha) + 1/alpha), alpha = k / (items - 1), every score shifted by c = log(beta / k)
  (``gbce``: why). Per target, as the paper draws them.

A new loss is a subclass of ``Criterion`` here (its ``name`` is its ``loss_type``) with the keys
it reads declared in ``KEYS``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..core.keys import ConfigError, boolean, choice, integer, number
from .item_features import ItemVectors
from .negatives import SAMPLERS, NegativeSampler
from .softmax import cross_entropy

CRITERIA: dict[str, type[Criterion]] = {}
# Keys only some losses serve: (key, the Criterion flag that says so, what it does, which losses)
ONLY_FOR = (
    ("negatives_exclude_history", "per_target", "draws the per-target negatives", "BPR, BCE, gBCE"),
    ("loss_exclude_earlier", "excludes_earlier", "leaves earlier items out of the softmax", "CE"),
)


def lookup(table: nn.Embedding | ItemVectors, ids: torch.Tensor) -> torch.Tensor:
    """table's rows for ids [...] -> [..., D]. ``F.embedding``'s backward adds gradients in a fixed
    order (indexing ``weight[ids]`` adds them in a thread-dependent order on CPU)."""
    if isinstance(table, ItemVectors):
        return table.rows(ids)
    return F.embedding(ids, table.weight, sparse=table.sparse)


class Criterion(nn.Module):
    """One loss: draws its negatives (``sampler``) and scores states h [N, D] for targets pos [N]
    against the item table. ``users`` [N] the targets' users; ``neg`` [N] a negative RecBole's
    sampler drew (last-position training); ``earlier`` (target [P], item [P]) pairs of items
    each target's window saw before it."""

    name: ClassVar[str] = ""
    samplers: ClassVar[tuple[str, ...]] = ("uniform",)  # negative_sampler values it reads
    per_target: ClassVar[bool] = False  # negatives drawn per target (negatives_exclude_history)
    recbole_negative: ClassVar[bool] = False  # last position: RecBole's sampler's negative
    dense: ClassVar[bool] = False  # scores every item: the item table's gradient is dense
    excludes_earlier: ClassVar[bool] = False  # loss_exclude_earlier applies

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        CRITERIA[cls.name] = cls

    def __init__(self, config, sampler: NegativeSampler):
        super().__init__()
        self.sampler = sampler
        self.k = config["loss_negatives"]

    @classmethod
    def refuse(cls, config) -> str | None:
        """Why this loss cannot train with the configuration's other keys; None if it can."""
        here = f"loss_type={cls.name!r}"
        sampler = config["negative_sampler"]
        if sampler not in cls.samplers:
            allowed = " or ".join(repr(s) for s in cls.samplers)
            return f"negative_sampler={sampler!r} is not used by {here}; allowed: {allowed}" + (
                "" if cls.name == "SSM" else ", or loss_type='SSM', which reads it"
            )
        for key, serves, what, losses in ONLY_FOR:
            if config[key] and not (getattr(cls, serves) and config["train_all_positions"]):
                return (
                    f"{key}=True {what} of all-position training ({losses}), not those of {here} "
                    f"with train_all_positions={config['train_all_positions']}; allowed: False, "
                    f"or {losses} with train_all_positions=True"
                )
        return None


class CrossEntropy(Criterion):
    name = "CE"
    dense = excludes_earlier = True

    def __init__(self, config, sampler: NegativeSampler):
        super().__init__(config, sampler)
        self.max_logits = config["ce_max_logits"]

    def forward(self, h, pos, table, users=None, neg=None, earlier=None) -> torch.Tensor:
        return cross_entropy(h, table.weight, pos, self.max_logits, earlier)


class BPR(Criterion):
    name = "BPR"
    per_target = recbole_negative = True

    def forward(self, h, pos, table, users=None, neg=None, earlier=None) -> torch.Tensor:
        if neg is None:
            neg = self.sampler.per_target(pos, users)
        pos_score = (h * lookup(table, pos)).sum(-1)  # [N]
        neg_score = (h * lookup(table, neg)).sum(-1)  # [N]
        return self.pair_loss(pos_score, neg_score)

    @staticmethod
    def pair_loss(pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
        return -F.logsigmoid(pos_score - neg_score).mean()


class BCE(BPR):
    name = "BCE"

    @staticmethod
    def pair_loss(pos_score: torch.Tensor, neg_score: torch.Tensor) -> torch.Tensor:
        return -(F.logsigmoid(pos_score) + F.logsigmoid(-neg_score)).mean()


class SampledSoftmax(Criterion):
    name = "SSM"
    samplers = SAMPLERS

    def forward(self, h, pos, table, users=None, neg=None, earlier=None) -> torch.Tensor:
        pos_emb = lookup(table, pos)  # [N, D]
        neg, log_q_pos, log_q_neg = self.sampler.shared(pos, self.k)  # [k], [N], [k]
        return sampled_softmax(h, pos_emb, lookup(table, neg), pos, neg, log_q_pos, log_q_neg)


class GBCE(Criterion):
    name = "gBCE"
    per_target = True

    def __init__(self, config, sampler: NegativeSampler):
        super().__init__(config, sampler)
        self.t = config["gbce_t"]
        items = sampler.n_items - 1  # id 0 is the pad
        if self.k > items:  # gSASRec's calibration holds for a sampling rate alpha <= 1
            raise ConfigError(
                f"loss_negatives={self.k} with loss_type='gBCE' on a catalogue of {items} items: "
                f"the sampling rate alpha = {self.k}/{items} is above 1, outside gSASRec's "
                f"calibration, and every target scores {self.k} negatives; allowed: "
                f"loss_negatives <= {items}, or loss_type='CE'"
            )

    def forward(self, h, pos, table, users=None, neg=None, earlier=None) -> torch.Tensor:
        k = self.k
        many = None if users is None else users[:, None].expand(-1, k)
        neg = self.sampler.per_target(pos[:, None].expand(-1, k), many)  # [N, k]
        return gbce(
            h, lookup(table, pos), lookup(table, neg), pos, neg, self.sampler.n_items, self.t
        )


def sampled_softmax(h, pos_emb, neg_emb, pos, neg, log_q_pos, log_q_neg) -> torch.Tensor:
    """h [N, D], the targets' embeddings [N, D], the k shared negatives' [k, D], their ids
    pos [N] and neg [k], and log(k Q) of each [N], [k]."""
    pos_logit = (h * pos_emb).sum(-1) - log_q_pos  # [N]
    neg_logit = h @ neg_emb.T - log_q_neg  # [N, k]
    neg_logit = neg_logit.masked_fill(neg[None, :] == pos[:, None], float("-inf"))  # hits
    logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)  # [N, 1 + k]
    return (torch.logsumexp(logits, dim=1) - pos_logit).mean()


def gbce(h, pos_emb, neg_emb, pos, neg, n_items: int, t: float) -> torch.Tensor:
    """h [N, D], targets' embeddings [N, D], each target's k negatives' [N, k, D], ids pos [N]
    and neg [N, k]; ``n_items`` items with the pad, t the calibration."""
    k = neg.size(1)
    alpha = k / (n_items - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    # Every score enters the loss shifted by log(beta / k), the one score at which the loss is
    # least when all scores are equal (sigmoid = beta / (beta + k)); a shared shift changes no
    # ranking. Unshifted, scores start near 0, far above that, and the first steps' cheapest way
    # down is one direction shared by every item and the state: the item table collapses onto
    # it and training sits on a long plateau of popularity ranking (docs/results.md, "gBCE").
    shift = math.log(beta / k)
    pos_score = (h * pos_emb).sum(-1) + shift  # [N]
    neg_score = torch.einsum("nd,nkd->nk", h, neg_emb) + shift  # [N, k]
    not_target = (neg != pos[:, None]).to(h.dtype)  # a negative equal to its target
    negative = (F.logsigmoid(-neg_score) * not_target).sum(-1)
    return -(beta * F.logsigmoid(pos_score) + negative).mean()


KEYS = (
    choice(
        "loss_type",
        "CE",
        lambda: tuple(CRITERIA),
        "full softmax; one negative (BCE: the paper's); sampled softmax with log-Q correction; "
        "gSASRec's gBCE",
        relation=lambda config: CRITERIA[config["loss_type"]].refuse(config),
    ),
    integer("loss_negatives", 256, "SSM: negatives shared by a batch; gBCE: negatives per target"),
    number(
        "gbce_t",
        0.75,
        "gBCE's calibration (0: BCE with loss_negatives negatives)",
        0,
        1,
        closed=(True, True),
        must="must be a number in [0, 1] (gSASRec's calibration)",
    ),
    boolean(
        "loss_exclude_earlier",
        False,
        "CE: the items a target's window holds before it are left out of its softmax",
    ),
    integer("ce_max_logits", 2**25, "CE computed in chunks of targets beyond this many logits"),
)
