"""Parse and validate a Responses request body (``POST /v1/responses``).

``input`` is a string or a list of items: ``message`` items (roles ``user``, ``assistant``,
``system``, ``developer``; content as a string or ``input_text`` / ``output_text`` /
``input_image`` / ``input_file`` parts), earlier ``function_call`` / ``custom_tool_call``
items and their ``*_output`` items (an output may be a string or a list of ``input_text``
parts), ``reasoning`` items (accepted, not sent back to the bot: Poe bots cannot take them),
and ``additional_tools`` items (more tools). Items the gateway cannot use (hosted tool calls,
item references, compaction markers) are skipped. Consecutive assistant items (its text and
its calls) become one assistant message.

Unknown top-level fields are ignored; a bad value of a known one is a 400 naming it. Fields
that would change the meaning of the request and that the gateway does not serve
(``background``, ``conversation``, ``prompt``) are refused.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from poe2openai.conversation import (
    AttachmentInput,
    CallRequest,
    Message,
    OutputFormat,
    ReasoningRequest,
    ToolCallInput,
)
from poe2openai.errors import bad_request, check_nesting, shown
from poe2openai.frontends.fields import json_object, model_name, required_string
from poe2openai.frontends.openai_responses.tools import Tools, read_tools, tool_plan
from poe2openai.pipeline.json_output import check_schema
from poe2openai.poe.bot_parameters import EFFORTS

ROLES = ("user", "assistant", "system", "developer")
_EFFORTS = {**{e: e for e in EFFORTS}, "xhigh": "high"}
_SUMMARIES = ("auto", "concise", "detailed", "none")
_ASSISTANT_SIDE = ("function_call", "custom_tool_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output")
TEXT_FORMATS = ("text", "json_schema", "json_object")
_FORMAT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(slots=True)
class ResponsesBody:
    """A validated Responses body, before the conversation is assembled."""

    model: str
    items: list[Any]  # this request's own input items (the string form as one user message)
    instructions: str | None
    tools: Tools
    call: CallRequest  # messages still empty: see :func:`conversation`
    previous_response_id: str | None = None
    store: bool = True
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the response object repeats


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be true or false", key)
    return value


def _optional_string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{key} must be a string", key)
    return value


def _reasoning(body: dict[str, Any]) -> tuple[ReasoningRequest, dict[str, Any]]:
    r = ReasoningRequest(source="reasoning.effort")
    echo: dict[str, Any] = {"effort": None, "summary": None}
    raw = body.get("reasoning")
    if raw is not None:
        if not isinstance(raw, dict):
            raise bad_request("reasoning must be an object", "reasoning")
        effort = raw.get("effort")
        if effort is not None:
            if not isinstance(effort, str) or effort.lower() not in _EFFORTS:
                raise bad_request(
                    f"reasoning.effort must be one of {', '.join(_EFFORTS)} (got {shown(effort)})", "reasoning.effort"
                )
            r.effort = _EFFORTS[effort.lower()]
            echo["effort"] = effort.lower()
        summary = raw.get("summary", raw.get("generate_summary"))
        if summary is not None:
            if summary not in _SUMMARIES:
                raise bad_request(f"reasoning.summary must be one of {', '.join(_SUMMARIES)}", "reasoning.summary")
            echo["summary"] = summary
    extra_body = body.get("extra_body") if isinstance(body.get("extra_body"), dict) else {}
    assert isinstance(extra_body, dict)
    params = body.get("poe_parameters", extra_body.get("poe_parameters"))
    if params is not None:
        where = "poe_parameters" if "poe_parameters" in body else "extra_body.poe_parameters"
        if not isinstance(params, dict):
            raise bad_request(f"{where} must be an object of bot parameters", where)
        for name, value in params.items():
            check_nesting(value, f"{where}.{name[:100]}")
        r.extra = dict(params)
    return r, echo


def _text_config(body: dict[str, Any]) -> tuple[dict[str, Any], OutputFormat]:
    """``text`` (echoed) and its ``format`` as the engine's structured-output request."""
    raw = body.get("text")
    if raw is None:
        return {"format": {"type": "text"}}, OutputFormat()
    if not isinstance(raw, dict):
        raise bad_request("text must be an object", "text")
    fmt = raw.get("format")
    if fmt is None:
        return {**raw, "format": {"type": "text"}}, OutputFormat()
    if not isinstance(fmt, dict) or fmt.get("type") not in TEXT_FORMATS:
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        message = f"text.format.type must be one of {', '.join(TEXT_FORMATS)} (got {shown(kind)})"
        raise bad_request(message, "text.format.type")
    if fmt["type"] != "json_schema":
        return dict(raw), OutputFormat(fmt["type"])
    name = fmt.get("name")
    if not isinstance(name, str) or not _FORMAT_NAME.fullmatch(name):
        message = f"text.format.name must be 1 to 64 letters, digits, _ or - (got {shown(name)})"
        raise bad_request(message, "text.format.name")
    description = fmt.get("description") or ""
    if not isinstance(description, str):
        raise bad_request("text.format.description must be a string", "text.format.description")
    strict = fmt.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request("text.format.strict must be true or false", "text.format.strict")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise bad_request("text.format.schema must be a JSON Schema object", "text.format.schema")
    check_nesting(schema, "text.format.schema")
    problem = check_schema(schema)
    if problem is not None:
        raise bad_request(f"text.format.schema is not a valid JSON Schema: {problem}", "text.format.schema")
    return dict(raw), OutputFormat("json_schema", schema or None, name, description, bool(strict))


