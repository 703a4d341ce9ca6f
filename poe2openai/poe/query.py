"""Build the body of a Poe ``/bot/{name}`` query from a validated request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from poe2openai.conversation import CallRequest, Message, OutputFormat

# OpenAI role -> Poe role. Poe has no "developer"; it is a system instruction.
POE_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "bot", "tool": "user"}


@dataclass(frozen=True, slots=True)
class PoeAttachment:
    """An attachment already on Poe's CDN."""

    url: str
    content_type: str
    name: str


@dataclass(slots=True)
class QueryOptions:
    """Everything besides the messages that shapes the query."""

    system_as_user: bool = False  # models.yaml ``replace_response``: image/video bots ignore system
    parameters: dict[str, Any] = field(default_factory=dict)  # bot parameters for the last user message
    flags: str = ""  # ``--name value`` flags appended to the last user message (opt-in per model)
    attachments: dict[int, list[PoeAttachment]] = field(default_factory=dict)  # message index -> files


def poe_message(role: str, content: str, attachments: list[PoeAttachment] | None = None) -> dict[str, Any]:
    """One ``ProtocolMessage``."""
    msg: dict[str, Any] = {"role": role, "content": content, "content_type": "text/markdown"}
    if attachments:
        msg["attachments"] = [{"url": a.url, "content_type": a.content_type, "name": a.name} for a in attachments]
    return msg


def _default_text(msg: Message) -> str:
    """Text of a message without tool rendering (tool calls as plain notes)."""
    if msg.role == "tool":
        return f"Result of tool call {msg.tool_call_id}:\n{msg.text}"
    if msg.tool_calls:
        calls = "\n".join(f"Called tool {c.name} ({c.id}) with {c.arguments}" for c in msg.tool_calls)
        return f"{msg.text}\n\n{calls}" if msg.text else calls
    return msg.text


def output_instructions(fmt: OutputFormat) -> str:
    """The block added to the system prompt when the answer must be JSON."""
    lines = [
        "# Answer format",
        "",
        "Answer with one JSON value and nothing else: no sentence before or after it, no Markdown code fence.",
    ]
    if fmt.kind == "json_schema" and fmt.schema:
        if fmt.name:
            lines.append(f"The value is a {fmt.name}." + (f" {fmt.description.strip()}" if fmt.description else ""))
        lines += ["It must match this JSON Schema (every required property, no others if it says so):", ""]
        lines.append("JSON Schema: " + orjson.dumps(fmt.schema).decode())
    else:
        lines.append("The value is a JSON object.")
    return "\n".join(lines)


def correction(problem: str) -> str:
    """The user message of the one re-ask after an answer that was not the JSON asked for."""
    return (
        f"Your answer was not accepted: {problem}. Answer again with only the JSON value, "
        "following the answer format in the instructions exactly, and nothing else."
    )


def _add_system(rendered: list[dict[str, Any]], block: str) -> None:
    system = next((m for m in rendered if m["role"] == "system"), None)
    if system is None:
        rendered.insert(0, poe_message("system", block))
    else:
        system["content"] = f"{system['content']}\n\n{block}" if system["content"] else block


def build_query(req: CallRequest, opts: QueryOptions, rendered: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The query body; ``rendered`` replaces the message list when the tool stage built it."""
    if rendered is None:
        rendered = []
        for i, m in enumerate(req.messages):
            role = POE_ROLES[m.role]
            rendered.append(poe_message(role, _default_text(m), opts.attachments.get(i)))
    if req.output.structured:
        _add_system(rendered, output_instructions(req.output))
    if opts.system_as_user:
        for pm in rendered:
            if pm["role"] == "system":
                pm["role"] = "user"
    if opts.parameters or opts.flags:
        last_user = next((m for m in reversed(rendered) if m["role"] == "user"), None)
        if last_user is not None:
            if opts.parameters:
                last_user["parameters"] = dict(opts.parameters)
            if opts.flags:
                last_user["content"] = f"{last_user['content']} {opts.flags}"
    body: dict[str, Any] = {
        "version": "1.2",
        "type": "query",
        "query": rendered,
        "user_id": "",
        "conversation_id": "",
        "message_id": "",
    }
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.logit_bias:
        body["logit_bias"] = req.logit_bias
    return body


def encode(body: dict[str, Any]) -> bytes:
    """The query as JSON bytes."""
    return orjson.dumps(body)
