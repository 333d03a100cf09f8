"""RecBole's named data sets (``recbole/properties/dataset/url.yaml``: ml-1m, amazon-*, yelp,
steam, ...), downloaded on first use.

RecBole 1.2.1 downloads and extracts them, then calls ``torch.distributed.barrier()``, which
raises in a single process (RecBole issues 1989, 2050); it also extracts straight into the data
folder, so an interrupted download leaves files the next run reads. Here the archive is fetched
with a progress bar into a temporary folder beside the data set's, extracted and renamed there
(RecBole's layout: atomic files at the archive's top, named after the archive), checked (an
interaction file with a header and a row of its fields), and moved into place only then: a
partial or broken download is never where a run would read it.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from logging import getLogger
from pathlib import Path

import recbole
import yaml

from ..core.keys import ConfigError

ATOMIC_SUFFIXES = (".inter", ".user", ".item", ".kg", ".link", ".net")


@functools.cache
def _urls() -> dict[str, str]:
    path = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def dataset_url(name: str) -> str | None:
    """Where RecBole downloads data set ``name`` from, or None if it is not one of RecBole's."""
    return _urls().get(name)


def download_dataset(name: str, folder: str | os.PathLike, url: str | None = None) -> Path:
    """Download RecBole's data set ``name`` into ``folder`` (the data set's own folder,
    ``<data_path>/<name>``); returns the path of its ``.inter`` file."""
    url = url or dataset_url(name)
    if url is None:
        raise ConfigError(f"dataset={name!r} is not one of the data sets RecBole downloads")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    logger = getLogger()
    logger.info(f"downloading data set {name!r} from {url} into {folder}")
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{name}.download-") as tmp:
        archive = Path(tmp) / url.rpartition("/")[2]
        _fetch(url, archive)
        extracted = Path(tmp) / "extracted"
        try:
            _extract(archive, extracted)
        except zipfile.BadZipFile as error:
            raise ConfigError(
                f"dataset={name!r}: the download from {url} is not a zip archive ({error}); "
                "nothing was kept, the next run downloads it again"
            ) from None
        _rename_atomic_files(extracted, archive.stem, name)
        if not (extracted / f"{name}.inter").is_file():
            raise ConfigError(
                f"the archive {url} holds no {name}.inter (found: "
                f"{sorted(p.name for p in extracted.iterdir())}); it is not in RecBole's layout"
            )
        why = _not_interactions(extracted / f"{name}.inter")
        if why:
            raise ConfigError(
                f"dataset={name!r}: the {name}.inter downloaded from {url} {why}; nothing was "
                f"installed, the next run downloads it again"
            )
        if not folder.exists():
            os.replace(extracted, folder)  # the whole folder at once
        else:  # the .inter file last: a run reads the data set only once it is there
            for path in sorted(extracted.iterdir(), key=lambda p: p.suffix == ".inter"):
                os.replace(path, folder / path.name)
    logger.info(f"data set {name!r} is in {folder}")
    return folder / f"{name}.inter"


def _not_interactions(path: Path) -> str | None:
    """Why ``path`` is not an interaction file (a header of name:type fields and a row of them),
    or None."""
    with open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace").rstrip("\r\n")
        row = next((line for line in f if line.strip()), None)
    fields = header.split("\t")
    if not header or not all(len(field.split(":")) == 2 for field in fields):
        return f"has no header of name:type fields (its first line is {header[:80]!r})"
    if row is None:
        return f"has a header ({header}) and no rows"
    if len(row.decode("utf-8", "replace").rstrip("\r\n").split("\t")) != len(fields):
        return f"has a first row without the {len(fields)} fields of its header ({header})"
    return None


def _fetch(url: str, path: Path) -> None:
    from tqdm import tqdm

    try:
        response = urllib.request.urlopen(url, timeout=60)
    except OSError as error:
        raise ConfigError(f"cannot download {url}: {error}") from None
    size = int(response.headers.get("Content-Length") or 0) or None
    with (
        response,
        open(path, "wb") as f,
        tqdm(
            total=size, unit="B", unit_scale=True, desc=f"download {path.name}", file=sys.stderr
        ) as bar,
    ):
        while chunk := response.read(1 << 20):
            f.write(chunk)
            bar.update(len(chunk))
    if size is not None and path.stat().st_size != size:
        raise ConfigError(f"download of {url} stopped at {path.stat().st_size} of {size} bytes")


def _extract(archive: Path, into: Path) -> None:
    """Extract a zip, refusing members that would land outside ``into``; a single top folder
    (some archives wrap their files in one) is unwrapped."""
    into.mkdir()
    with zipfile.ZipFile(archive) as z:
        for member in z.namelist():
            target = (into / member).resolve()
            if not str(target).startswith(str(into.resolve()) + os.sep):
                raise ConfigError(f"{archive.name}: member {member!r} points outside the archive")
        z.extractall(into)
    entries = list(into.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        for path in inner.iterdir():
            shutil.move(str(path), into / path.name)
        inner.rmdir()


def _rename_atomic_files(folder: Path, old: str, new: str) -> None:
    """RecBole's ``rename_atomic_files``: ``<old>.<suffix>`` -> ``<new>.<suffix>``."""
    for path in folder.iterdir():
        if path.suffix in ATOMIC_SUFFIXES and old in path.stem:
            path.rename(folder / (path.stem.replace(old, new) + path.suffix))
