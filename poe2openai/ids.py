"""Identifiers handed to clients."""

from __future__ import annotations

import secrets


def completion_id() -> str:
    """``chatcmpl-`` and 24 hex digits, as OpenAI and Poe write them."""
    return "chatcmpl-" + secrets.token_hex(12)


def call_id() -> str:
    """A fresh tool-call id, ``call_`` and 24 hex digits."""
    return "call_" + secrets.token_hex(12)


def request_id() -> str:
    """A short id for one request, for logs and the ``x-request-id`` header."""
    return secrets.token_hex(8)
