"""Attachments to Poe: every image or file part becomes a Poe CDN attachment of its message.

- ``data:`` URLs are decoded and uploaded as bytes (multipart ``file``).
- Links are first handed to Poe to fetch (``download_url``): nothing passes through the
  gateway and the operator's network is never touched. Only if Poe refuses the link does the
  gateway fetch it itself (size-capped, through :mod:`url_guard`) and upload the bytes.
- Links already on Poe's CDN are used as they are.

All parts of one request upload concurrently; results are cached (see :mod:`upload_cache`).
Uploads use the caller's own key, sent as the official client sends it.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import orjson

from poe2openai.attachments.cache import UploadCache
from poe2openai.attachments.data_urls import Inline, InvalidData, Link, decode, is_poe_cdn, parse_data_url, parse_link
from poe2openai.attachments.url_guard import FetchError, fetch
from poe2openai.conversation import AttachmentInput, Message
from poe2openai.errors import ApiError
from poe2openai.poe.query import PoeAttachment

UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=15)
NOMINAL_LINK_SIZE = 256 * 1024  # cache weight of a link whose size Poe did not say
MAX_DOWNLOAD = 64 * 1024 * 1024
BIG_PAYLOAD = 256 * 1024  # base64 characters; above this, decode off the event loop


@dataclass(frozen=True, slots=True)
class Uploaded:
    """Where Poe put a file."""

    url: str
    content_type: str


class BytesMap(Protocol):
    """Bytes by key with an expiry, shared by several processes (Redis)."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None."""
        ...

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store for ``ttl`` seconds."""
        ...


class SharedUploads:
    """The attachment map in a :class:`BytesMap`: key → Poe's URL, its type, size and expiry.

    The expiry is wall-clock time, the same on every host, so a process that learns an upload
    from another keeps it only for the time it has left."""

    def __init__(self, store: BytesMap) -> None:
        self.store = store

    async def get(self, key: str) -> tuple[Uploaded, int, float] | None:
        """The upload another process made, with its size and the seconds it has left."""
        raw = await self.store.get(key)
        if raw is None:
            return None
        try:
            data = orjson.loads(raw)
            left = float(data["expires"]) - time.time()
            found = Uploaded(str(data["url"]), str(data["type"])), int(data["size"]), left
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        return found if left > 0 else None

    async def put(self, key: str, value: Uploaded, size: int, ttl: float) -> None:
        """Share an upload made here."""
        data = {"url": value.url, "type": value.content_type, "size": size, "expires": time.time() + ttl}
        await self.store.put(key, orjson.dumps(data), ttl)


class UploadFailed(Exception):
    """An upload failed; ``status`` is what the client gets, the message says why."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Uploader:
    """Uploads attachment parts for the chat endpoint."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        fetch_session: aiohttp.ClientSession,
        upload_url: str,
        cache: UploadCache[Uploaded],
        limit: int,
        guarded: bool,
    ) -> None:
        self.session = session
        self.fetch_session = fetch_session
        self.upload_url = upload_url
        self.cache = cache
        self.limit = limit
        self.guarded = guarded

    async def prepare(self, messages: list[Message], key: str) -> dict[int, list[PoeAttachment]]:
        """Upload every attachment of the conversation; message index → its attachments."""
        jobs = [(i, a) for i, m in enumerate(messages) for a in m.attachments]
        out: dict[int, list[PoeAttachment]] = {}
        if jobs:
            done = await asyncio.gather(*(self._one(a, key) for _, a in jobs))
            for (i, _), att in zip(jobs, done, strict=True):
                out.setdefault(i, []).append(att)
        _reattach_generated_images(messages, out)
        return out

    async def _one(self, a: AttachmentInput, key: str) -> PoeAttachment:
        try:
            if a.url.startswith("data:"):
                inline = parse_data_url(a.url, a.filename, a.param, self.limit)
                up = await self.cache.get_or_make("data:" + inline.key, lambda: self._upload_inline(inline, key))
                return PoeAttachment(up.url, up.content_type or inline.mime, inline.name)
            link = parse_link(a.url, a.filename, a.param)
            if is_poe_cdn(link.url):
                mime = mimetypes.guess_type(link.name)[0] or "image/jpeg"
                return PoeAttachment(link.url, mime, link.name)
            up = await self.cache.get_or_make("url:" + link.url, lambda: self._upload_link(link, key))
            return PoeAttachment(up.url, up.content_type, link.name)
        except UploadFailed as exc:
            kind = "authentication_error" if exc.status == 401 else "invalid_request_error"
            if exc.status >= 500:
                kind = "api_error"
            raise ApiError(exc.status, f"{a.param}: {exc}", type=kind, param=a.param, code=exc.code) from None

    async def _post(self, key: str, make: Callable[[], aiohttp.FormData | dict[str, str]]) -> tuple[int, bytes]:
        """POST to Poe's upload endpoint, retrying once; ``make`` builds the form afresh each
        time (aiohttp before 3.12 refuses to send one ``FormData`` twice)."""
        for attempt in (0, 1):
            try:
                async with self.session.post(
                    self.upload_url, data=make(), headers={"Authorization": key}, timeout=UPLOAD_TIMEOUT
                ) as resp:
                    body = await resp.content.read(64 * 1024)
                    if resp.status >= 500 and attempt == 0:
                        await asyncio.sleep(0.3)
                        continue
                    return resp.status, body
            except TimeoutError:
                raise UploadFailed(504, "Poe's upload timed out", "upload_timeout") from None
            except aiohttp.ClientError as exc:
                if attempt == 0:
                    await asyncio.sleep(0.3)
                    continue
                raise UploadFailed(
                    502, f"could not reach Poe's upload endpoint ({type(exc).__name__})", "upload_failed"
                ) from None
        raise AssertionError("unreachable")

    @staticmethod
    def _result(status: int, body: bytes) -> tuple[Uploaded, int | None]:
        if status in (401, 403):
            raise UploadFailed(401, "Poe rejected the API key for the upload", "invalid_api_key")
        if status != 200:
            reason = body.decode("utf-8", "replace").strip()[:300] or f"HTTP {status}"
            raise UploadFailed(502, f"Poe rejected the upload: {reason}", "upload_rejected")
        try:
            data = orjson.loads(body)
            url = data["attachment_url"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UploadFailed(502, "Poe's upload answer was not understood", "upload_failed") from None
        if not isinstance(url, str) or not url:
            raise UploadFailed(502, "Poe's upload answer has no attachment_url", "upload_failed")
        mime = data.get("mime_type")
        size = data.get("size")
        return Uploaded(url, mime if isinstance(mime, str) else ""), size if isinstance(size, int) else None

    async def _upload_inline(self, inline: Inline, key: str) -> tuple[Uploaded, int]:
        try:
            # large payloads decode in a thread: the event loop keeps serving streams
            data = decode(inline) if len(inline.payload) < BIG_PAYLOAD else await asyncio.to_thread(decode, inline)
        except InvalidData as exc:
            raise UploadFailed(400, str(exc), "invalid_base64") from None
        return await self._upload_bytes(data, inline.mime, inline.name, key)

    async def _upload_bytes(self, data: bytes, mime: str, name: str, key: str) -> tuple[Uploaded, int]:
        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field("file", data, filename=name, content_type=mime)
            return fd

        up, _ = self._result(*await self._post(key, form))
        return Uploaded(up.url, up.content_type or mime), len(data)

    async def _upload_link(self, link: Link, key: str) -> tuple[Uploaded, int]:
        status, body = await self._post(key, lambda: {"download_url": link.url, "download_filename": link.name})
        if status == 200 or status in (401, 403):
            up, size = self._result(status, body)
            return up, size or NOMINAL_LINK_SIZE
        # Poe could not fetch it: fetch it here (guarded) and upload the bytes
        try:
            data, mime = await fetch(self.fetch_session, link.url, min(self.limit, MAX_DOWNLOAD), self.guarded)
        except FetchError as exc:
            raise UploadFailed(400, f"the URL cannot be fetched: {exc}", "url_fetch_failed") from None
        return await self._upload_bytes(data, mime, link.name, key)


def attachment_slots(messages: list[Message]) -> dict[int, list[PoeAttachment]]:
    """Where :meth:`Uploader.prepare` would put attachments, as placeholders: nothing is
    uploaded (for counting a prompt's tokens)."""
    out: dict[int, list[PoeAttachment]] = {}
    for i, m in enumerate(messages):
        if m.attachments:
            out[i] = [PoeAttachment("", "application/octet-stream", a.filename or "file") for a in m.attachments]
    _reattach_generated_images(messages, out)
    return out


_CDN_IMAGE = re.compile(r"!\[[^\]]*\]\((https://pfst\.cf2\.poecdn\.net/[^)\s]+)\)")


def _reattach_generated_images(messages: list[Message], out: dict[int, list[PoeAttachment]]) -> None:
    """Images a bot just made go back to it with the next user message, so "make it blue" works.

    Only Poe CDN images of the assistant message right before the last user message; no upload.
    """
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last_user is None or last_user == 0 or messages[last_user - 1].role != "assistant":
        return
    urls = _CDN_IMAGE.findall(messages[last_user - 1].text)
    if not urls:
        return
    attached = out.setdefault(last_user, [])
    have = {a.url for a in attached}
    for url in dict.fromkeys(urls):
        if url not in have:
            name = url.split("?", 1)[0].rsplit("/", 1)[-1]
            mime = mimetypes.guess_type(name)[0] or "image/png"
            attached.append(
                PoeAttachment(url, mime, name if "." in name else f"image{mimetypes.guess_extension(mime)}")
            )
