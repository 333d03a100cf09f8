"""Which of several processes this one is: read from a configuration, by every layer."""

from __future__ import annotations


def world_and_rank(config) -> tuple[int, int]:
    """(processes in all, this process's rank); (1, 0) in a single process."""
    if config["single_spec"]:
        return 1, 0
    return config["world_size"], config["local_rank"] + (config["offset"] or 0)
