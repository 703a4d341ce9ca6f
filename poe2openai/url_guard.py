"""Fetching a client's link ourselves without becoming a way into the operator's network.

Every host is resolved by :class:`GuardedResolver`, which refuses loopback, private,
link-local, multicast and reserved addresses (and IPv4 addresses hidden in IPv6), so the
connection goes to an address that was checked (no DNS rebinding in between). Redirects are
followed by hand, at most five, each one checked the same way (IP literals included).
``ALLOW_PRIVATE_URLS`` turns the guard off for operators who want it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_REDIRECTS = 5
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)


class FetchError(Exception):
    """The link cannot be fetched; the message says why (for the client's 400)."""


def forbidden(address: str) -> bool:
    """Whether ``address`` is not on the public internet."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is not None:
            ip = mapped
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class GuardedResolver(AbstractResolver):
    """A resolver that only returns public addresses."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not forbidden(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to private or local addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def new_fetch_session(guarded: bool) -> aiohttp.ClientSession:
    """The session used for fetching client links."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver() if guarded else None, limit=32)
    return aiohttp.ClientSession(
        connector=connector, timeout=FETCH_TIMEOUT, headers={"User-Agent": "poe2openai (attachment fetch)"}
    )


def _check_url(url: str, guarded: bool) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise FetchError(f"redirected to a malformed URL {url[:100]!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"redirected to an unsupported URL {url[:100]!r}")
    if guarded:
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return
        if forbidden(str(literal)):
            raise FetchError(f"{parts.hostname} is a private or local address")


async def fetch(session: aiohttp.ClientSession, url: str, limit: int, guarded: bool) -> tuple[bytes, str]:
    """GET ``url`` (following checked redirects), at most ``limit`` bytes; returns (bytes, type)."""
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(url, guarded)
        try:
            async with session.get(url, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    url = urljoin(url, resp.headers["Location"])
                    continue
                if resp.status != 200:
                    raise FetchError(f"the server answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > limit:
                    raise FetchError(f"the file is larger than {limit} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(f"the file is larger than {limit} bytes")
                    chunks.append(chunk)
                return b"".join(chunks), resp.content_type or "application/octet-stream"
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:  # ValueError: a malformed Location
            reason: Any = exc.__cause__ or exc
            raise FetchError(str(reason)[:200] or type(exc).__name__) from None
    raise FetchError("too many redirects")
