"""What the HTTP server accepts as a request body, and the refusal it answers otherwise.

    {"items": ["242", "302"], "k": 10, "exclude": ["51"]}

``items``: the session's item tokens, oldest first (required); ``k``: how many to recommend
(10); ``exclude``: tokens never to recommend. Anything else is a ``Refused`` naming what was
wrong and what is allowed.
"""

from __future__ import annotations

import json
from http import HTTPStatus

KEYS = ("items", "k", "exclude")


class Refused(ValueError):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def _tokens(request: dict, key: str) -> list[str]:
    value = request[key]
    if not isinstance(value, list):  # a bare string would be iterated as one-letter tokens
        raise Refused(
            HTTPStatus.BAD_REQUEST,
            f'"{key}" is {type(value).__name__} {value!r:.80}; allowed: a list of item tokens '
            f'(strings), e.g. ["242", "302"]',
        )
    for i, token in enumerate(value):
        if not isinstance(token, str):
            raise Refused(
                HTTPStatus.BAD_REQUEST,
                f'"{key}"[{i}] is {type(token).__name__} {token!r:.80}; allowed: an item token '
                f'(a string, e.g. "242")',
            )
    return value


def parse_request(body: bytes) -> tuple[list[str], int, list[str]]:
    """A request body -> (items, k, exclude); a ``Refused`` (400) names what is wrong."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: [[[[...]]]] nested deep
        raise Refused(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {error}") from None
    if not isinstance(request, dict):
        raise Refused(
            HTTPStatus.BAD_REQUEST,
            f"the body is a JSON {type(request).__name__}; allowed: an object "
            f'{{"items": [...], "k": 10, "exclude": [...]}}',
        )
    unknown = [key for key in request if key not in KEYS]
    if unknown:
        raise Refused(
            HTTPStatus.BAD_REQUEST,
            f"unknown keys {', '.join(map(repr, unknown))}; allowed: {', '.join(KEYS)}",
        )
    if "items" not in request:
        raise Refused(HTTPStatus.BAD_REQUEST, 'missing "items": the session\'s item tokens')
    k = request.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise Refused(
            HTTPStatus.BAD_REQUEST, f'"k" is {json.dumps(k):.80}; allowed: a positive integer'
        )
    exclude = _tokens(request, "exclude") if "exclude" in request else []
    return _tokens(request, "items"), k, exclude
