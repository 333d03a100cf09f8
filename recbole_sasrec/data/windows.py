"""The keys that shape the training windows (``dataset.AllPositionDataset``), declared once with
what they allow and how they bind each other."""

from __future__ import annotations

from ..core.keys import boolean, integer


def _no_presplit_files(config) -> str | None:
    if config["train_all_positions"] and config["benchmark_filename"]:
        return (
            f"benchmark_filename={config['benchmark_filename']!r} (pre-split, pre-augmented "
            f"files) cannot be used with train_all_positions=True, which splits and windows "
            f"the interaction file itself; allowed: benchmark_filename=None, or "
            f"train_all_positions=False"
        )
    return None


def _below_the_window(config) -> str | None:
    C, L = config["window_context"], config["MAX_ITEM_LIST_LENGTH"]
    if C >= L:
        return (
            f"window_context={C!r} must be an integer in 0..{L - 1} (below "
            f"MAX_ITEM_LIST_LENGTH={L}); 0: windows do not overlap"
        )
    return None


def _prefixes_in_our_windows(config) -> str | None:
    if not config["train_prefixes"]:
        return None
    if not config["train_all_positions"]:
        return (
            "train_prefixes=True builds per-prefix windows in all-position training's data "
            "set; allowed: train_all_positions=True, or train_prefixes=False (with "
            "train_all_positions=False, RecBole's own per-prefix rows)"
        )
    if config["window_context"]:
        return (
            f"train_prefixes=True gives every target its whole window of earlier items, so "
            f"window_context={config['window_context']!r} has no meaning; allowed: "
            f"window_context=0, or train_prefixes=False"
        )
    return None


KEYS = (
    boolean(
        "train_all_positions",
        True,
        "a target at every position of a window; False: RecBole's per-prefix rows",
        relation=_no_presplit_files,
    ),
    integer(
        "window_context",
        0,
        "windows overlap: every target sees at least this + 1 earlier items",
        low=0,
        allowed="0..`MAX_ITEM_LIST_LENGTH` - 1",
        relation=_below_the_window,
    ),
    boolean(
        "train_prefixes",
        False,
        "every target a window of its own, scored at its newest position only (RecBole's "
        "per-prefix rows, packed); False: a window scores every position",
        relation=_prefixes_in_our_windows,
    ),
)
