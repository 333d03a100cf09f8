"""Attention maps of a saved model drawn as heatmaps, one panel per block, map and head."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..core.files import atomic_open
from .output import check_output, reporting_full_disk


def figure_formats() -> tuple[str, ...]:
    """The extensions matplotlib writes (.png, .pdf, .svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes())


def check_figure_output(out: str | os.PathLike, replace: bool = False) -> None:
    """A ``ValueError`` naming ``out`` unless a figure can be written there: an extension
    matplotlib writes, a folder that exists, no file there already unless ``replace``."""
    check_output(out, replace, figure_formats())


def plot_attention(
    tokens: list[str],
    maps: list[dict[str, torch.Tensor]],
    out: str | os.PathLike,
    labels=None,
    title="",
    replace: bool = False,
) -> int:
    """Heatmaps of every block's attention (rows: query position, columns: key position or
    interest) for every head, written to ``out`` (its extension the format) whole or not at
    all, over an existing file only with ``replace``; returns the number of panels drawn."""
    check_figure_output(out, replace)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or tokens
    names = list(maps[0])
    n_heads = maps[0][names[0]].shape[0]
    rows, cols = len(maps), len(names) * n_heads
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1, 3.2 * rows + 1), squeeze=False)
    T = len(tokens)
    tick = max(1, T // 12)
    for layer, block in enumerate(maps):
        for n, name in enumerate(names):
            for h in range(n_heads):
                ax = axes[layer][n * n_heads + h]
                w = block[name][h].numpy()
                image = ax.imshow(w, cmap="viridis", aspect="auto", vmin=0)
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
                ax.set_title(f"block {layer + 1}, head {h + 1}\n{name}", fontsize=8)
                ax.set_yticks(range(0, T, tick), [labels[i][:18] for i in range(0, T, tick)])
                ax.tick_params(labelsize=6)
                if w.shape[1] == T:
                    ax.set_xticks(
                        range(0, T, tick), [labels[i][:18] for i in range(0, T, tick)], rotation=90
                    )
                else:
                    ax.set_xticks(
                        range(w.shape[1]),
                        [f"interest {j + 1}" for j in range(w.shape[1])],
                        rotation=90,
                    )
    fig.suptitle(title or "attention (rows: query position; columns: key)", fontsize=10)
    fig.tight_layout()
    try:
        with reporting_full_disk(out), atomic_open(out, "wb") as f:
            fig.savefig(f, dpi=110, format=Path(out).suffix[1:].lower())
    finally:
        plt.close(fig)
    return rows * cols
