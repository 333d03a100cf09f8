"""Configuration checks that fail before any data is loaded or any step is trained.

Every message names the key, the value given and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A configuration value this package cannot train with."""


def _get(config: Any, key: str) -> Any:
    """``config[key]`` for a RecBole ``Config`` or a plain dict; None when the key is absent."""
    return config[key] if key in config else None


def check_choice(config: Any, key: str, allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    value = _get(config, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not supported; allowed: {', '.join(allowed)}")


def check_positive_int(config: Any, key: str) -> None:
    value = _get(config, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value!r} must be a positive integer (1, 2, ...)")


def check_positive(config: Any, key: str) -> None:
    value = _get(config, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{key}={value!r} must be a number > 0")


def check_probability(config: Any, key: str) -> None:
    value = _get(config, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r} must be a dropout probability in [0, 1)")


def check_bool(config: Any, key: str) -> None:
    value = _get(config, key)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be True or False")