def _limits(body: dict[str, Any]) -> tuple[float | None, float | None, int | None]:
    temperature = body.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
        raise bad_request("temperature must be a number from 0 to 2", "temperature")
    top_p = body.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0 <= top_p <= 1):
        raise bad_request("top_p must be a number from 0 to 1", "top_p")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise bad_request("max_output_tokens must be a positive integer", "max_output_tokens")
    return (
        float(temperature) if temperature is not None else None,
        float(top_p) if top_p is not None else None,
        limit,
    )


def _refuse_unserved(body: dict[str, Any]) -> None:
    if body.get("background") is True:
        message = "background responses are not supported; stream, or wait for the answer"
        raise bad_request(message, "background", "unsupported_value")
    if body.get("conversation") is not None:
        raise bad_request(
            "conversation objects are not supported; use previous_response_id or send the history in input",
            "conversation",
            "unsupported_value",
        )
    if body.get("prompt") is not None:
        raise bad_request("prompt templates are not supported; send input", "prompt", "unsupported_value")


def parse_body(body: Any) -> ResponsesBody:
    """Validate a decoded JSON body (everything but the conversation itself)."""
    body = json_object(body)
    model = model_name(body)
    _refuse_unserved(body)

    raw_input = body.get("input")
    previous = _optional_string(body, "previous_response_id") or None
    if isinstance(raw_input, str):
        items: list[Any] = [{"type": "message", "role": "user", "content": raw_input}]
    elif isinstance(raw_input, list):
        items = raw_input
    elif raw_input is None and previous is not None:
        items = []
    elif raw_input is None:
        raise bad_request("input is required", "input", "missing_required_parameter")
    else:
        raise bad_request("input must be a string or a list of items", "input")

    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("instructions must be a string", "instructions")

    extra_tools: list[tuple[str, list[Any]]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            listed = item.get("tools")
            if not isinstance(listed, list):
                raise bad_request(f"input[{i}].tools must be a list", f"input[{i}].tools")
            extra_tools.append((f"input[{i}].tools", listed))
    tools = read_tools(body.get("tools"), extra_tools)
    plan = tool_plan(body, tools)
    reasoning, reasoning_echo = _reasoning(body)
    if tools.web_search:
        reasoning.if_supported["web_search"] = True
    text, output = _text_config(body)
    temperature, top_p, limit = _limits(body)
    stream = _bool(body, "stream", False)
    store = _bool(body, "store", True)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request("metadata must be an object", "metadata")
    include = body.get("include")
    if include is not None and not (isinstance(include, list) and all(isinstance(x, str) for x in include)):
        raise bad_request("include must be a list of strings", "include")

    call = CallRequest(
        model=model,
        messages=[],
        stream=stream,
        tools=plan,
        reasoning=reasoning,
        temperature=temperature,
        max_tokens=limit,
        stream_usage=True,  # a Responses answer always reports its usage
        output=output,
    )
    tier = body.get("service_tier")
    echo = {
        "instructions": instructions,
        "max_output_tokens": limit,
        "metadata": metadata or {},
        "parallel_tool_calls": plan.parallel,
        "previous_response_id": previous,
        "reasoning": reasoning_echo,
        "service_tier": "default" if tier in (None, "auto") else tier,
        "store": store,
        "temperature": temperature if temperature is not None else 1.0,
        "text": text,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": top_p if top_p is not None else 1.0,
        "truncation": body.get("truncation") if body.get("truncation") in ("auto", "disabled") else "disabled",
        "user": _optional_string(body, "user"),
        "prompt_cache_key": _optional_string(body, "prompt_cache_key"),
        "safety_identifier": _optional_string(body, "safety_identifier"),
    }
    return ResponsesBody(
        model=model,
        items=items,
        instructions=instructions,
        tools=tools,
        call=call,
        previous_response_id=previous,
        store=store,
        echo=echo,
    )


# --- the conversation -------------------------------------------------------------------


def _part_text(part: dict[str, Any], key: str, p: str) -> str:
    value = part.get(key)
    if not isinstance(value, str):
        raise bad_request(f"{p}.{key} must be a string", f"{p}.{key}")
    return value


def _image(part: dict[str, Any], p: str) -> AttachmentInput:
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str) or not url:
        if part.get("file_id") is not None:
            raise bad_request(f"{p}.file_id is not supported; send image_url (a link or a data: URL)", f"{p}.file_id")
        raise bad_request(f"{p}.image_url must be a link or a data: URL", f"{p}.image_url")
    return AttachmentInput(url, None, p)


