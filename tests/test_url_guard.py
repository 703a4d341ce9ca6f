"""The link fetcher's guard: no spelling of a local address reaches the operator's network."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import is_ip_address
from yarl import URL

from poe2openai.attachments.url_guard import FetchError, GuardedResolver, checked_url, fetch, guarded_socket
from poe2openai.server.serve import start_site
from poe2openai.settings import Settings
from poe2openai.simulator import Simulator

from .conftest import Running

PNG = b"\x89PNG\r\n\x1a\n" + b"secret" * 100

# every way of writing 127.0.0.1 (and other local hosts) that we know of
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "①②⑦.0.0.1",  # circled digits: NFKC makes them 127.0.0.1
    "１２７.０.０.１",  # full-width digits
    "127。0。0。1",  # ideographic full stops
    "１２７。０。０。１",
    "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ",  # circled letters: localhost
    "LocalHost",
    "localhost",
    "localhost.",
    "127.0.0.1.",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0177.0.0.1",
    "017700000001",
    "0.0.0.0",  # on Linux, connecting to 0.0.0.0 reaches the loopback listeners
    "0",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:0:0:1]",
    "[::127.0.0.1]",
    "[::]",
]


@dataclass
class Secret:
    """A service on loopback the gateway must never reach; it records every request."""

    port: int = 0
    hits: list[str] = field(default_factory=list)

    def url(self, host: str, path: str = "/a.png") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest_asyncio.fixture
async def secret() -> AsyncIterator[Secret]:
    found = Secret()

    async def handler(request: web.Request) -> web.StreamResponse:
        found.hits.append(request.path_qs)
        if request.path == "/redirect":
            # raw Location as given, so any spelling can be sent
            return web.Response(status=302, headers={"Location": request.query["to"]})
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner, found.port = await start_site(app, "127.0.0.1", 0, grace=0.5)
    yield found
    await runner.cleanup()


def image_request(url: str) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "look"}, image_part(url)]}]


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_no_spelling_of_loopback_is_fetched(
    client: openai.AsyncOpenAI, sim: Simulator, secret: Secret, host: str
) -> None:
    sim.refuse_download_url = True
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=image_request(secret.url(host)))
    assert info.value.code == "url_fetch_failed"
    assert info.value.body["param"] == "messages[0].content[1]"  # type: ignore[index]
    assert info.value.body["message"].startswith("messages[0].content[1]: the URL cannot be fetched: ")  # type: ignore[index]
    assert secret.hits == []
    assert len(sim.uploads) == 1  # only the download_url Poe refused: no bytes were uploaded
    assert not sim.bodies("gpt-4o-mini")


@pytest.mark.parametrize("host", ["①②⑦.0.0.1", "127。0。0。1", "127.0.0.1"])
async def test_a_refused_first_hop_is_never_requested_so_its_redirect_is_not_followed(
    client: openai.AsyncOpenAI, sim: Simulator, secret: Secret, host: str
) -> None:
    sim.refuse_download_url = True
    url = secret.url(host, f"/redirect?to={secret.url('127.0.0.1')}")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=image_request(url))
    assert info.value.code == "url_fetch_failed" and secret.hits == []


async def test_with_private_urls_allowed_the_guard_is_off(
    start_gateway: Callable[[Settings], Any], settings: Settings, sim: Simulator, secret: Secret
) -> None:
    sim.refuse_download_url = True
    gw: Running = await start_gateway(settings.replace(allow_private_urls=True))
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=image_request(secret.url("①②⑦.0.0.1")))
        redirect = secret.url("localhost", f"/redirect?to={secret.url('127。0。0。1', '/b.png')}")
        await client.chat.completions.create(model="gpt-4o-mini", messages=image_request(redirect))
    assert [hit.split("?")[0] for hit in secret.hits] == ["/a.png", "/redirect", "/b.png"]
    uploaded = [u.body for u in sim.uploads if u.body["size"]]
    assert [(u["filename"], u["size"]) for u in uploaded] == [("a.png", len(PNG)), ("file", len(PNG))]


@pytest.mark.parametrize(
    "url",
    [
        "http://\ufffd.example/a.png",  # IDNA refuses the host
        "http://[::1/a.png",  # unclosed IPv6 bracket
        "http://ex\u00adample.com/a.png",  # a soft hyphen yarl refuses
        "http://example.com:99999/a.png",  # port out of range
        "http://:80/a.png",  # no host
    ],
)
async def test_invalid_links_are_400s_not_500s(client: openai.AsyncOpenAI, sim: Simulator, url: str) -> None:
    sim.refuse_download_url = True
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=image_request(url))
    assert info.value.body["param"] == "messages[0].content[1]"  # type: ignore[index]
    assert info.value.code == "invalid_url"
    assert not sim.uploads  # refused before Poe is even asked


# --- the per-hop check -------------------------------------------------------------------

REFUSED_LITERALS = [
    host for host in LOOPBACK_SPELLINGS if not host.lower().strip(".").endswith("host") and host != "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ"
] + [
    "⑩.0.0.1",
    "１０.０.０.１",
    "169.254.169.254",
    "192.168.1.1",
    "172.16.0.1",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "0x0a000001",
    "0x",  # numeric-looking: refused rather than left to whatever a resolver makes of it
    "[fe80::1]",
    "[fe80::1%25eth0]",
    "[fe80::1%eth0]",
    "[2606:4700:4700::1111%25eth0]",  # a zone id, even on a public address
    "[fc00::1]",
    "[fd12:3456::1]",
    "[ff02::1]",
    "[::ffff:10.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[2002:7f00:1::]",  # 6to4 around 127.0.0.1
    "[64:ff9b::7f00:1]",  # NAT64 around 127.0.0.1
    "[::ffff:0:7f00:1]",
    "[1:2]",  # a colon makes it an IPv6 literal to aiohttp, and this one is not valid
]
NAMES_OF_LOOPBACK = ["localhost", "LocalHost", "localhost.", "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ"]


@pytest.mark.parametrize("host", REFUSED_LITERALS)
def test_literal_hosts_that_are_not_public_are_refused_before_connecting(host: str) -> None:
    with pytest.raises(FetchError, match=r"private or local|canonical|zone id|not a valid IPv6"):
        checked_url(f"http://{host}:8080/a.png", guarded=True)
    assert checked_url(f"http://{host}:8080/a.png", guarded=False).port == 8080  # the guard off: let through


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://①②⑦.0.0.1/a.png", "127.0.0.1"),
        ("http://１２７。０。０。１/a.png", "127.0.0.1"),
        ("http://[0:0:0:0:0:0:0:1]/a.png", "::1"),
        ("http://[::ffff:127.0.0.1]/a.png", "::ffff:7f00:1"),
        ("http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/a.png", "localhost"),
    ],
)
def test_the_host_checked_is_the_one_aiohttp_connects_to(url: str, host: str) -> None:
    parsed = checked_url(url, guarded=False)
    assert isinstance(parsed, URL) and parsed.raw_host == host == URL(url).raw_host
    # aiohttp sees the same host (and, for these, takes it for an IP literal: no resolver)
    assert is_ip_address(parsed.raw_host) is (host != "localhost")


@pytest.mark.parametrize(
    "host",
    ["93.184.216.34", "１.１.１.１", "[2606:4700:4700::1111]", "example.com", "①.example", "xn--bcher-kva.example"],
)
def test_public_hosts_and_names_pass_the_check(host: str) -> None:
    assert checked_url(f"https://{host}/a.png", guarded=True).scheme == "https"


@pytest.mark.parametrize("host", NAMES_OF_LOOPBACK)
async def test_names_are_left_to_the_resolver_which_refuses_local_ones(host: str) -> None:
    parsed = checked_url(f"http://{host}/a.png", guarded=True)
    assert parsed.raw_host is not None and not is_ip_address(parsed.raw_host)
    resolver = GuardedResolver()
    try:
        # (where the resolver does not know "localhost." at all, that is a refusal too)
        with pytest.raises(OSError, match=r"resolves only to private or local addresses|not known"):
            await resolver.resolve(parsed.raw_host, 80)
    finally:
        await resolver.close()


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "017700000001", "0"])
async def test_numeric_forms_are_refused_whichever_path_they_take(host: str) -> None:
    with pytest.raises(FetchError, match="canonical"):  # our check: refused as a literal
        checked_url(f"http://{host}/a.png", guarded=True)
    resolver = GuardedResolver()  # and had it been taken for a name, getaddrinfo reads it as a local address
    try:
        with pytest.raises(OSError, match="resolves only to private or local addresses"):
            await resolver.resolve(host, 80)
    finally:
        await resolver.close()


def test_the_socket_factory_refuses_local_destinations() -> None:
    for address in [("127.0.0.1", 80), ("::1", 80, 0, 0), ("fe80::1%lo", 80, 0, 1), ("2130706433", 80)]:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with pytest.raises(OSError, match="private or local"):
            guarded_socket((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address))
    sock = guarded_socket((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 443)))
    assert sock.family == socket.AF_INET
    sock.close()


BASE = URL("https://public.example/pics/redirect")


@pytest.mark.parametrize(
    "location",
    [
        "http://①②⑦.0.0.1/a.png",
        "http://１２７.０.０.１:8080/a.png",
        "//127。0。0。1/a.png",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1/a.png",
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "http:///a.png",
    ],
)
def test_redirect_locations_are_checked(location: str) -> None:
    with pytest.raises(FetchError):
        checked_url(location, guarded=True, base=BASE)


def test_relative_and_public_redirect_locations_are_joined() -> None:
    assert str(checked_url("a.png", True, BASE)) == "https://public.example/pics/a.png"
    assert str(checked_url("/b.png", True, BASE)) == "https://public.example/b.png"
    assert str(checked_url("http://Ｅxample.com/c.png", True, BASE)) == "http://example.com/c.png"


class LoopbackDNS(AbstractResolver):
    """DNS that puts every name on loopback, unchecked: it stands in for a public first hop."""

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("host", ["①②⑦.0.0.1", "１２７.０.０.１", "127。0。0。1", "127.0.0.1", "2130706433", "[::1]"])
async def test_fetch_checks_every_redirect_hop(secret: Secret, host: str) -> None:
    first = secret.url("public.example", "/redirect?to=" + secret.url(host))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=LoopbackDNS())) as session:
        with pytest.raises(FetchError, match=r"private or local|canonical"):
            await fetch(session, first, 10**6, guarded=True)
        assert [hit.split("?")[0] for hit in secret.hits] == ["/redirect"]  # the hop it was sent to: never
        data, mime = await fetch(session, secret.url("public.example", "/redirect?to=/b.png"), 10**6, guarded=True)
    assert (data, mime) == (PNG, "image/png") and secret.hits[-1] == "/b.png"


async def test_a_local_address_that_got_past_the_resolver_is_not_connected_to(secret: Secret) -> None:
    connector = aiohttp.TCPConnector(resolver=LoopbackDNS(), socket_factory=guarded_socket)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(FetchError, match=re.escape("127.0.0.1 is a private or local address")):
            await fetch(session, secret.url("public.example"), 10**6, guarded=True)
    assert secret.hits == []
