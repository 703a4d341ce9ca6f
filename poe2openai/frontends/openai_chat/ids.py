"""Chat Completions ids."""

from __future__ import annotations

import secrets


def completion_id() -> str:
    """``chatcmpl-`` and 24 hex digits, as OpenAI and Poe write them."""
    return "chatcmpl-" + secrets.token_hex(12)
