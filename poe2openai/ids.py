"""Identifiers the gateway makes: tool-call ids and request ids."""

from __future__ import annotations

import secrets


def call_id() -> str:
    """A fresh tool-call id, ``call_`` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


def request_id() -> str:
    """A short id for one request, for logs and the ``x-request-id`` header."""
    return secrets.token_hex(8)
