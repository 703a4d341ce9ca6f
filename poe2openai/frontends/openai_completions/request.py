"""Parse a Completions body, and turn its prompt into a conversation a chat bot continues.

Poe bots are chat models, so the prompt becomes one user message under an instruction to
reply with the continuation only; with ``suffix`` (fill-in-the-middle) the bot is asked for
the middle part only. ``max_tokens`` has no default here (OpenAI's is 16, which would cut
nearly every answer of a chat bot); ``n`` and ``best_of`` must be 1 and ``logprobs`` is not
offered. Unknown fields, ``presence_penalty``, ``frequency_penalty``, ``seed``, ``top_p`` and
``user`` are accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poe2openai.conversation import CallRequest, Message, ReasoningRequest
from poe2openai.errors import bad_request, check_nesting
from poe2openai.frontends.fields import json_object, model_name
from poe2openai.frontends.openai_chat.request import read_logit_bias, read_stop, read_stream, read_temperature

MAX_STOPS = 4

CONTINUE = (
    "You are a text completion engine. The user's message is the beginning of a text. Reply with "
    "only the text that comes next, continuing exactly where it stops (in the middle of a word or "
    "line if it stops there). Write no explanation, no code fences, and do not repeat the given text."
)
FILL = (
    "You are a fill-in-the-middle completion engine. The user's message holds the text before a "
    "gap in <prefix> and the text after it in <suffix>. Reply with only the text that belongs in the "
    "gap: it continues the prefix exactly where it stops and leads into the suffix. Write no "
    "explanation, no code fences, no tags, and do not repeat the prefix or the suffix."
)


@dataclass(slots=True)
class CompletionsRequest:
    """A validated Completions request."""

    call: CallRequest
    prompt: str
    echo: bool


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _prompt(body: dict[str, Any]) -> str:
    raw = body.get("prompt")
    if isinstance(raw, list):
        if len(raw) != 1:
            raise bad_request("prompt must be a string or a list of exactly one string", "prompt", "unsupported_value")
        raw = raw[0]
        if not isinstance(raw, str):
            raise bad_request("prompt as token ids is not supported; send text", "prompt", "unsupported_value")
    if raw is None:
        raise bad_request("prompt is required", "prompt", "missing_required_parameter")
    if not isinstance(raw, str):
        raise bad_request("prompt must be a string", "prompt")
    if not raw:
        raise bad_request("prompt must not be empty", "prompt")
    return raw


def _one(body: dict[str, Any], key: str) -> None:
    value = body.get(key)
    if value is not None and value != 1:
        raise bad_request(f"{key} must be 1: Poe bots give one answer per request", key, "unsupported_value")


def parse(body: Any) -> CompletionsRequest:
    """Validate a decoded JSON body (400s name the field)."""
    body = json_object(body)
    model = model_name(body)
    prompt = _prompt(body)
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise bad_request("suffix must be a string", "suffix")

    stream, include_usage = read_stream(body)
    echo = body.get("echo", False)
    if echo is None:
        echo = False
    if not isinstance(echo, bool):
        raise bad_request("echo must be true or false", "echo")

    temperature = read_temperature(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise bad_request("max_tokens must be a positive integer", "max_tokens")
    _one(body, "n")
    _one(body, "best_of")
    logprobs = body.get("logprobs")
    if logprobs not in (None, 0, False):
        raise bad_request("logprobs are not offered by Poe bots", "logprobs", "unsupported_value")

    bias = read_logit_bias(body)

    reasoning = ReasoningRequest()
    params = body.get("poe_parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise bad_request("poe_parameters must be an object of bot parameters", "poe_parameters")
        for name, value in params.items():
            check_nesting(value, f"poe_parameters.{name[:100]}")
        reasoning.extra = dict(params)

    if suffix:
        messages = [
            Message(role="system", text=FILL),
            Message(role="user", text=f"<prefix>{prompt}</prefix>\n<suffix>{suffix}</suffix>"),
        ]
    else:
        messages = [Message(role="system", text=CONTINUE), Message(role="user", text=prompt)]
    call = CallRequest(
        model=model,
        messages=messages,
        stream=stream,
        reasoning=reasoning,
        temperature=temperature,
        stop=read_stop(body, MAX_STOPS),
        logit_bias=bias,
        max_tokens=max_tokens,
        stream_usage=include_usage,
    )
    return CompletionsRequest(call, prompt, echo)
