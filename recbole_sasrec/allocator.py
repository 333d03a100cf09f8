"""Keep freed CPU memory in the process for reuse instead of handing it back every step (glibc).

glibc's malloc serves a large allocation with a fresh ``mmap`` and unmaps it on free (above a
threshold that starts at 128 KiB and adapts up to 32 MiB). A training step allocates and frees the
same large tensors every step (the [N, n_items] logits of the full softmax and their gradients
are about 34 MiB each on ml-100k), so every step faults those pages in and the kernel zeroes them
again. Measured on this project's 2-core machine (2026-11-22, ml-100k, SASRec defaults):
300k-600k page faults and 0.8-1.5 s of kernel time per training epoch, 3.0-3.5 s an epoch;
with the settings below, about no page faults and 2.4 s an epoch.

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
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
