"""Checkpoints that load without unpickling code, and that know the data they were trained on.

RecBole's checkpoints pickle the ``Config`` object, so reading one needs
``torch.load(weights_only=False)``, which runs whatever code a crafted file carries. Ours hold
plain data only, and every reader here loads them with ``weights_only=True``:

    format            "recbole_sasrec/1"
    version           this package's version
    config            the final configuration as primitives, lists and dicts (``config_to_plain``)
    data              the data fingerprint (``fingerprint.data_fingerprint``)
    state_dict, optimizer, other_parameter, epoch, cur_step, best_valid_score   (RecBole's)

A file that needs full unpickling (RecBole's own format) is refused with a
message that says how to opt in: ``allow_pickle=True`` (command line: ``--allow-pickle``), for a
file one trusts. A file of another ``format`` is refused naming it; weights that the stored
configuration does not build (an edited ``hidden_size``) are refused naming the keys that differ.
A save that finds its disk full names the file and keeps the last good checkpoint.

The data fingerprint (``fingerprint.py``) records the users, items and file the weights were
trained on; loading checks it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from importlib.metadata import PackageNotFoundError, version
from logging import getLogger
from pathlib import Path
from typing import Any

import psutil
import torch

from ..core.files import atomic_open, temporaries
from ..core.keys import ConfigError

FORMAT = "recbole_sasrec/1"
# Set by Config itself, rebuilt from the rest: not stored.
DERIVED_KEYS = frozenset(
    {
        "MODEL_TYPE",
        "MODEL_INPUT_TYPE",
        "eval_type",
        "device",
        "single_spec",
        "local_rank",
        "valid_neg_sample_args",
        "test_neg_sample_args",
        "config_files",
    }
)


def package_version() -> str:
    try:
        return version("recbole-sasrec")
    except PackageNotFoundError:  # a checkout that is not installed
        return "unknown"


def config_to_plain(config) -> dict[str, Any]:
    """The configuration a ``Config`` can be rebuilt from: its final keys without the derived
    ones, ``data_path`` as the absolute folder that holds the data set's folder (none for
    RecBole's bundled ml-100k, found again wherever recbole is installed)."""
    from .config import BUNDLED, bundled_data_path

    plain = {k: v for k, v in config.final_config_dict.items() if k not in DERIVED_KEYS}
    folder = os.path.abspath(config["data_path"])
    if config["dataset"] == BUNDLED and os.path.realpath(folder) == os.path.realpath(
        bundled_data_path()
    ):
        del plain["data_path"]
    else:
        plain["data_path"] = os.path.dirname(folder)
    neg = plain.get("train_neg_sample_args")
    if isinstance(neg, dict) and neg.get("distribution") == "none":
        plain["train_neg_sample_args"] = None  # what RecBole's "none" is normalised from
    bad = {k: type(v).__name__ for k, v in plain.items() if not _is_plain(v)}
    if bad:
        raise TypeError(f"configuration values that are not plain data: {bad}")
    return plain


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(map(_is_plain, value))
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def config_from_plain(plain: dict[str, Any], data_path: str | None = None):
    """The ``Config`` a checkpoint was trained with (``data_path`` to read the data elsewhere)."""
    from .config import Config

    values = dict(plain)
    if data_path is not None:
        values["data_path"] = os.path.abspath(data_path)
    model, dataset = values.pop("model"), values.pop("dataset")
    return Config(model=model, dataset=dataset, config_dict=values)


# ---- the weights ----------------------------------------------------------------------------
def first_few(lines: list[str], shown: int = 4) -> str:
    """The first ``shown`` of ``lines`` joined by '; ', and how many more there are."""
    more = f"; and {len(lines) - shown} more" if len(lines) > shown else ""
    return "; ".join(lines[:shown]) + more


def load_weights(model: torch.nn.Module, state_dict: dict, model_file: str) -> None:
    """``model.load_state_dict(state_dict)``, or ``ConfigError`` naming the weights that the
    model built from the checkpoint's configuration does not have, or has in another shape."""
    own = model.state_dict()
    # buffers a module fills in itself when an older file lacks them (``optional_buffers``)
    optional = {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in getattr(module, "optional_buffers", ())
    }
    lines = [
        f"{k}: missing from the file" for k in own if k not in state_dict and k not in optional
    ]
    lines += [f"{k}: not in the model" for k in state_dict if k not in own]
    lines += [
        f"{k}: {list(v.shape)} in the file, {list(own[k].shape)} built"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape
    ]
    if lines:
        shown = first_few(lines)
        raise ConfigError(
            f"model_file={model_file!r}: its configuration does not fit its weights (edited, or "
            f"the weights of another model): {len(lines)} weight(s) differ: {shown}; allowed: "
            f"the configuration the weights were trained with (hidden_size, inner_size, n_layers, "
            f"MAX_ITEM_LIST_LENGTH, ... as training wrote them)"
        )
    model.load_state_dict(state_dict)


