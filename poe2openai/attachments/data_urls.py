"""Attachment inputs: ``data:`` URLs decoded strictly, links checked, file names chosen."""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote_to_bytes, urlsplit

from yarl import URL

from poe2openai.errors import bad_request, shown

POE_CDN_PREFIXES = ("https://pfst.cf2.poecdn.net/",)
_WS = re.compile(rb"\s+")


@dataclass(frozen=True, slots=True)
class Inline:
    """A ``data:`` URL, checked but not decoded yet (a cache hit never decodes it)."""

    payload: str
    is_base64: bool
    mime: str
    name: str
    key: str  # sha256 of the payload text: the cache key
    param: str

    @property
    def approx_size(self) -> int:
        """The decoded size, near enough for limits."""
        return len(self.payload) * 3 // 4 if self.is_base64 else len(self.payload)


class InvalidData(ValueError):
    """The payload does not decode; the message says why."""


@dataclass(frozen=True, slots=True)
class Link:
    """An http(s) link."""

    url: str
    name: str


def _extension(mime: str) -> str:
    ext = mimetypes.guess_extension(mime.split(";")[0].strip(), strict=False) or ".bin"
    return {".jpe": ".jpg", ".jpeg": ".jpg"}.get(ext, ext)


def name_for(mime: str, given: str | None, stem: str = "file") -> str:
    """A file name: the client's, else ``image.png`` / ``file.pdf`` from the type."""
    if given:
        return given.replace("/", "_").replace("\\", "_")[:200]
    kind = "image" if mime.startswith("image/") else stem
    return f"{kind}{_extension(mime)}"


def parse_data_url(url: str, filename: str | None, param: str, limit: int) -> Inline:
    """Check ``data:<mime>[;...][;base64],<data>``; a bad one is a 400 naming ``param``."""
    head, comma, payload = url[5:].partition(",")
    if not comma:
        raise bad_request(f"{param}: malformed data URL (no comma)", param, "invalid_data_url")
    parts = [p.strip() for p in head.split(";")]
    mime = parts[0].lower() or "text/plain"
    if "/" not in mime:
        raise bad_request(f"{param}: malformed data URL media type {shown(parts[0])}", param, "invalid_data_url")
    if not payload.strip():
        raise bad_request(f"{param}: the data URL is empty", param, "invalid_data_url")
    is_b64 = "base64" in (p.lower() for p in parts[1:])
    inline = Inline(
        payload,
        is_b64,
        mime,
        name_for(mime, filename),
        hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest(),
        param,
    )
    if inline.approx_size > limit:
        raise bad_request(f"{param}: the attachment is larger than {limit} bytes", param, "attachment_too_large")
    return inline


def decode(inline: Inline) -> bytes:
    """The bytes of a data URL; :class:`InvalidData` if they do not decode."""
    if not inline.is_base64:
        return unquote_to_bytes(inline.payload)
    try:
        return base64.b64decode(inline.payload, validate=True)  # the usual, well-formed case
    except (binascii.Error, ValueError):
        pass
    raw = _WS.sub(b"", inline.payload.encode("ascii", "replace"))
    raw = raw.replace(b"-", b"+").replace(b"_", b"/")  # the URL-safe alphabet too
    raw += b"=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidData("the data URL is not valid base64") from None
    if not data:
        raise InvalidData("the data URL is empty")
    return data


def _split(url: str, param: str) -> SplitResult:
    """The parts of a link, or a 400 for one that urllib, yarl (aiohttp) or IDNA cannot take."""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return parts
        _ = parts.port  # out of range or not a number: ValueError
        host = parts.hostname
        if not host:
            raise ValueError("no host")
        URL(url)  # what aiohttp will make of it when the gateway fetches the link itself
        host.encode("idna")  # empty or over-long labels fail only when connecting otherwise
    except ValueError as exc:  # UnicodeError included
        raise bad_request(f"{param}: the link is not a valid URL ({str(exc)[:100]})", param, "invalid_url") from None
    return parts


def parse_link(url: str, filename: str | None, param: str) -> Link:
    """An http(s) link; other schemes and malformed URLs are a 400."""
    parts = _split(url, param)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        scheme = parts.scheme or "none"
        raise bad_request(
            f"{param}: unsupported URL scheme {shown(scheme)} (use https:// or a data: URL)", param, "unsupported_url"
        )
    last = unquote_to_bytes(parts.path.rsplit("/", 1)[-1]).decode("utf-8", "replace")
    return Link(url, filename or (last if "." in last else "") or "file")


def is_poe_cdn(url: str) -> bool:
    """Already on Poe's CDN: no upload needed."""
    return url.startswith(POE_CDN_PREFIXES)
