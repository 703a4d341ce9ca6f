"""What is asked of a bot, in no wire format: every API dialect's parser produces these.

A :class:`CallRequest` holds the conversation (:class:`Message`\\s flattened to text with
their attachments and earlier tool calls), the tools offered (:class:`ToolPlan`), the
reasoning asked for (:class:`ReasoningRequest`), the answer's format (:class:`OutputFormat`),
sampling, and the limits the engine enforces (``max_tokens``, ``stop``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AttachmentInput:
    """An image or file part: a ``data:`` URL or a link, as the client sent it."""

    url: str
    filename: str | None
    param: str  # where it was, e.g. ``messages[1].content[2]``


@dataclass(frozen=True, slots=True)
class ToolCallInput:
    """A tool call made by the assistant earlier in the conversation."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Message:
    """One conversation message, flattened to text plus attachments."""

    role: str
    text: str
    attachments: list[AttachmentInput] = field(default_factory=list)
    tool_calls: list[ToolCallInput] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


FREEFORM_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's raw input text"}},
    "required": ["input"],
}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: a function taking JSON ``parameters``, or (``freeform``) a tool taking raw text.

    A free-form tool's call carries its raw input text where a function's carries JSON
    arguments (:class:`ToolCallInput.arguments`, the pipeline's ``ToolCallDelta.arguments``);
    ``input_format`` describes that text (a grammar, say) for the bot, ``""`` for any text.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    freeform: bool = False
    input_format: str = ""

    def as_openai(self) -> dict[str, Any]:
        """The OpenAI / Poe ``ToolDefinition`` (a free-form tool as a function of one ``input`` string)."""
        parameters = FREEFORM_PARAMETERS if self.freeform else self.parameters
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What the request asks of tools."""

    tools: tuple[ToolSpec, ...] = ()
    choice: str = "auto"  # "auto" | "none" | "required" | "named"
    forced: str | None = None  # the tool name when choice is "named"
    parallel: bool = True
    by_name: dict[str, ToolSpec] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether the bot is offered tools at all."""
        return bool(self.tools) and self.choice != "none"


@dataclass(slots=True)
class ReasoningRequest:
    """What the client asked for, before looking at the bot."""

    effort: str | None = None
    budget: int | None = None
    enabled: bool | None = None
    source: str = "reasoning_effort"  # the field to name in errors
    extra: dict[str, Any] = field(default_factory=dict)
    # bot parameters sent only to a bot that publishes them (a hosted web_search tool, say)
    if_supported: dict[str, Any] = field(default_factory=dict)

    @property
    def asked(self) -> bool:
        """Whether any reasoning option was given."""
        return self.effort is not None or self.budget is not None or self.enabled is not None


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The shape the answer's text must have (OpenAI's ``response_format``, the Responses API's
    ``text.format``, ...): free text, one JSON object, or JSON matching ``schema``.

    With ``strict`` a value that does not match the schema is an error; without it the schema
    is asked for (and re-asked once for a whole answer) but a parseable value is delivered.
    """

    kind: str = "text"  # "text" | "json_object" | "json_schema"
    schema: dict[str, Any] | None = None  # json_schema only; None or {} accepts any JSON
    name: str = ""
    description: str = ""
    strict: bool = False

    @property
    def structured(self) -> bool:
        """Whether the answer must be JSON."""
        return self.kind != "text"


@dataclass(slots=True)
class CallRequest:
    """One completion asked of a bot, validated, in the gateway's own terms."""

    model: str  # the name the client asked for; echoed in answers
    messages: list[Message]
    stream: bool = False
    tools: ToolPlan = field(default_factory=ToolPlan)
    reasoning: ReasoningRequest = field(default_factory=ReasoningRequest)
    temperature: float | None = None
    stop: list[str] = field(default_factory=list)
    logit_bias: dict[str, float] = field(default_factory=dict)
    max_tokens: int | None = None  # enforced by the gateway: the answer is cut at this many tokens
    stream_usage: bool = False  # a streamed answer reports usage at its end
    output: OutputFormat = field(default_factory=OutputFormat)  # structured output (response_format)
