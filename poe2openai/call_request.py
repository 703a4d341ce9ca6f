"""A request in no wire format: what every API dialect's parser produces for the engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from .bot_parameters import ReasoningRequest
from .chat_request import Message
from .tools import ToolPlan


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
