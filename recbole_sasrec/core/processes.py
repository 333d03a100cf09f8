"""Which of several processes this one is, read from a configuration; and handing this
process's freed memory back to the system. Used by every layer."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


def world_and_rank(config) -> tuple[int, int]:
    """(processes in all, this process's rank); (1, 0) in a single process."""
    if config["single_spec"]:
        return 1, 0
    return config["world_size"], config["local_rank"] + (config["offset"] or 0)


@functools.cache
def _malloc_trim():
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def hand_back_freed_memory() -> bool:
    """Return the pages of memory freed so far to the system (glibc's ``malloc_trim``): after a
    large read whose temporaries are gone, so that they do not count in the process's resident
    memory for the rest of its life. Changes no setting; True if glibc returned any."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
