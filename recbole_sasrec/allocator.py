"""Keep freed CPU memory in the process for reuse instead of handing it back every step (glibc).

glibc's malloc serves a large allocation with a fresh ``mmap`` and unmaps it on free (above a
threshold that starts at 128 KiB and adapts up to 32 MiB). A training step allocates and frees the
same large tensors every step (the [N, n_items] logits of the full softmax and their gradients
are about 34 MiB each on ml-100k), so every step faults those pages in and the kernel zeroes them
again. ``python -m benchmarks.page_faults`` (2026-11-22, this project's 2-core machine, ml-100k,
SASRec defaults): 136k-272k page faults, 0.40-0.60 s of kernel CPU and 2.67-2.86 s per training
epoch with glibc's defaults; with the settings below, under 100 page faults after the first
epoch and 2.48-2.53 s.

The price is that memory freed during training stays with the process for reuse (up to its
peak; the peak itself does not change). ``mallopt`` sets the C allocator of the whole process,
once; our models call ``keep_freed_memory`` when they are built. Elsewhere than glibc (macOS,
musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

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
