"""Errors a client sees, in OpenAI's shape ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_MESSAGE = 1000  # characters of a message or param; no error sends megabytes back


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE]}… ({len(text) - MAX_MESSAGE} characters cut)"


class ApiError(Exception):
    """An error answered to the client with ``status`` and OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> None:
        message = _cut(message) or ""
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = _cut(param)
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        # Whether one more attempt upstream may succeed (used before the first byte only).
        self.retryable = retryable

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {...}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r}, code={self.code!r})"


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    """A 400 naming the offending field."""
    return ApiError(400, message, type="invalid_request_error", param=param, code=code)


def unauthorized(message: str) -> ApiError:
    """A 401 for a missing or rejected key."""
    return ApiError(401, message, type="authentication_error", code="invalid_api_key")


def not_found(message: str, code: str = "not_found") -> ApiError:
    """A 404."""
    return ApiError(404, message, type="invalid_request_error", code=code)


def upstream(message: str, status: int = 502, code: str = "upstream_error", retryable: bool = False) -> ApiError:
    """A failure of Poe itself (5xx)."""
    kind = "timeout_error" if status == 504 else "api_error"
    return ApiError(status, message, type=kind, code=code, retryable=retryable)


def shown(value: object, limit: int = 100) -> str:
    """A client's value for an error message: strings and numbers cut to ``limit`` characters
    (the repr of the cut string), containers by their kind only, so an echo stays small."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    if value is None or isinstance(value, (bool, int, float)):
        text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else "a huge number"
        return text[:limit]
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# JSON values the gateway re-encodes into Poe's query (tool parameters, tool-call arguments,
# bot parameters) nest at most this deep: orjson's encoder stops at 254 levels, and the query
# wraps them in a few levels of its own.
MAX_NESTING = 128


def too_deep(value: object, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` has lists or objects nested more than ``limit`` levels (iterative)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def check_nesting(value: object, where: str) -> None:
    """A 400 naming ``where`` if ``value`` nests deeper than :data:`MAX_NESTING`."""
    if too_deep(value):
        raise bad_request(f"{where} nests deeper than {MAX_NESTING} levels", where)
