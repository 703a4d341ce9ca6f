"""Responses ids: ``resp_`` for responses and a prefix per output item kind, as OpenAI writes them."""

from __future__ import annotations

import secrets


def response_id() -> str:
    """A fresh response id."""
    return "resp_" + secrets.token_hex(24)


def item_id(prefix: str) -> str:
    """A fresh output item id (``msg``, ``rs``, ``fc``, ``ctc``)."""
    return f"{prefix}_" + secrets.token_hex(24)
