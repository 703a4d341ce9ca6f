"""Attachments: data URLs and links reach the bot as Poe attachments, uploaded once and cached."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from poe2openai.attachments.cache import UploadCache
from poe2openai.attachments.data_urls import InvalidData, decode, parse_data_url, parse_link
from poe2openai.attachments.url_guard import FetchError, GuardedResolver, fetch, forbidden
from poe2openai.errors import ApiError
from poe2openai.server.serve import start_site
from poe2openai.settings import Settings
from poe2openai.simulator import Simulator

from .conftest import Running

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
PDF = b"%PDF-1.4\n" + b"x" * 5000 + b"\n%%EOF"


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": "high"}}


# --- parsing -----------------------------------------------------------------------------


def data_of(url: str, limit: int = 10**9, name: str | None = None) -> bytes:
    return decode(parse_data_url(url, name, "p", limit))


def test_data_urls_decode_strictly_but_tolerate_what_clients_send() -> None:
    assert data_of(PNG_URL) == PNG
    spaced = "data:image/png;base64," + "\n".join(
        base64.b64encode(PNG).decode()[i : i + 76] for i in range(0, 3000, 76)
    )
    assert data_of(spaced) == PNG[: len(base64.b64decode(spaced.split(",")[1]))]
    urlsafe = "data:image/png;base64," + base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode().rstrip("=")
    assert data_of(urlsafe, 100) == b"\xfb\xff\xfe"
    plain = parse_data_url("data:text/plain,hello%20world", "notes.txt", "p", 100)
    assert (decode(plain), plain.mime, plain.name) == (b"hello world", "text/plain", "notes.txt")
    assert parse_data_url(PNG_URL, None, "p", 10**9).name == "image.png"
    payload = PNG_URL.split(",", 1)[1]
    assert parse_data_url(PNG_URL, None, "p", 10**9).key == hashlib.sha256(payload.encode()).hexdigest()
    with pytest.raises(InvalidData):
        data_of("data:image/png;base64,@@@@")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64", "invalid_data_url"),
        ("data:image/png;base64," + "A" * 400, "attachment_too_large"),
        ("data:png;base64,AAAA", "invalid_data_url"),
        ("data:image/png;base64,", "invalid_data_url"),
    ],
)
def test_bad_data_urls(url: str, code: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_data_url(url, None, "messages[0].content[1]", 100)
    assert info.value.status == 400 and info.value.code == code and info.value.param == "messages[0].content[1]"


def test_links() -> None:
    assert parse_link("https://example.com/a/cat.jpg?x=1", None, "p").name == "cat.jpg"
    for bad in ("file:///etc/passwd", "ftp://example.com/a.png", "javascript:alert(1)", "https://"):
        with pytest.raises(ApiError) as info:
            parse_link(bad, None, "p")
        assert info.value.code == "unsupported_url"


# --- cache -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_ttl_and_size_eviction_with_a_clock() -> None:
    clock = Clock()
    cache: UploadCache[str] = UploadCache(max_bytes=100, ttl=60, clock=clock)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("c", "C", 40)  # over 100 bytes: the least recently used (b) goes
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C" and cache.size == 80
    clock.now += 59
    assert cache.get("a") == "A"
    clock.now += 1
    assert cache.get("a") is None and cache.get("c") is None and cache.size == 0
    cache.put("huge", "H", 101)
    assert cache.get("huge") is None and len(cache) == 0
    off: UploadCache[str] = UploadCache(max_bytes=100, ttl=0, clock=clock)
    off.put("a", "A", 1)
    assert off.get("a") is None


async def test_cache_single_flight_and_failures_are_not_cached() -> None:
    cache: UploadCache[str] = UploadCache(max_bytes=10**6, ttl=60)
    calls = 0
    release = asyncio.Event()

    async def make() -> tuple[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return "url", 10

    waiters = [asyncio.ensure_future(cache.get_or_make("k", make)) for _ in range(5)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # one caller leaves; the shared upload goes on for the others
    release.set()
    assert await asyncio.gather(*waiters[1:]) == ["url"] * 4 and calls == 1
    assert await cache.get_or_make("k", make) == "url" and calls == 1

    async def fail() -> tuple[str, int]:
        raise RuntimeError("upload failed")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await cache.get_or_make("bad", fail)
    assert cache.get("bad") is None


# --- the guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("::1", True),
        ("fe80::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", True),
        ("100.64.0.1", True),
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_forbidden_addresses(address: str, blocked: bool) -> None:
    assert forbidden(address) is blocked


async def test_guarded_resolver_refuses_local_names() -> None:
    resolver = GuardedResolver()
    with pytest.raises(OSError):
        await resolver.resolve("localhost", 80)
    await resolver.close()


class FakeDNS(GuardedResolver):
    """Resolves public.example to loopback without the guard, to test the redirect check."""

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": 2, "proto": 0, "flags": 0}]


async def test_redirects_to_private_addresses_are_refused(sim: Simulator) -> None:
    sim.static_files["a.png"] = (PNG, "image/png")
    port = sim.base_url.rsplit(":", 1)[1]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=FakeDNS())) as session:
        data, mime = await fetch(session, f"http://public.example:{port}/files/a.png", 10**6, guarded=True)
        assert data == PNG and mime == "image/png"
        with pytest.raises(FetchError, match="private or local"):
            await fetch(
                session,
                f"http://public.example:{port}/redirect?to=http://127.0.0.1:{port}/files/a.png",
                10**6,
                guarded=True,
            )
        with pytest.raises(FetchError, match="larger than"):
            await fetch(session, f"http://public.example:{port}/files/a.png", 100, guarded=True)


# --- end to end --------------------------------------------------------------------------


def attachments_of(body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [m.get("attachments", []) for m in body["query"]]


async def test_same_screenshot_five_turns_uploads_once(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    messages: list[Any] = []
    for turn in range(5):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"turn {turn}"}, image_part(PNG_URL)]})
        r = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        messages.append({"role": "assistant", "content": r.choices[0].message.content})
    assert len(sim.uploads) == 1
    upload = sim.uploads[0]
    assert upload.body["filename"] == "image.png" and upload.body["content_type"] == "image/png"
    assert upload.body["size"] == len(PNG) and upload.headers["Authorization"] == "test-key"
    last = sim.bodies("gpt-4o-mini")[-1]
    per_message = attachments_of(last)
    assert [len(a) for a in per_message] == [1, 0, 1, 0, 1, 0, 1, 0, 1]
    att = per_message[0][0]
    assert att["content_type"] == "image/png" and att["name"] == "image.png" and "/base/image/" in att["url"]
    assert last["query"][0]["content"] == "turn 0"


async def test_concurrent_requests_upload_once(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    fresh = "data:image/png;base64," + base64.b64encode(PNG + b"new").decode()
    await asyncio.gather(
        *(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(fresh)]}]
            )
            for _ in range(6)
        )
    )
    assert len(sim.uploads) == 1


async def test_pdf_file_part_reaches_the_bot(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    file_part = {
        "type": "file",
        "file": {
            "filename": "report.pdf",
            "file_data": "data:application/pdf;base64," + base64.b64encode(PDF).decode(),
        },
    }
    await client.chat.completions.create(
        model="claude-sonnet-4.5",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Summarise"}, file_part]}],  # type: ignore[list-item]
    )
    att = sim.bodies("claude-sonnet-4.5")[-1]["query"][0]["attachments"][0]
    assert att["name"] == "report.pdf" and att["content_type"] == "application/pdf"
    assert sim.uploads[0].body["filename"] == "report.pdf" and sim.uploads[0].body["size"] == len(PDF)


async def test_links_are_fetched_by_poe_and_cached(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    url = "https://images.example.com/cats/tabby.jpg"
    for _ in range(2):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(url)]}]
        )
    assert len(sim.uploads) == 1 and sim.uploads[0].body["fields"]["download_url"] == url
    att = sim.bodies("gpt-4o-mini")[-1]["query"][0]["attachments"][0]
    assert att["name"] == "tabby.jpg" and att["content_type"] == "image/jpeg"
    cdn = "https://pfst.cf2.poecdn.net/base/image/abc123"
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(cdn)]}])
    assert len(sim.uploads) == 1
    assert sim.bodies("gpt-4o-mini")[-1]["query"][0]["attachments"][0]["url"] == cdn


async def test_links_poe_cannot_fetch(
    start_gateway: Callable[[Settings], Any], settings: Settings, client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    sim.refuse_download_url = True
    sim.static_files["cat.png"] = (PNG, "image/png")
    local = f"{sim.base_url}/files/cat.png"
    with pytest.raises(openai.BadRequestError) as info:  # the guard: loopback is never fetched by default
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(local)]}]
        )
    assert info.value.code == "url_fetch_failed" and "private or local" in info.value.message
    assert info.value.body["param"] == "messages[0].content[0]"  # type: ignore[index]
    assert not sim.bodies("gpt-4o-mini")  # never a half-sent request to the bot
    gw = await start_gateway(settings.replace(allow_private_urls=True))
    open_client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    await open_client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(local)]}]
    )
    await open_client.close()
    assert sim.uploads[-1].body["size"] == len(PNG) and sim.uploads[-1].body["filename"] == "cat.png"


@pytest.mark.parametrize(
    ("part", "code"),
    [
        (image_part("data:image/png;base64,not*base64"), "invalid_base64"),
        (image_part("data:image/png,"), "invalid_data_url"),
        (image_part("file:///etc/passwd"), "unsupported_url"),
        (image_part("ftp://example.com/a.png"), "unsupported_url"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, "invalid_value"),
    ],
)
async def test_bad_attachments_are_400s_naming_the_part(
    client: openai.AsyncOpenAI, sim: Simulator, part: dict[str, Any], code: str
) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, part]},
    ]
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert info.value.code == code
    assert str(info.value.body["param"]).startswith("messages[2].content[1]")  # type: ignore[index]
    assert not sim.bodies("gpt-4o-mini")


async def test_rejected_upload_is_502_with_poes_reason(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    sim.upload_fail = (415, "Unsupported file type")
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(PNG_URL)]}]
        )
    assert info.value.status_code == 502 and "Unsupported file type" in info.value.message
    assert not sim.bodies("gpt-4o-mini")
    sim.upload_fail = None
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(PNG_URL)]}]
    )
    assert len(sim.bodies("gpt-4o-mini")) == 1  # the failure was not cached


async def test_bad_key_on_upload_is_401(gw: Running) -> None:
    c = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="bad-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": [image_part(PNG_URL)]}]
        )
    await c.close()


async def test_attachment_over_the_size_limit(
    start_gateway: Callable[[Settings], Any], settings: Settings, http: aiohttp.ClientSession
) -> None:
    gw = await start_gateway(settings.replace(max_request_size=len(PNG_URL) + 500))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [image_part(PNG_URL)]}]}
    async with http.post(gw.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}) as r:
        assert r.status == 200
    body["messages"][0]["content"].append(image_part(PNG_URL))  # type: ignore[index,attr-defined]
    async with http.post(gw.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}) as r:
        assert r.status == 413


async def test_nothing_is_uploaded_for_a_request_that_fails_validation(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    messages = [{"role": "user", "content": [image_part(PNG_URL)]}]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            tools=[{"type": "function", "function": {}}],
        )  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            reasoning_effort="extreme",
        )  # type: ignore[arg-type]
    assert sim.uploads == []


async def test_generated_images_go_back_with_the_next_question(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    image = "https://pfst.cf2.poecdn.net/base/image/9b1f0c7e?w=1024&h=1024"
    messages = [
        {"role": "user", "content": "a red fox"},
        {"role": "assistant", "content": f"![red_fox.png]({image})\n\n![red_fox.png]({image})"},
        {"role": "user", "content": "make it blue"},
    ]
    await client.chat.completions.create(model="nano-banana", messages=messages)  # type: ignore[arg-type]
    query = sim.bodies("nano-banana")[-1]["query"]
    assert "attachments" not in query[0] and "attachments" not in query[1]
    assert query[2]["attachments"] == [{"url": image, "content_type": "image/png", "name": "image.png"}]
    assert sim.uploads == []
    # an unrelated question later in the conversation does not drag the image along
    messages += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "thanks"}]
    await client.chat.completions.create(model="nano-banana", messages=messages)  # type: ignore[arg-type]
    assert all("attachments" not in m for m in sim.bodies("nano-banana")[-1]["query"])


@pytest.mark.parametrize("target", ["http://[::1/a.png", "http://a..b/a.png", "http://a.example:99999/a.png"])
async def test_redirects_to_malformed_urls_are_fetch_errors(target: str) -> None:
    async def redirect(request: web.Request) -> web.Response:  # any Location, as a remote server may send
        return web.Response(status=302, headers={"Location": target})

    app = web.Application()
    app.router.add_get("/r", redirect)
    runner, port = await start_site(app, "127.0.0.1", 0, grace=0)
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(FetchError):
                await fetch(session, f"http://127.0.0.1:{port}/r", 10**6, guarded=False)
    finally:
        await runner.cleanup()


async def test_an_upload_that_fails_once_with_a_5xx_is_sent_again_whole(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    sim.upload_fail_next = [(503, "busy")]
    r = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": [{"type": "text", "text": "x"}, image_part(PNG_URL)]}],
    )
    assert r.choices[0].message.content
    # both attempts carried the whole file
    assert [u.body["size"] for u in sim.uploads] == [len(PNG), len(PNG)]
    (att,) = attachments_of(sim.bodies("gpt-4o-mini")[-1])[0]
    assert "/base/image/" in att["url"]