# ---- files ------------------------------------------------------------------------------------
class _WholeWrites:
    """A raw (unbuffered) file that ``torch.save`` writes through, each write retried until
    whole: a full disk then reaches us as the ``OSError`` it is (ENOSPC), where a buffered file
    gives torch's RuntimeError ("unexpected pos")."""

    def __init__(self, raw):
        self.raw = raw

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        while view:
            view = view[self.raw.write(view) :]
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def save_checkpoint(path: str, state: dict[str, Any], config, fingerprint: dict | None) -> None:
    """Write ``state`` (RecBole's checkpoint keys) in our format, atomically: when the write
    fails (``core.files.NoSpaceError`` for a full disk) the last good file at ``path`` stays."""
    checkpoint = {
        "format": FORMAT,
        "version": package_version(),
        **{k: v for k, v in state.items() if k != "config"},
        "config": config_to_plain(config),
        "data": fingerprint,
    }
    with atomic_open(path, "wb", buffering=0) as f:
        torch.save(checkpoint, _WholeWrites(f))  # the default protocol: weights_only reads no other


def remove_stale_temporaries(folder: str) -> list[Path]:
    """Remove the half-written checkpoints (``.<name>.pth.<random>.tmp``) that a run killed
    during a save left in ``folder``, logging each; those last written before this process
    started only (a run saving beside this one keeps writing its own). Returns them."""
    started = psutil.Process().create_time()
    removed = []
    for path, target in temporaries(folder).items():
        try:
            stale = target.endswith(".pth") and path.stat().st_mtime < started
            if stale:
                path.unlink()
        except FileNotFoundError:  # its run finished it meanwhile
            continue
        if stale:
            removed.append(path)
            getLogger().warning(
                f"removed {path}: a checkpoint ({target}) that a stopped run was writing"
            )
    return removed


def load_checkpoint(path: str, map_location: Any = "cpu", allow_pickle: bool = False) -> dict:
    """A checkpoint loaded with ``torch.load(weights_only=True)``: nothing in the file can run.
    A file that needs full unpickling is refused unless ``allow_pickle`` (then it is loaded in
    full, and a pickled RecBole ``Config`` is turned into plain data)."""
    if not os.path.isfile(path):
        raise ConfigError(f"model_file={path!r} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise ConfigError(f"model_file={path!r} is not a checkpoint (not a file torch.save wrote)")
    try:
        return _known_format(torch.load(path, map_location=map_location, weights_only=True), path)
    except pickle.UnpicklingError:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            unsafe = None
        if not unsafe:
            raise ConfigError(
                f"model_file={path!r} is not a checkpoint (it does not unpickle)"
            ) from None
        if not allow_pickle:
            # torch lists them from a set, in an order that changes from process to process
            names = sorted(unsafe)
            named = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            raise ConfigError(
                f"model_file={path!r} needs full unpickling to load (RecBole's checkpoint "
                f"format, or a file recbole_sasrec did not write): it names {named}, and "
                f"unpickling can run any code a file holds; if you trust the file, allow it: "
                f"allow_pickle=True (command line: --allow-pickle)"
            ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ConfigError(f"model_file={path!r} is not a checkpoint: {error}") from None
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    if isinstance(checkpoint, dict) and "format" in checkpoint:
        _known_format(checkpoint, path)
    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    if config is not None and not isinstance(config, dict):
        checkpoint["config"] = config_to_plain(config)
    return checkpoint


def _known_format(checkpoint: Any, path: str) -> dict:
    """``checkpoint`` when it is of ``FORMAT``, else ``ConfigError`` naming its format (RecBole's
    own, loaded with ``allow_pickle``, records none and is not passed here)."""
    found = checkpoint.get("format") if isinstance(checkpoint, dict) else None
    if found != FORMAT:
        what = f"format {found!r}" if found is not None else "no format"
        raise ConfigError(
            f"model_file={path!r} is not a checkpoint written by recbole_sasrec "
            f"{package_version()}: it records {what}; allowed: format {FORMAT!r}"
        )
    return checkpoint
