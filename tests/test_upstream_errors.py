"""How Poe's failures reach clients: every HTTP status and error event, and an unreachable Poe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from poe2openai.poe.events import Error
from poe2openai.poe.upstream_errors import from_event, from_http, retry_after
from poe2openai.settings import Settings
from poe2openai.simulator import HttpError, Simulator, error

from .conftest import Running, user


@pytest.mark.parametrize(
    ("status", "body", "want_status", "want_code", "retryable"),
    [
        (401, b'{"error": {"message": "Invalid API key"}}', 401, "invalid_api_key", False),
        (403, b'{"detail": "Access denied"}', 403, "permission_denied", False),
        (402, b"You've used up your points!", 429, "insufficient_quota", False),
        (404, b'{"message": "no bot"}', 404, "model_not_found", False),
        (429, b"slow down", 429, "rate_limit_exceeded", False),
        (408, b"", 504, "upstream_timeout", True),
        (504, b"", 504, "upstream_timeout", True),
        (422, b'{"error": "bad field"}', 400, "upstream_bad_request", False),
        (500, b"<html>oops</html>", 502, "upstream_error", True),
        (503, b"", 502, "upstream_error", True),
    ],
)
def test_http_statuses(status: int, body: bytes, want_status: int, want_code: str, retryable: bool) -> None:
    err = from_http(status, body, "7" if status == 429 else None, "bot")
    assert (err.status, err.code, err.retryable) == (want_status, want_code, retryable)
    assert err.message
    if status == 429:
        assert err.headers == {"retry-after": "7"}
    if status == 402:
        assert err.headers["retry-after"] == "3600"
    if status == 402:
        assert err.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("event", "want_status", "want_code"),
    [
        (Error("x", False, "insufficient_fund"), 429, "insufficient_quota"),
        (Error("This bot needs more points to answer your request.", False), 429, "insufficient_quota"),
        (
            Error("Your message is too long for this bot.", False, "user_message_too_long"),
            400,
            "context_length_exceeded",
        ),
        (Error("Please allow access.", False, "privacy_authorization_error"), 403, "privacy_authorization_required"),
        (Error("Bad file.", False, "user_caused_error"), 400, "user_caused_error"),
        (Error("You have exceeded rate limit to query bot using User API Key.", True), 429, "rate_limit_exceeded"),
        (Error("Invalid token", True), 401, "invalid_api_key"),
        (Error("Bot does not exist", False), 404, "model_not_found"),
        (Error("Internal server error", True), 502, "upstream_error"),
    ],
)
def test_error_events(event: Error, want_status: int, want_code: str) -> None:
    err = from_event(event, "bot")
    assert (err.status, err.code) == (want_status, want_code)
    assert err.retryable is (want_status == 502 and event.allow_retry)


async def test_unreachable_poe_is_a_502_after_one_retry(
    start_gateway: Callable[[Settings], Any], settings: Settings
) -> None:
    gw = await start_gateway(settings.replace(poe_base_url="http://127.0.0.1:1"))
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert info.value.status_code == 502 and "Could not reach Poe" in info.value.message
    with pytest.raises(openai.InternalServerError):
        await client.models.list()
    await client.close()


async def test_a_page_instead_of_an_event_stream(client: openai.AsyncOpenAI, sim: Simulator, gw: Running) -> None:
    page = HttpError(200, b"<html>Just a moment...</html>", content_type="text/html")
    sim.script("gpt-4o-mini", [page])
    sim.script("gpt-4o-mini", [page])
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    assert "instead of an event stream" in info.value.message and "Just a moment" in info.value.message


@pytest.mark.parametrize(
    ("steps", "want"),
    [
        ([HttpError(429, {"error": {"message": "slow down"}})], "20"),  # no hint: the estimate
        ([HttpError(429, {"error": {"message": "slow"}}, {"x-ratelimit-reset-requests": "1m30s"})], "90"),
        ([HttpError(429, {"error": {"message": "slow"}}, {"x-ratelimit-reset-requests": "850ms"})], "1"),
        ([HttpError(429, {"error": {"message": "slow"}}, {"Retry-After": "7"})], "7"),
        ([error("You have exceeded rate limit to query bot using User API Key. Try again later.")], "20"),
        ([error("x", error_type="insufficient_fund")], "3600"),
    ],
)
async def test_every_429_carries_retry_after(
    client: openai.AsyncOpenAI, sim: Simulator, steps: list[Any], want: str
) -> None:
    for stream in (False, True):
        sim.script("gpt-4o-mini", steps)
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="gpt-4o-mini", messages=user("x"), stream=stream)
        assert info.value.status_code == 429
        assert info.value.response.headers["retry-after"] == want


def test_rate_limit_reset_values() -> None:
    assert [retry_after(None, r) for r in ("12", "2.5", "1m", "1m0.5s", "junk", "-3", "1e9", "")] == [
        "12",
        "3",
        "60",
        "61",
        "20",
        "20",
        "20",
        "20",
    ]
    assert retry_after("0", None) == "0" and retry_after("soon", "4s") == "4"
