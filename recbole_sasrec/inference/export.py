"""Export a checkpoint to a folder that serves without RecBole, torch or the training data.

    python -m recbole_sasrec export --model-file saved/SASRec-....pth --out model_dir/ [--ann]
    python -m recbole_sasrec export --model-file ... --out model_dir/ --items new.item

Writes what ``artifact.Artifact`` loads; with ``--items``, items never seen in training join the
table with their attributes' vectors (``new_items.py``). The encoder goes to ONNX with dynamic
batch and sequence length (torch's TorchScript-based exporter: the dynamo exporter's graphs of
LightSANs do not load at opset 17) and is checked against the eager model on sessions of every
length up to five past ``MAX_ITEM_LIST_LENGTH`` before the folder is moved into place, whole,
under its name.
``--replace`` replaces only an earlier export.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.keys import ConfigError
from ..data.new_items import file_format
from ..integration.checkpoint import package_version
from ..integration.fingerprint import data_fingerprint
from ..integration.quick_start import load_model
from ..integration.registry import is_ours
from . import checks, new_items
from .artifact import EARLIER_FORMATS, FORMAT, Artifact
from .output import reporting_full_disk
from .topk import ApproximateIndex, _faiss

OPSET = 17
TOLERANCE = 1e-4  # exported scores within this relative distance of the eager model's


class Encoder(nn.Module):
    """item_vectors [B, T, D] (the session's items looked up in ``items.npy``), lengths [B] ->
    the state after each sequence's last item [B, D], every sequence encoded whole (the eager
    model's length groups are control flow ONNX cannot hold). The item table stays outside the
    graph: one copy in the folder, and a table that can grow by new items."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, item_vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.encode(item_vectors, lengths - 1, lengths=lengths)[:, 0]


def _check_out(out: Path, replace: bool) -> None:
    """``out`` can take the export: a new name in a folder that exists, or with ``replace`` a
    complete earlier export, never the current folder or one that holds it."""
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise ConfigError(
            f"out={str(out)!r} is the current folder or holds it; allowed: a new folder's "
            f"name, e.g. --out model_dir"
        )
    if out.exists() or out.is_symlink():
        if not replace:
            raise ConfigError(f"out={str(out)!r} exists; allowed: another folder, or --replace")
        if problem := checks.earlier_export_problem(out, (FORMAT, *EARLIER_FORMATS)):
            raise ConfigError(
                f"out={str(out)!r} is not a folder an export wrote ({problem}): --replace "
                f"replaces only an earlier export; allowed: another folder, or remove it yourself"
            )
    if not out.parent.is_dir():
        raise ConfigError(f"out={str(out)!r}: folder {str(out.parent)!r} does not exist")


def export(
    model_file: str,
    out: str | os.PathLike,
    data_path: str | None = None,
    allow_pickle: bool = False,
    ann: bool = False,
    replace: bool = False,
    items: str | os.PathLike | None = None,
    items_format: str | None = None,
    boost: float = 0.0,
) -> Path:
    """Write the folder ``out`` for ``model_file``; returns its path. ``ann``: also a faiss
    HNSW index for approximate top-k; ``replace``: overwrite ``out`` if it is an earlier export
    (any other folder or file is refused); ``items``: new items' attributes (a ``.item`` file or
    the attribute JSON, ``items_format`` as ``Recommender.add_items`` reads it) whose vectors
    join the table, ranked with ``boost`` added to their scores (as ``add_items`` adds it;
    kept in ``metadata.json``, so exact ranking only: refused with ``ann``). ``out`` is
    checked before the model loads; a full disk is a ``DiskFullError`` that names ``out`` and
    keeps what was there."""
    ann, replace = checks.flag("ann", ann), checks.flag("replace", replace)
    boost = checks.score("boost", boost)
    if boost != 0.0 and (items is None or ann):
        raise ConfigError(
            f"boost={boost!r} is added to the scores of the items of items= (given: {items!r}), "
            f"and an approximate index (ann={ann!r}) cannot add it; allowed: boost=0, or items "
            f"with ann=False"
        )
    _check_out(Path(out), replace)
    out = Path(os.path.normpath(out))  # a name of its own for the temporary folder beside it
    if ann:
        _faiss()  # installed, before the model loads
    if items is not None:
        file_format(items, items_format)
        if not Path(items).is_file():
            raise ConfigError(
                f"items={str(items)!r}: no such file; allowed: a .item file or attribute JSON"
            )
    config, model, dataset = load_model(model_file, data_path, allow_pickle)
    if not is_ours(type(model)):
        raise ConfigError(
            f"model_file={model_file!r} is a {config['model']} checkpoint; export serves "
            f"recbole_sasrec's SASRec and LightSANs"
        )
    model = model.cpu().eval()
    with torch.no_grad():
        table = model.item_vectors().float().numpy()
    if problem := checks.item_table_problem(table):
        raise ConfigError(f"model_file={model_file!r}: {problem}; nothing was written")
    tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    if items is not None:
        catalogue = dict(zip(tokens, range(len(tokens)), strict=True))
        new = new_items.read_for_model(
            model_file, config, model, dataset, items, catalogue, items_format
        )
        table = np.concatenate([table, new_items.vectors_for_model(model, new)])
        tokens += new.tokens
    with reporting_full_disk(out, "folder"):
        _write(out, replace, model, config, dataset, table, tokens, ann, boost)
    return out


def _write(
    out: Path, replace: bool, model, config, dataset, items, tokens, ann: bool, boost: float
) -> None:
    """The folder built beside ``out``, checked, then moved into place whole."""
    L = config["MAX_ITEM_LIST_LENGTH"]
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.export-") as tmp:
        folder = Path(tmp) / out.name
        folder.mkdir()
        _write_encoder(model, L, config["hidden_size"], folder / checks.ENCODER)
        np.save(folder / checks.ITEMS, items)
        (folder / checks.TOKENS).write_text(json.dumps(tokens))
        if ann:
            ApproximateIndex.build(items).write(folder / checks.INDEX)
        attributes = new_items.attribute_tables(model, dataset, config)
        if attributes is not None:  # what Artifact.add_items needs
            attributes.write(folder)
        keys = {key.name: config[key.name] for key in type(model).KEYS}
        metadata = {
            "format": FORMAT,
            "model": config["model"],
            "dataset": config["dataset"],
            "max_item_list_length": L,
            "hidden_size": config["hidden_size"],
            "config": keys,
            "data": data_fingerprint(dataset, config),
            "version": package_version(),
            "new_items": len(tokens) - model.n_items,  # rows after the trained ones: no id row
            "new_items_boost": boost,  # added to their scores
            "files": {p.name: checks.sha256(p) for p in sorted(folder.iterdir())},
        }
        (folder / checks.METADATA).write_text(json.dumps(metadata, indent=1))
        _check(model, Artifact.load(folder, approximate=ann), tokens)
        if out.exists() or out.is_symlink():
            # checked again: the folder may have changed while the model loaded and exported
            _check_out(out, replace)
            old = Path(tmp) / "replaced"
            os.replace(out, old)  # the old folder leaves only once the new one is complete
            try:
                os.replace(folder, out)
            except OSError:
                os.replace(old, out)
                raise
        else:
            os.replace(folder, out)


def _write_encoder(model, max_len: int, hidden_size: int, path: Path) -> None:
    """The encoder as ONNX at ``path``, its window and width in its own metadata (the
    artifact's loader holds ``metadata.json`` to them)."""
    seq = torch.randint(1, model.n_items, (3, max_len), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        vectors = model.item_vectors()[seq]  # [3, L, D]
    lengths = torch.tensor([max_len, max(1, max_len // 2), 1])
    encoder = Encoder(model).eval()  # the exporter restores the mode it finds, recursively
    with warnings.catch_warnings():  # the tracer's notes on shapes the exporter keeps dynamic
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        _onnx_export(encoder, vectors, lengths, path)
    import onnx

    graph = onnx.load(str(path))
    for key, value in (("max_item_list_length", max_len), ("hidden_size", hidden_size)):
        graph.metadata_props.add(key=key, value=str(value))
    onnx.save(graph, str(path))


def _onnx_export(encoder: Encoder, vectors, lengths, path: Path) -> None:
    torch.onnx.export(
        encoder,
        (vectors, lengths),
        str(path),
        input_names=["item_vectors", "lengths"],
        output_names=["user"],
        dynamic_axes={"item_vectors": {0: "batch", 1: "length"}, "lengths": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


@torch.no_grad()
def _check(model, artifact: Artifact, tokens: list[str]) -> None:
    """The exported encoder against the eager model on random sessions of trained items, of
    every length 1 to L + 5 (L = MAX_ITEM_LIST_LENGTH), each alone (windows of every width T)
    and all in one batch (right-padded rows of several lengths)."""
    g = torch.Generator().manual_seed(0)
    L = artifact.max_len
    sessions = [
        [tokens[int(i)] for i in torch.randint(1, model.n_items, (n,), generator=g)]
        for n in range(1, L + 6)
    ]
    eager, exported = [], []
    for batch in [[s] for s in sessions] + [sessions]:
        ids, lengths = artifact.windows(batch)
        eager.append(model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy())
        exported.append(artifact.encode(batch))
    eager, exported = np.concatenate(eager), np.concatenate(exported)  # [2 (L + 5), D]
    error = np.abs(exported - eager).max() / max(1e-12, np.abs(eager).max())
    if not error <= TOLERANCE:
        raise ConfigError(
            f"the exported encoder differs from the model by {error:.2e} (relative; allowed "
            f"{TOLERANCE}): nothing was written"
        )