def _file(part: dict[str, Any], p: str) -> AttachmentInput:
    name = part.get("filename")
    name = name if isinstance(name, str) and name else None
    data = part.get("file_data")
    if isinstance(data, str) and data:
        if not data.startswith("data:") and "://" not in data:  # raw base64: the type from the name
            mime = (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream"
            data = f"data:{mime};base64,{data}"
        return AttachmentInput(data, name, p)
    url = part.get("file_url")
    if isinstance(url, str) and url:
        return AttachmentInput(url, name, p)
    if part.get("file_id") is not None:
        raise bad_request(f"{p}.file_id is not supported; send file_data or file_url", f"{p}.file_id")
    raise bad_request(f"{p}.file_data must be a data: URL (or send file_url)", f"{p}.file_data")


def _content(content: Any, where: str, msg: Message) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where} must be a string or a list of parts", where)
    texts: list[str] = []
    for j, part in enumerate(content):
        p = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise bad_request(f"{p} must be an object", p)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text"):
            texts.append(_part_text(part, "text", p))
        elif kind == "refusal":
            texts.append(_part_text(part, "refusal", p))
        elif kind in ("input_image", "input_file"):
            if msg.role != "user":
                raise bad_request(f"{p}: {kind} parts are only allowed in user messages", f"{p}.type")
            msg.attachments.append(_image(part, p) if kind == "input_image" else _file(part, p))
        else:
            raise bad_request(
                f"{p}.type {shown(kind)} is not supported (use input_text, input_image or input_file)",
                f"{p}.type",
                "unsupported_content",
            )
    return "\n\n".join(texts)


