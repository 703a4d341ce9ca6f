"""Reading the ``data:`` frames of a Chat Completions stream in tests."""

from __future__ import annotations

from typing import Any

import orjson


def data_frames(raw: bytes) -> list[Any]:
    """Each ``data:`` frame decoded, ``[DONE]`` as the string."""
    out: list[Any] = []
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: "):
            payload = block[6:]
            out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out
