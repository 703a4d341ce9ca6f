"""Fetching a client's link ourselves without becoming a way into the operator's network.

Each hop's URL is parsed once, with yarl, exactly as aiohttp parses it (IDNA and NFKC, so
``①②⑦.0.0.1`` and ``127。0。0。1`` are ``127.0.0.1`` here), and that same parsed URL is what
aiohttp is given, so the host checked is the host connected to. When the guard is on:

- a host that is, or looks like, an IP literal (anything aiohttp would connect to without asking
  the resolver, and the numeric forms ``getaddrinfo`` still accepts, such as ``127.1``,
  ``2130706433`` or ``0x7f000001``) must be a canonical address that is public, else it is
  refused before any connection; IPv6 zone ids are refused;
- a name is resolved by :class:`GuardedResolver`, which keeps only public addresses, so the
  connection goes to an address that was checked (no DNS rebinding in between) and names such
  as ``localhost`` are refused;
- every socket is checked once more against its destination address just before it connects
  (:func:`guarded_socket`), whichever path aiohttp took to get there.

"Public" excludes loopback, private, link-local, unique-local, multicast, reserved and
unspecified addresses, and IPv4 addresses hidden in IPv6 (mapped, 6to4, Teredo). Redirects are
followed by hand, at most five, each hop checked the same way. ``ALLOW_PRIVATE_URLS`` turns
the guard off for operators who want it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

MAX_REDIRECTS = 5
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10, sock_read=30)

# the numeric host forms inet_aton accepts: one to four parts, decimal, octal (leading 0) or hex
_INET_ATON = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.*", re.IGNORECASE | re.ASCII)


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
        """The public addresses of ``host``; :class:`OSError` if it has none."""
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not forbidden(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to private or local addresses")
        return allowed

    async def close(self) -> None:
        """Close the underlying resolver."""
        await self._inner.close()


def guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A socket for ``addr_info`` (aiohttp's ``socket_factory``), refused if its destination is not public."""
    family, kind, proto, _, address = addr_info
    try:
        refused = forbidden(str(address[0]))
    except ValueError:  # not an address (asyncio would resolve it): never connect blind
        refused = True
    if refused:
        raise OSError(f"{address[0]} is a private or local address")
    return socket.socket(family=family, type=kind, proto=proto)


def new_fetch_session(guarded: bool) -> aiohttp.ClientSession:
    """The session used for fetching client links."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver() if guarded else None,
        socket_factory=guarded_socket if guarded else None,
        limit=32,
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=FETCH_TIMEOUT, headers={"User-Agent": "poe2openai (attachment fetch)"}
    )


def _check_host(host: str) -> None:
    """Refuse ``host`` (a ``raw_host``) if it is an IP literal that is not public; names pass."""
    literal: ipaddress.IPv4Address | ipaddress.IPv6Address
    if ":" in host:  # aiohttp treats any host with a colon as an IPv6 literal
        if "%" in host:
            raise FetchError(f"{host} has an IPv6 zone id")
        try:
            literal = ipaddress.IPv6Address(host)
        except ValueError:
            raise FetchError(f"{host} is not a valid IPv6 address") from None
    elif host.replace(".", "").isdigit() or _INET_ATON.fullmatch(host):
        # what aiohttp takes for an IPv4 literal, and what getaddrinfo reads as one: only the
        # canonical dotted quad is accepted, so every path agrees on the address
        try:
            literal = ipaddress.IPv4Address(host.encode("ascii").decode())
        except ValueError:  # UnicodeEncodeError included
            raise FetchError(f"{host} is not a canonical IP address (write IPv4 addresses as a.b.c.d)") from None
    else:
        return  # a name: GuardedResolver checks every address it resolves to
    if forbidden(str(literal)):
        raise FetchError(f"{host} is a private or local address")


def checked_url(url: str | URL, guarded: bool, base: URL | None = None) -> URL:
    """``url`` (joined to ``base``, for a redirect) parsed as aiohttp parses it, and checked.

    The result is what must be handed to aiohttp: its host is the one checked. Anything that is
    not an http(s) URL with a host is refused, and with the guard on, so is an IP literal that is
    not public (names are left to :class:`GuardedResolver`).
    """
    text = str(url)[:100]
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        if base is not None:
            parsed = base.join(parsed)
        host = parsed.raw_host
    except ValueError as exc:  # a host IDNA refuses, a bad port, an unclosed bracket...
        raise FetchError(f"invalid URL {text!r} ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"not an http(s) URL: {text!r}")
    if not host:
        raise FetchError(f"the URL has no host: {text!r}")
    try:
        host.encode("idna")  # empty or over-long labels would only fail when connecting
    except UnicodeError:
        raise FetchError(f"invalid host in {text!r}") from None
    if guarded:
        _check_host(host)
    return parsed


async def fetch(session: aiohttp.ClientSession, url: str, limit: int, guarded: bool) -> tuple[bytes, str]:
    """GET ``url`` (following checked redirects), at most ``limit`` bytes; returns (bytes, type)."""
    target = checked_url(url, guarded)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with session.get(target, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    target = checked_url(resp.headers["Location"], guarded, base=target)
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
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason: Any = exc.__cause__ or exc
            raise FetchError((str(reason) or type(exc).__name__)[:200]) from None
    raise FetchError("too many redirects")
