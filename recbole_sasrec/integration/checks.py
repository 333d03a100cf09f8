"""RecBole's own keys, checked before any data is loaded: values RecBole accepts and then trains
badly with, or fails on late. Their defaults stay RecBole's."""

from __future__ import annotations

from ..core.keys import RECBOLE, Key, Values, integer
from ..data import batching
from ..models.losses import CRITERIA
from . import optim

TRAINING = (
    integer("epochs", RECBOLE, "training epochs", why="0 would save and test an untrained model"),
    integer("eval_batch_size", RECBOLE, "evaluation rows a batch"),
    integer("stopping_step", RECBOLE, "validations without improvement before stopping"),
    integer("eval_step", RECBOLE, "epochs between validations"),
    integer("seed", RECBOLE, "random seed", low=0, why="numpy's seeds are integers"),
)
# RecBole's keys of sequential models, whatever the model.
SEQUENTIAL = (integer("MAX_ITEM_LIST_LENGTH", RECBOLE, "items of history a sequence holds"),)
# RecBole's keys our models declare with defaults of their own, checked for every model.
SHARED = tuple(
    key
    for key in (*batching.KEYS, *optim.KEYS)
    if key.name in ("train_batch_size", "learning_rate")
)


def _negatives_fit_the_loss(config) -> str | None:
    """Our models: RecBole's ``train_neg_sample_args`` must serve the loss."""
    args, loss_type = config["train_neg_sample_args"], config["loss_type"]
    distribution = args.get("distribution") if isinstance(args, dict) else args
    sampling = distribution not in (None, "none", "None")
    if not CRITERIA[loss_type].recbole_negative:
        if sampling:
            return (
                f"train_neg_sample_args={args!r} cannot be used with loss_type={loss_type!r} "
                f"(CE scores every item; SSM and gBCE draw loss_negatives themselves); "
                f"allowed: train_neg_sample_args=None, or loss_type BPR/BCE"
            )
        return None
    if not sampling:
        return (
            f"loss_type={loss_type!r} needs one negative per target, but "
            f"train_neg_sample_args={args!r}; allowed: {{'distribution': 'uniform', "
            f"'sample_num': 1}} (the default when the key is not given)"
        )
    if args.get("sample_num", 1) != 1:
        return (
            f"train_neg_sample_args.sample_num={args['sample_num']!r}: {loss_type} uses one "
            f"negative per target; allowed: 1"
        )
    if config["train_all_positions"] and distribution != "uniform":
        return (
            f"train_neg_sample_args.distribution={distribution!r} is not used by all-position "
            f"training, which draws uniform negatives per position; allowed: 'uniform', or "
            f"train_all_positions=False to use RecBole's sampler"
        )
    return None


def _ordered_by_time(config) -> str | None:
    eval_args = config["eval_args"] or {}
    if not isinstance(eval_args, dict):
        return (
            f"eval_args={eval_args!r} is not a mapping; allowed: keys split, group_by, order, "
            "mode, e.g. {'mode': 'uni100'} (command line: --eval_args=\"{'mode': 'uni100'}\")"
        )
    order = eval_args.get("order", "TO")
    if order != "TO":
        return (
            f"eval_args order={order!r}: a sequential split orders each user's history by "
            f"time; allowed: 'TO'"
        )
    return None


OURS = (
    Key(
        "eval_args",
        RECBOLE,
        "RecBole's split, order and evaluation mode",
        "dict",
        lambda value: True,
        "",
        "",
        _ordered_by_time,
    ),
    Key(
        "train_neg_sample_args",
        RECBOLE,
        "RecBole's negative sampling for training",
        "dict",
        lambda value: True,
        "",
        "",
        _negatives_fit_the_loss,
    ),
)


def check_metrics(final) -> None:
    """Before RecBole reads them: metric names it knows and positive ``topk`` cut-offs (RecBole
    raises later, without the names it knows)."""
    from recbole.evaluator.register import metrics_dict

    from ..core.keys import ConfigError

    values = Values(final)
    metrics = values["metrics"]
    names = [metrics] if isinstance(metrics, str) else list(metrics or [])
    unknown = [m for m in names if not isinstance(m, str) or m.lower() not in metrics_dict]
    if unknown or not names:
        known = ", ".join(sorted(m.__name__ for m in metrics_dict.values()))
        raise ConfigError(
            f"metrics={metrics!r}: {', '.join(map(repr, unknown)) or 'none'} is not a metric "
            f"RecBole computes; allowed: a list of {known}"
        )
    topk = values["topk"]
    cuts = [topk] if isinstance(topk, int) and not isinstance(topk, bool) else topk
    if (
        not isinstance(cuts, list)
        or not cuts
        or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in cuts)
    ):
        raise ConfigError(
            f"topk={topk!r} must be a positive integer or a list of them, e.g. [10] or [5, 10, 20]"
        )


