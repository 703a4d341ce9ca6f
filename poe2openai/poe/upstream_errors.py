"""Classify Poe failures (HTTP statuses, ``error`` events) as client-facing :class:`ApiError`s."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from poe2openai.errors import ApiError
from poe2openai.poe.events import Error

_NO_RETRY = {"x-should-retry": "false", "retry-after": "3600"}  # only a top-up helps, not a retry
# Poe counts 500 requests a minute per key; without a hint, a retry in a few seconds may fit
RETRY_AFTER_ESTIMATE = 20
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")
QUOTA_MESSAGE = "Your Poe account does not have enough points for this request."


def _quota(message: str) -> ApiError:
    # OpenAI answers an exhausted quota with 429 insufficient_quota; clients know that shape.
    # x-should-retry stops the SDKs from retrying something only a top-up fixes.
    return ApiError(429, message, type="insufficient_quota", code="insufficient_quota", headers=_NO_RETRY)


def _message_from_body(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return text[:500]
    if isinstance(data, dict):
        err = data.get("error", data.get("detail"))
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return text[:500]


def retry_after(value: str | None, reset: str | None = None) -> str:
    """``retry-after`` seconds for a 429: Poe's ``Retry-After``, else its
    ``x-ratelimit-reset-requests`` (``"20"``, ``"1m30s"``, ``"850ms"``), else the estimate."""
    if value and value.strip().isdigit():
        return value.strip()
    if reset:
        text = reset.strip()
        seconds: float | None = None
        try:
            seconds = float(text)
        except ValueError:
            m = _DURATION.fullmatch(text)
            if m and any(m.groups()):
                minutes, secs, millis = (float(g) if g else 0.0 for g in m.groups())
                seconds = minutes * 60 + secs + millis / 1000
        if seconds is not None and math.isfinite(seconds) and 0 <= seconds < 86_400:
            return str(max(1, math.ceil(seconds)))
    return str(RETRY_AFTER_ESTIMATE)


def rate_limited(message: str, value: str | None = None, reset: str | None = None) -> ApiError:
    """A 429 ``rate_limit_exceeded``, always with ``retry-after``."""
    headers = {"retry-after": retry_after(value, reset)}
    return ApiError(429, message, type="rate_limit_error", code="rate_limit_exceeded", headers=headers)


def from_http(status: int, body: bytes, retry_after: str | None, bot: str, reset: str | None = None) -> ApiError:
    """A non-2xx answer from ``/bot/{name}``."""
    detail = _message_from_body(body) or f"HTTP {status}"
    if status == 401:
        return ApiError(401, f"Poe rejected the API key: {detail}", type="authentication_error", code="invalid_api_key")
    if status == 403:
        return ApiError(403, f"Poe refused access: {detail}", type="permission_error", code="permission_denied")
    if status == 402:
        return _quota(f"{QUOTA_MESSAGE} ({detail})")
    if status == 404:
        return ApiError(
            404, f"The model '{bot}' does not exist on Poe: {detail}", code="model_not_found", param="model"
        )
    if status == 429:
        return rate_limited(f"Poe rate limit: {detail}", retry_after, reset)
    if status in (408, 504):
        return ApiError(504, f"Poe timed out: {detail}", type="timeout_error", code="upstream_timeout", retryable=True)
    if 400 <= status < 500:
        return ApiError(400, f"Poe rejected the request: {detail}", code="upstream_bad_request")
    return ApiError(
        502, f"Poe failed (HTTP {status}): {detail}", type="api_error", code="upstream_error", retryable=True
    )


def from_event(event: Error, bot: str) -> ApiError:
    """An ``error`` event inside a 200 stream."""
    text = event.text
    low = text.lower()
    kind = event.error_type
    if (
        kind == "insufficient_fund"
        or "enough points" in low
        or "needs more points" in low
        or "used up your points" in low
    ):
        return _quota(text)
    if kind == "user_message_too_long":
        return ApiError(400, text, code="context_length_exceeded", param="messages")
    if kind == "privacy_authorization_error":
        return ApiError(403, text, type="permission_error", code="privacy_authorization_required")
    if kind == "user_caused_error":
        return ApiError(400, text, code="user_caused_error")
    if kind == "protocol_error":
        return ApiError(502, text, type="api_error", code="upstream_protocol_error")
    if "rate limit" in low:
        return rate_limited(text)
    if "invalid token" in low or "unauthorized" in low or "invalid api key" in low:
        return ApiError(401, text, type="authentication_error", code="invalid_api_key")
    if "does not exist" in low or "bot not found" in low:
        return ApiError(404, f"The model '{bot}' does not exist on Poe: {text}", code="model_not_found", param="model")
    return ApiError(502, text, type="api_error", code="upstream_error", retryable=event.allow_retry)
