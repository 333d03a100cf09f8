"""Keep freed CPU memory in the process for reuse instead of handing it back every step (glibc).

glibc serves a large allocation with a fresh ``mmap`` and unmaps it on free, so a step that
allocates and frees the same large tensors (a softmax's logits and their gradients) faults those
pages in, zeroed, every step. Raising glibc's mmap and trim thresholds keeps freed memory with
the process, up to its peak (``python -m benchmarks.page_faults`` measures both).

``mallopt`` sets the allocator of the whole process, so a library call never makes it: the key
``keep_freed_memory`` asks for it, and only code that owns the process applies it (``run_recbole``,
the command lines, each Ray Tune trial in its worker). ``run_recbole`` makes it once the data is
loaded: made before, the memory loading frees would stay with the process for good, though the
training steps never reuse most of it. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Mapping
from typing import Any

from ..core.keys import boolean

KEY = "keep_freed_memory"
KEYS = (
    boolean(
        KEY,
        True,
        "glibc: keep memory freed during training for reuse; set by the process's owner, never "
        "by a model",
    ),
)
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 2**20  # allocations below this come from the heap, not a fresh mmap
TRIM_THRESHOLD = 1024 * 2**20  # free memory at the heap's top kept up to this much


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; True if glibc accepted both."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    accepted = [
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ]
    return all(accepted)  # mallopt returns 1 on success


def apply_allocator_setting(config: Mapping[str, Any] | Any) -> bool:
    """``keep_freed_memory()`` when the configuration's ``keep_freed_memory`` key is True (a
    RecBole ``Config`` or a dict; a model without the key leaves the allocator alone)."""
    if KEY in config and config[KEY] is True:
        return keep_freed_memory()
    return False
