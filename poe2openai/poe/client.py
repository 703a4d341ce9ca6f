"""The aiohttp edge towards Poe: bot queries, the model list, file uploads.

One shared :class:`aiohttp.ClientSession`. A query returns the open response once Poe has
answered 200 with an event stream; any other answer is read (bounded) and raised as a
classified :class:`ApiError`. Keys are passed through and never logged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from poe2openai import __version__
from poe2openai.errors import ApiError, upstream
from poe2openai.poe.upstream_errors import from_http

USER_AGENT = f"poe2openai/{__version__}"
ERROR_BODY_LIMIT = 64 * 1024

# No total deadline: reasoning and video bots may think for minutes. A read that stalls for
# 10 minutes, or a connect that takes 30 s, fails.
QUERY_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=600)
LIST_TIMEOUT = aiohttp.ClientTimeout(total=30)


def new_session() -> aiohttp.ClientSession:
    """The process-wide client session (no connection limit: the rate limiter paces us)."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # one session serves every caller: never share cookies
        headers={"User-Agent": USER_AGENT},
        auto_decompress=True,
        json_serialize=lambda o: orjson.dumps(o).decode(),
    )


class PoeClient:
    """Talks to Poe's bot endpoint and model list."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._urls: dict[str, str] = {}  # a bot's query URL

    async def query(self, bot: str, body: bytes, key: str) -> aiohttp.ClientResponse:
        """POST a query; return the streaming response, or raise a classified error."""
        url = self._urls.get(bot)
        if url is None:
            if len(self._urls) >= 1024:  # bot names come from clients: keep a bounded few
                self._urls.clear()
            url = self._urls[bot] = f"{self.base_url}/bot/{quote(bot, safe='')}"
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
            "Accept-Encoding": "identity",
        }
        try:
            resp = await self.session.post(url, data=body, headers=headers, timeout=QUERY_TIMEOUT)
        except TimeoutError:
            raise upstream("Timed out connecting to Poe", 504, "upstream_timeout", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise upstream(f"Could not reach Poe: {type(exc).__name__}", retryable=True) from None
        if resp.status != 200:
            detail = await _bounded_body(resp)
            raise from_http(
                resp.status,
                detail,
                resp.headers.get("Retry-After"),
                bot,
                resp.headers.get("x-ratelimit-reset-requests"),
            )
        if not resp.content_type.startswith("text/event-stream"):
            detail = await _bounded_body(resp)
            raise upstream(
                f"Poe answered {resp.content_type or 'no content type'} instead of an event stream: "
                f"{detail[:200].decode('utf-8', 'replace')}"
            )
        return resp

    async def list_models(self) -> list[dict[str, Any]]:
        """Poe's public model list, ``data`` items only."""
        url = f"{self.base_url}/v1/models"
        try:
            async with self.session.get(url, timeout=LIST_TIMEOUT) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise upstream(f"Poe's model list answered HTTP {resp.status}")
        except TimeoutError:
            raise upstream("Timed out fetching Poe's model list", 504, "upstream_timeout") from None
        except aiohttp.ClientError as exc:
            raise upstream(f"Could not fetch Poe's model list: {type(exc).__name__}") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise upstream("Poe's model list is not JSON") from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise upstream("Poe's model list has no data list")
        return [m for m in items if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]


async def _bounded_body(resp: aiohttp.ClientResponse) -> bytes:
    try:
        return await resp.content.read(ERROR_BODY_LIMIT)
    except (TimeoutError, aiohttp.ClientError):
        return b""
    finally:
        resp.release()


__all__ = ["ApiError", "PoeClient", "new_session"]