def check_evaluation(final) -> None:
    """After RecBole normalised them: the evaluation mode (``uni0`` ranks the positive alone,
    every metric 1.0) and the metric early stopping reads (else it fails after an epoch)."""
    from recbole.evaluator.register import metrics_dict

    from ..core.keys import ConfigError

    values = Values(final)
    for phase, mode in values["eval_args"]["mode"].items():
        if isinstance(mode, str) and mode[:3] in ("uni", "pop"):
            n = mode[3:]
            if not n.isdigit() or int(n) < 1:
                raise ConfigError(
                    f"eval_args mode {phase}={mode!r}: {mode[:3]}<N> needs N >= 1 sampled "
                    f"negatives ({mode[:3]}0 ranks the positive alone: every metric 1.0); "
                    f"allowed: full, labeled, uni<N> or pop<N> with N >= 1, e.g. uni100"
                )
    topk = values["topk"]
    computed = []
    for metric in (m.lower() for m in values["metrics"]):
        need = getattr(metrics_dict.get(metric), "metric_need", [])
        at_k = any(n in ("rec.items", "rec.topk") for n in need)  # reported as name@k
        computed += [f"{metric}@{t}" for t in topk] if at_k else [metric]
    valid = str(values["valid_metric"] or "")
    if valid.lower() not in computed:
        raise ConfigError(
            f"valid_metric={valid!r} is not computed from metrics={values['metrics']} and "
            f"topk={topk}; allowed: one of {', '.join(computed[:12])}"
            + (" ..." if len(computed) > 12 else "")
        )


def check_eval_args(final) -> None:
    """Before RecBole reads them, for every model: each part of ``eval_args`` of the type RecBole
    reads (a string ``split`` or a list ``mode`` would fail late, or be iterated by the
    character)."""
    from ..core.keys import ConfigError
    from ..data.split import LEAVE

    eval_args = Values(final)["eval_args"]
    if not isinstance(eval_args, dict):
        return  # RecBole names the whole value
    example = "e.g. {'LS': 'valid_and_test'} or {'RS': [0.8, 0.1, 0.1]}"
    split = eval_args.get("split", {"RS": [0.8, 0.1, 0.1]})
    if not isinstance(split, dict) or len(split) != 1:
        raise ConfigError(f"eval_args split={split!r} must be a mapping of one method; {example}")
    ((method, value),) = split.items()
    if method == "LS" and not (isinstance(value, str) and value in LEAVE):
        raise ConfigError(
            f"eval_args split={split!r}: LS (leave one out) takes one of {', '.join(LEAVE)}"
        )
    ratios = isinstance(value, list) and len(value) == 3
    ratios = ratios and all(isinstance(r, int | float) and not isinstance(r, bool) for r in value)
    if method in ("RS", "TS") and not (ratios and min(value) >= 0 and sum(value) > 0):
        raise ConfigError(
            f"eval_args split={split!r}: {method} takes a list of three ratios (train, valid, "
            f"test), numbers >= 0, e.g. {{'{method}': [0.8, 0.1, 0.1]}}"
        )
    if method not in ("LS", "RS", "TS"):
        raise ConfigError(f"eval_args split={split!r}: allowed methods: LS, RS, TS; {example}")
    mode = eval_args.get("mode", "full")
    modes = mode.values() if isinstance(mode, dict) else [mode]
    if (isinstance(mode, dict) and not set(mode) <= {"valid", "test"}) or not all(
        isinstance(m, str) for m in modes
    ):
        raise ConfigError(
            f"eval_args mode={mode!r} must be a mode name or a mapping of valid and test to "
            f"mode names, e.g. 'uni100' or {{'valid': 'full', 'test': 'uni100'}}"
        )
    group_by = eval_args.get("group_by", "user")
    if group_by is not None and not (
        isinstance(group_by, str) and group_by.lower() in ("user", "none")
    ):
        raise ConfigError(f"eval_args group_by={group_by!r}: allowed: 'user', or None (RS only)")


def check_columns(final) -> None:
    """``load_col``/``unload_col``: for each file (inter, item, user, ...) a list of field names
    (``load_col`` also '*'); RecBole makes a set of a string, one field per character."""
    from ..core.keys import ConfigError

    for key in ("load_col", "unload_col"):
        value = Values(final)[key]
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(
                f"{key}={value!r} must be a mapping of files to field lists, e.g. "
                f"{{'inter': ['user_id', 'item_id', 'timestamp']}}"
            )
        for source, fields in value.items():
            if key == "load_col" and fields == "*":
                continue
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                hint = [fields] if isinstance(fields, str) else ["user_id", "item_id"]
                star = " (or '*' for every field)" if key == "load_col" else ""
                raise ConfigError(
                    f"{key}={value!r}: {source!r} must be a list of field names{star}, e.g. "
                    f"{{{source!r}: {hint!r}}}"
                )