def _tool_output(output: Any, where: str) -> str:
    """A tool result: a string, or a list of parts (text kept, images and files noted)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts: list[str] = []
        for j, part in enumerate(output):
            p = f"{where}[{j}]"
            if not isinstance(part, dict):
                raise bad_request(f"{p} must be an object", p)
            kind = part.get("type")
            if kind in ("input_text", "output_text", "text"):
                texts.append(_part_text(part, "text", p))
            elif kind == "input_image":
                texts.append("[an image]")
            elif kind == "input_file":
                name = part.get("filename")
                texts.append(f"[a file: {name}]" if isinstance(name, str) and name else "[a file]")
            else:
                raise bad_request(f"{p}.type {shown(kind)} is not supported in a tool output", f"{p}.type")
        return "\n\n".join(texts)
    if output is None:
        return ""
    raise bad_request(f"{where} must be a string or a list of parts", where)


def _call_id(item: dict[str, Any], where: str) -> str:
    value = required_string(item, "call_id", where)
    return value


class _Builder:
    """Items to messages, merging an assistant's consecutive text and calls into one message."""

    def __init__(self, tools: Tools) -> None:
        self.tools = tools
        self.messages: list[Message] = []
        self._open_assistant: Message | None = None

    def _assistant(self) -> Message:
        if self._open_assistant is None:
            self._open_assistant = Message(role="assistant", text="")
            self.messages.append(self._open_assistant)
        return self._open_assistant

    def add(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object", where)
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            self._message(item, where)
        elif kind in _ASSISTANT_SIDE:
            self._call(item, where, kind)
        elif kind in _OUTPUTS:
            key = "output"
            text = _tool_output(item.get(key), f"{where}.{key}")
            self.messages.append(Message(role="tool", text=text, tool_call_id=_call_id(item, where)))
            self._open_assistant = None
        elif not isinstance(kind, str):
            raise bad_request(f"{where}.type must be a string", f"{where}.type")
        # reasoning, additional_tools (read with the tools), hosted tool calls, references: skipped

    def _message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        if role not in ROLES:
            raise bad_request(f"{where}.role must be one of {', '.join(ROLES)} (got {shown(role)})", f"{where}.role")
        if "content" not in item:
            raise bad_request(f"{where}.content is required", f"{where}.content")
        if role == "assistant":
            msg = self._assistant()
            text = _content(item["content"], f"{where}.content", msg)
            if text:
                msg.text = f"{msg.text}\n\n{text}" if msg.text else text
            return
        msg = Message(role=role, text="")
        msg.text = _content(item["content"], f"{where}.content", msg)
        self.messages.append(msg)
        self._open_assistant = None

    def _call(self, item: dict[str, Any], where: str, kind: str) -> None:
        name = required_string(item, "name", where)
        ns = item.get("namespace")
        offered = self.tools.offered_name(name, ns if isinstance(ns, str) else None)
        if kind == "custom_tool_call":
            value = item.get("input", "")
            if not isinstance(value, str):
                raise bad_request(f"{where}.input must be a string", f"{where}.input")
        else:
            value = item.get("arguments", "")
            if isinstance(value, (dict, list)):
                check_nesting(value, f"{where}.arguments")
                value = orjson.dumps(value).decode()
            if not isinstance(value, str):
                raise bad_request(f"{where}.arguments must be a JSON string", f"{where}.arguments")
        self._assistant().tool_calls.append(ToolCallInput(_call_id(item, where), offered, value))


def conversation(parsed: ResponsesBody, history: list[Any]) -> CallRequest:
    """The engine's request: instructions, the stored ``history`` items, then this input."""
    builder = _Builder(parsed.tools)
    if parsed.instructions:
        builder.messages.append(Message(role="system", text=parsed.instructions))
    for item in history:
        builder.add(item, "previous_response_id")
    for i, item in enumerate(parsed.items):
        builder.add(item, f"input[{i}]")
    if not any(m.role not in ("system", "developer") for m in builder.messages):
        raise bad_request("input must hold at least one message", "input")
    call = parsed.call
    call.messages = builder.messages
    return call
