"""Attention figures: written whole, over a file only with replace, a full disk named."""

from __future__ import annotations

import contextlib

import pytest
import torch
from test_output import FullDisk

from recbole_sasrec.core.files import atomic_open
from recbole_sasrec.inference import attention
from recbole_sasrec.inference.attention import plot_attention
from recbole_sasrec.inference.output import DiskFullError

TOKENS = ["a", "b", "c"]
MAPS = [{"attention": torch.full((2, 3, 3), 1 / 3)}]  # one block, 2 heads, T = 3


def test_a_figure_is_drawn_and_an_existing_file_kept_unless_replace(tmp_path):
    out = tmp_path / "maps.svg"
    assert plot_attention(TOKENS, MAPS, out) == 2
    assert b"<svg" in out.read_bytes()[:400]
    with pytest.raises(ValueError, match="maps.svg' exists; allowed: another file, or replace"):
        plot_attention(TOKENS, MAPS, out)
    assert plot_attention(TOKENS, MAPS, out, replace=True) == 2


def test_a_full_disk_keeps_the_previous_figure(tmp_path, monkeypatch):
    out = tmp_path / "maps.png"
    out.write_bytes(b"the previous figure")

    @contextlib.contextmanager
    def full(path, mode="w", **kwargs):
        with atomic_open(path, mode, **kwargs) as f:
            yield FullDisk(f, 100)

    monkeypatch.setattr(attention, "atomic_open", full)
    with pytest.raises(DiskFullError) as error:
        plot_attention(TOKENS, MAPS, out, replace=True)
    assert str(error.value) == (
        f"{str(out)!r} could not be written: No space left on device; the previous file is kept"
    )
    assert out.read_bytes() == b"the previous figure"
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]
