"""Configuration keys, each declared once, next to the code that reads it.

A ``Key`` says a key's name, default, what is allowed and what it means in one line. The
integration layer collects the declarations of everything a model uses: its defaults, one loop
of checks before any data is loaded, its property file and the README's table (both generated
and held equal to the declarations by a test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration value this package cannot train with; names the key, value and allowed."""


RECBOLE = object()  # the default of a RecBole key we only check: RecBole's default stands

Text = str | Callable[[], str]  # a text, or a function that says it when asked (a registry)


def _say(text: Text) -> str:
    return text() if callable(text) else text


@dataclass(frozen=True)
class Key:
    """``valid(value)`` judges the value alone, ``must`` says what it must be; ``relation(config)``
    judges it beside other keys and returns the whole error message, or None."""

    name: str
    default: Any
    meaning: str
    kind: str  # the property file's type: bool, int, float, str, list
    valid: Callable[[Any], bool]
    must: Text
    allowed_text: Text
    relation: Callable[[Mapping], str | None] | None = None

    @property
    def allowed(self) -> str:
        return _say(self.allowed_text)

    @property
    def ours(self) -> bool:
        """Whether this package sets the default (else RecBole's stands)."""
        return self.default is not RECBOLE

    def check(self, config) -> None:
        check_all([self], config)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def boolean(name: str, default, meaning: str, relation=None) -> Key:
    valid = lambda v: isinstance(v, bool)  # noqa: E731
    return Key(name, default, meaning, "bool", valid, "must be True or False", "bool", relation)


def choice(
    name: str,
    default,
    options: Iterable[str] | Callable[[], Iterable[str]],
    meaning: str,
    relation=None,
) -> Key:
    """``options``: the values, or a function that lists them (a registry filled later)."""
    listed = options if callable(options) else (lambda fixed=tuple(options): fixed)
    allowed = lambda: ", ".join(listed())  # noqa: E731
    return Key(
        name,
        default,
        meaning,
        "str",
        lambda v: v in tuple(listed()),
        lambda: f"is not supported; allowed: {allowed()}",
        allowed,
        relation,
    )


def integer(
    name: str, default, meaning: str, low: int = 1, allowed: Text = "", relation=None, why=""
) -> Key:
    """An integer >= ``low``; ``why`` is added to the error (what a smaller value would do)."""
    must = "must be a positive integer (1, 2, ...)" if low == 1 else f"must be an integer >= {low}"
    must += f" ({why})" if why else ""
    valid = lambda v: _int(v) and v >= low  # noqa: E731
    return Key(name, default, meaning, "int", valid, must, allowed or f"int >= {low}", relation)


def number(
    name: str,
    default,
    meaning: str,
    low: float = 0.0,
    high: float = float("inf"),
    closed: tuple[bool, bool] = (False, False),
    must: str = "",
    relation=None,
) -> Key:
    """A number between ``low`` and ``high``, each end included where ``closed`` says."""
    if high == float("inf") and not closed[0]:
        text = f"> {low:g}"
    else:
        text = "[("[not closed[0]] + f"{low:g}, {high:g}" + "])"[not closed[1]]

    def valid(v) -> bool:
        if not _number(v):
            return False
        return (v >= low if closed[0] else v > low) and (v <= high if closed[1] else v < high)

    must = must or f"must be a number in {text}"
    return Key(name, default, meaning, "float", valid, must, text, relation)


class Values:
    """A configuration read as RecBole's ``Config`` reads: a missing key is None."""

    def __init__(self, config):
        self.config = config

    def __getitem__(self, key: str):
        if isinstance(self.config, Mapping):
            return self.config.get(key)
        return self.config[key]


def check_all(keys: Iterable[Key], config) -> None:
    """``ConfigError`` for the first key, in declaration order, whose value alone is not allowed;
    then for the first that does not go with the others."""
    keys, values = list(keys), Values(config)
    for key in keys:
        if not key.valid(values[key.name]):
            raise ConfigError(f"{key.name}={values[key.name]!r} {_say(key.must)}")
    for key in keys:
        if key.relation is not None and (why := key.relation(values)):
            raise ConfigError(why)
