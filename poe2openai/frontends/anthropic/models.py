"""``GET /v1/models`` in Anthropic's shape, for requests that carry ``anthropic-version``.

``{"data": [{"type": "model", "id", "display_name", "created_at"}], "has_more", "first_id",
"last_id"}`` with Anthropic's paging (``limit`` 1 to 1000, default 20; ``after_id``;
``before_id``). Claude Code's model picker lists the ids that start with ``claude``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from poe2openai.engine.http import json_response
from poe2openai.errors import bad_request

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


def wants_anthropic(request: web.Request) -> bool:
    """Whether the request is an Anthropic client's (its SDKs always send this header)."""
    return "anthropic-version" in request.headers


def model_entry(model: dict[str, Any]) -> dict[str, Any]:
    """One model in Anthropic's shape."""
    created = model.get("created")
    seconds = created if isinstance(created, int) else 0
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = model.get("name")
    return {
        "type": "model",
        "id": model["id"],
        "display_name": name if isinstance(name, str) and name else model["id"],
        "created_at": stamp,
    }


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(raw)


def list_response(request: web.Request, models: list[dict[str, Any]]) -> web.Response:
    """One page of the model list."""
    limit = _limit(request)
    entries = [model_entry(m) for m in models]
    ids = [e["id"] for e in entries]
    after, before = request.query.get("after_id"), request.query.get("before_id")
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(ids)
        page = entries[start : start + limit]
        more = start + limit < len(entries)
    elif before is not None:
        end = ids.index(before) if before in ids else 0
        page = entries[max(0, end - limit) : end]
        more = end - limit > 0
    else:
        page = entries[:limit]
        more = limit < len(entries)
    return json_response(
        {
            "data": page,
            "has_more": more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
    )


def one_response(model: dict[str, Any]) -> web.Response:
    """One model."""
    return json_response(model_entry(model))
