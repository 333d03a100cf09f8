"""RecBole's logging for the length of one run, and the caller's logging as it was afterwards.

RecBole's ``init_logger`` configures the *root* logger through ``logging.basicConfig`` (a log
file under ``./log/`` and a coloured console handler) and lets colorama wrap ``sys.stdout`` and
``sys.stderr``. ``basicConfig`` is a no-op once the root logger has handlers, so in one process a
second run would log into the first run's file, and a caller's own handlers would make RecBole's
set-up silently vanish. ``run_logging`` gives each run RecBole's set-up of its own and restores
the caller's handlers, level and streams when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

from recbole.utils import init_logger


@contextlib.contextmanager
def quiet_recbole() -> Iterator[None]:
    """Inside the block, RecBole's FutureWarnings (pandas' chained ``fillna`` in its data path,
    torch's renamed ``GradScaler`` in its trainer) are not shown: they tell a user of this
    package nothing and bury its own error lines. Every other warning is shown as before."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole(\.|$)")
        yield


@contextlib.contextmanager
def run_logging(config) -> Iterator[logging.Logger]:
    """RecBole's ``init_logger(config)`` inside the block; the caller's logging after it."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_streams = sys.stdout, sys.stderr
    for handler in saved_handlers:
        root.removeHandler(handler)
    try:
        # RecBole's ensure_dir checks, then creates: two processes of one distributed run
        # starting together race on it (FileExistsError in one of them)
        os.makedirs(os.path.join("log", config["model"]), exist_ok=True)
        init_logger(config)
        with quiet_recbole():
            yield root
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        sys.stdout, sys.stderr = saved_streams
