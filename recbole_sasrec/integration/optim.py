"""The optimiser of our models: Adam with the paper's keys, and lazy Adam for large catalogues."""

from __future__ import annotations

import torch

from ..core.keys import Key, boolean, number
from ..models.losses import CRITERIA


def _betas(value) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in value)
        and all(0 <= b < 1 for b in value)
    )


def _sparse_can_train(config) -> str | None:
    if not config["sparse_item_updates"]:
        return None
    why = None
    if CRITERIA[config["loss_type"]].dense:
        why = (
            f"loss_type={config['loss_type']!r} scores every item, so its gradient is never sparse"
        )
    elif str(config["learner"] or "adam").lower() != "adam":
        why = f"learner={config['learner']!r}: it needs RecBole's learner 'adam'"
    elif config["weight_decay"]:
        why = f"weight_decay={config['weight_decay']!r}: lazy Adam has no weight decay"
    elif (config["world_size"] or 1) > 1 or (config["nproc"] or 1) > 1:
        why = "several processes: DistributedDataParallel on NCCL has no sparse gradients"
    if why:
        return f"sparse_item_updates=True cannot train here: {why}; set sparse_item_updates=False"
    return None


KEYS = (
    Key(
        "adam_betas",
        [0.9, 0.999],
        "Adam's betas (the paper's code: [0.9, 0.98])",
        "list",
        _betas,
        "must be two numbers in [0, 1), e.g. [0.9, 0.98]",
        "two numbers in [0, 1)",
    ),
    boolean(
        "adam_fused",
        True,
        "Adam's fused kernel (much faster steps on CPU; equal up to float rounding); "
        "False: RecBole's Adam",
    ),
    boolean(
        "sparse_item_updates",
        False,
        "large catalogues: sparse item-table gradients and lazy Adam on the rows a batch used "
        "(not with CE)",
        relation=_sparse_can_train,
    ),
    number(
        "learning_rate",
        0.004,
        "Adam's step size (RecBole's 0.001; against 0.001 and 0.002: docs/results.md, "
        '"Learning rate")',
        must="must be a number > 0, e.g. 0.001",
    ),
)


class OptimiserMixin:
    """RecBole's trainer building Adam (or AdamW) with our keys: ``adam_betas`` (RecBole uses
    torch's default; the paper's code beta2 = 0.98), ``adam_fused`` (one pass per parameter:
    on short histories the item table's update is a large part of every step) and
    ``sparse_item_updates``."""

    def _build_optimizer(self, **kwargs):
        learner = kwargs.get("learner", self.learner)
        if learner.lower() not in ("adam", "adamw"):
            return super()._build_optimizer(**kwargs)
        lr = kwargs.get("learning_rate", self.learning_rate)
        betas = tuple(self.config["adam_betas"])
        fused = {"fused": True} if self.config["adam_fused"] else {}
        params = list(kwargs.get("params", self.model.parameters()))
        if self.config["sparse_item_updates"]:
            tables = {
                id(m.weight)
                for m in self.model.modules()
                if isinstance(m, torch.nn.Embedding) and m.sparse
            }
            sparse = [p for p in params if id(p) in tables]
            dense = [p for p in params if id(p) not in tables]
            return ItemSparseAdam(dense, sparse, lr=lr, betas=betas, **fused)
        cls = torch.optim.Adam if learner.lower() == "adam" else torch.optim.AdamW
        return cls(
            params,
            lr=lr,
            weight_decay=kwargs.get("weight_decay", self.weight_decay),
            betas=betas,
            **fused,
        )


class ItemSparseAdam:
    """Adam whose cost does not grow with the catalogue (``sparse_item_updates``).

    Dense Adam reads and writes the whole item table, its gradient and two moment tables every
    step, however few items a batch used. Here the item table (a sparse gradient) gets torch's
    ``SparseAdam``, which updates the rows a batch used ("lazy" Adam: a row's moments decay only
    when it is used), every other parameter torch's Adam, one learning rate and betas; RecBole's
    trainer and GradScaler see one optimiser."""

    def __init__(self, dense, sparse, lr: float, betas: tuple[float, float], **dense_options):
        self.dense = torch.optim.Adam(dense, lr=lr, betas=betas, **dense_options)
        self.sparse = torch.optim.SparseAdam(sparse, lr=lr, betas=betas) if sparse else None
        self.optimizers = [self.dense] + ([self.sparse] if self.sparse else [])

    @property
    def param_groups(self) -> list[dict]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for opt in self.optimizers:
            opt.step()
        return loss

    def state_dict(self) -> dict:
        return {
            "dense": self.dense.state_dict(),
            "sparse": self.sparse and self.sparse.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"dense", "sparse"}:
            raise ValueError(
                "this optimiser state is not sparse_item_updates' (a checkpoint trained with "
                "sparse_item_updates=False); resume it with the same setting"
            )
        self.dense.load_state_dict(state["dense"])
        if self.sparse is not None:
            self.sparse.load_state_dict(state["sparse"])
