"""The ``response`` object and its output items, for the non-stream body, the stream's lifecycle
events and the response store alike.

Output items, in the order the bot produced them: ``reasoning`` (its ``summary`` is the bot's
thinking text), ``message`` (one ``output_text`` part; output files as Markdown in it),
``function_call`` (``call_id``, JSON ``arguments``, ``namespace`` for a namespaced tool) and
``custom_tool_call`` (the raw ``input`` of a free-form tool).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from poe2openai.conversation import ToolPlan
from poe2openai.errors import ApiError
from poe2openai.frontends.openai_responses.ids import item_id
from poe2openai.frontends.openai_responses.tools import Tools
from poe2openai.pipeline.answer import Answer
from poe2openai.pipeline.deltas import file_markdown
from poe2openai.pipeline.usage import Usage


@dataclass(slots=True)
class ResponseMeta:
    """What every rendering of one response shares: its id, time, model and the echoed request."""

    id: str
    model: str
    echo: dict[str, Any]
    created_at: int = field(default_factory=lambda: int(time.time()))


def usage_body(usage: Usage) -> dict[str, Any]:
    """Usage in the Responses shape."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def reasoning_item(rid: str, text: str, status: str = "completed") -> dict[str, Any]:
    """A ``reasoning`` item whose summary is the bot's thinking."""
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": rid, "type": "reasoning", "summary": summary, "encrypted_content": None, "status": status}


def output_text_part(text: str) -> dict[str, Any]:
    """One ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(mid: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    """An assistant ``message`` item (``text`` ``None``: no content part yet)."""
    content = [] if text is None else [output_text_part(text)]
    return {"id": mid, "type": "message", "role": "assistant", "status": status, "content": content}


@dataclass(frozen=True, slots=True)
class CallShape:
    """How one tool call is written: its item type and the names the client knows."""

    custom: bool
    name: str
    namespace: str | None


def call_shape(offered: str, tools: Tools, plan: ToolPlan) -> CallShape:
    """The shape of a call of the tool offered to the bot as ``offered``."""
    spec = plan.by_name.get(offered)
    namespace, name = tools.namespaced.get(offered, (None, offered))
    return CallShape(spec is not None and spec.freeform, name, namespace)


def call_item(shape: CallShape, fid: str, call_id: str, payload: str, status: str = "completed") -> dict[str, Any]:
    """A ``function_call`` (JSON ``arguments``) or ``custom_tool_call`` (raw ``input``) item."""
    if shape.custom:
        item: dict[str, Any] = {
            "id": fid,
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": shape.name,
            "input": payload,
            "status": status,
        }
    else:
        item = {
            "id": fid,
            "type": "function_call",
            "call_id": call_id,
            "name": shape.name,
            "arguments": payload,
            "status": status,
        }
    if shape.namespace is not None:
        item["namespace"] = shape.namespace
    return item


def failure_code(error: ApiError) -> str:
    """The ``error.code`` of a failed response, one Codex acts on."""
    code = error.code or ""
    if error.status == 402 or code == "insufficient_quota":  # Poe out of points (a 429 with this code)
        return "insufficient_quota"
    text = f"{code} {error.message}".lower()
    if "context_length" in text or "context length" in text or "context window" in text:
        return "context_length_exceeded"
    if error.status == 429:
        return "rate_limit_exceeded"
    if 400 <= error.status < 500 and error.status not in (408, 409):
        return "invalid_prompt"
    return "server_error"


def failure_message(error: ApiError) -> str:
    """The message, with the wait a client may parse ("try again in N s") when Poe gave one."""
    wait = error.headers.get("retry-after") or error.headers.get("Retry-After")
    if wait and "try again in" not in error.message.lower():
        return f"{error.message} Please try again in {wait}s."
    return error.message


def response_object(
    meta: ResponseMeta,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    error: ApiError | None = None,
) -> dict[str, Any]:
    """The ``response`` object in state ``status``."""
    body: dict[str, Any] = {
        "id": meta.id,
        "object": "response",
        "created_at": meta.created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": meta.model,
        "output": output,
        **meta.echo,
        "usage": usage_body(usage) if usage is not None else None,
    }
    if status in ("completed", "incomplete"):
        body["completed_at"] = int(time.time())
    if error is not None:
        body["error"] = {"code": failure_code(error), "message": failure_message(error)}
    body["output_text"] = "".join(
        part["text"]
        for item in output
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )
    return body


def aggregate(meta: ResponseMeta, tools: Tools, plan: ToolPlan, answer: Answer, usage: Usage) -> dict[str, Any]:
    """The non-stream body of a whole answer."""
    status = "incomplete" if answer.finish_reason == "length" else "completed"
    output: list[dict[str, Any]] = []
    if answer.reasoning:
        output.append(reasoning_item(item_id("rs"), answer.reasoning_text))
    text = answer.text(file_markdown)
    if text:
        output.append(message_item(item_id("msg"), text, status))
    for call in answer.ordered_calls():
        shape = call_shape(call.name, tools, plan)
        output.append(call_item(shape, item_id("ctc" if shape.custom else "fc"), call.id, call.arguments_text))
    return response_object(meta, status, output, usage)
