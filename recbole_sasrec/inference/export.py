"""Export a checkpoint to a folder that serves without RecBole, torch or the training data.

    python -m recbole_sasrec export --model-file saved/SASRec-....pth --out model_dir/ [--ann]

Writes what ``artifact.Artifact`` loads. The encoder goes to ONNX with dynamic batch and sequence
length (torch's TorchScript-based exporter: the dynamo exporter's graphs of LightSANs do not load
at opset 17) and is checked against the eager model on sessions shorter and longer than
``MAX_ITEM_LIST_LENGTH`` before the folder is moved into place, whole, under its name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.keys import ConfigError
from ..integration.checkpoint import data_fingerprint, package_version
from ..integration.quick_start import load_model
from ..integration.registry import is_ours
from .artifact import FORMAT, Artifact
from .topk import ApproximateIndex

OPSET = 17
TOLERANCE = 1e-4  # exported scores within this relative distance of the eager model's


class Encoder(nn.Module):
    """item_seq [B, T], lengths [B] -> the state after each sequence's last item [B, D], every
    sequence encoded whole (the eager model's length groups are control flow ONNX cannot hold)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.encode(item_seq, rows=lengths - 1, lengths=lengths)[:, 0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def export(
    model_file: str,
    out: str | os.PathLike,
    data_path: str | None = None,
    allow_pickle: bool = False,
    ann: bool = False,
    replace: bool = False,
) -> Path:
    """Write the folder ``out`` for ``model_file``; returns its path. ``ann``: also a faiss
    HNSW index for approximate top-k; ``replace``: overwrite an existing ``out``."""
    out = Path(out)
    if out.exists() and not replace:
        raise ConfigError(f"out={str(out)!r} exists; allowed: another folder, or --replace")
    if not out.parent.is_dir():
        raise ConfigError(f"out={str(out)!r}: folder {str(out.parent)!r} does not exist")
    config, model, dataset = load_model(model_file, data_path, allow_pickle)
    if not is_ours(type(model)):
        raise ConfigError(
            f"model_file={model_file!r} is a {config['model']} checkpoint; export serves "
            f"recbole_sasrec's SASRec and LightSANs"
        )
    model = model.cpu().eval()
    tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.export-") as tmp:
        folder = Path(tmp) / out.name
        folder.mkdir()
        _write_encoder(model, config["MAX_ITEM_LIST_LENGTH"], folder / "encoder.onnx")
        items = model.embedding.item.weight.detach().float().numpy()
        np.save(folder / "items.npy", items)
        (folder / "item_tokens.json").write_text(json.dumps(tokens))
        if ann:
            ApproximateIndex.build(items).write(folder / "items.hnsw")
        keys = {key.name: config[key.name] for key in type(model).KEYS}
        metadata = {
            "format": FORMAT,
            "model": config["model"],
            "dataset": config["dataset"],
            "max_item_list_length": config["MAX_ITEM_LIST_LENGTH"],
            "hidden_size": config["hidden_size"],
            "config": keys,
            "data": data_fingerprint(dataset, config),
            "version": package_version(),
            "files": {p.name: _sha256(p) for p in sorted(folder.iterdir())},
        }
        (folder / "metadata.json").write_text(json.dumps(metadata, indent=1))
        _check(model, Artifact.load(folder), tokens)
        if out.exists():  # replace: the old folder leaves only once the new one is complete
            old = Path(tmp) / "replaced"
            os.replace(out, old)
        os.replace(folder, out)
    return out


def _write_encoder(model, max_len: int, path: Path) -> None:
    seq = torch.randint(1, model.n_items, (3, max_len), generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([max_len, max(1, max_len // 2), 1])
    encoder = Encoder(model).eval()  # the exporter restores the mode it finds, recursively
    with warnings.catch_warnings():  # the tracer's notes on shapes the exporter keeps dynamic
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        _onnx_export(encoder, seq, lengths, path)


def _onnx_export(encoder: Encoder, seq, lengths, path: Path) -> None:
    torch.onnx.export(
        encoder,
        (seq, lengths),
        str(path),
        input_names=["item_seq", "lengths"],
        output_names=["user"],
        dynamic_axes={"item_seq": {0: "batch", 1: "length"}, "lengths": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


@torch.no_grad()
def _check(model, artifact: Artifact, tokens: list[str]) -> None:
    """The exported encoder against the eager model on random sessions of every length."""
    g = torch.Generator().manual_seed(0)
    L = artifact.max_len
    sessions = [
        [tokens[int(i)] for i in torch.randint(1, len(tokens), (n,), generator=g)]
        for n in (1, 2, max(1, L // 2), L, L + 5)
    ]
    ids, lengths = artifact.windows(sessions)
    eager = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    exported = artifact.encode(sessions)
    error = np.abs(exported - eager).max() / max(1e-12, np.abs(eager).max())
    if not error <= TOLERANCE:
        raise ConfigError(
            f"the exported encoder differs from the model by {error:.2e} (relative; allowed "
            f"{TOLERANCE}): nothing was written"
        )
