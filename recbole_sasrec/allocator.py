"""Keep freed CPU memory in the process for reuse instead of handing it back every step (glibc).

glibc's malloc serves a large allocation with a fresh ``mmap`` and unmaps it on free (above a
threshold that starts at 128 KiB and adapts up to 32 MiB). A training step allocates and frees the
same large tensors every step (the logits of a full softmax and their gradients, tens of MiB
each), so every step faults those pages in and the kernel zeroes them again. Raising the two
thresholds makes freed memory stay with the process for reuse, up to its peak (the peak itself
does not change). ``python -m benchmarks.page_faults`` measures epoch time, kernel time and page
faults with and without it (results: docs/results.md).

``mallopt`` sets the C allocator of the whole process, so a library call never makes it: the
configuration key ``keep_freed_memory`` asks for it, and only the code that owns the process
applies it (``run_recbole`` and the command lines, and each Ray Tune trial in its worker).
Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Mapping
from typing import Any

KEY = "keep_freed_memory"
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
