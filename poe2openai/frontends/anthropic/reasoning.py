"""Anthropic's reasoning fields to the neutral :class:`ReasoningRequest`.

- ``thinking: {"type": "enabled", "budget_tokens": N}`` → thinking on with that budget;
  ``{"type": "disabled"}`` → off; ``{"type": "adaptive"}`` → on, the bot decides how much;
- ``output_config.effort`` (``low``, ``medium``, ``high``, ``max``) → the effort level (``max``
  is the bot's highest, ``high``).

The engine maps them to each bot's own parameters, as for every dialect; a budget is clamped
to what the bot takes. ``thinking.display: "omitted"`` asks for thinking blocks without
their text (the signature still comes).
"""

from __future__ import annotations

from typing import Any

from poe2openai.conversation import ReasoningRequest
from poe2openai.errors import bad_request

BUDGET_CAP = 1_000_000  # tokens; far past any bot's range, which the engine clamps to
_EFFORTS = {"none": "none", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_ABOVE_HIGH = ("max", "xhigh")


def read_reasoning(body: dict[str, Any]) -> tuple[ReasoningRequest, bool]:
    """The reasoning asked for, and whether thinking text is to be omitted."""
    r = ReasoningRequest(source="thinking")
    omit = False
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise bad_request("thinking must be an object", "thinking")
        kind = thinking.get("type")
        if kind == "enabled":
            r.enabled = True
            budget = thinking.get("budget_tokens")
            if budget is not None:
                if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
                    where = "thinking.budget_tokens"
                    raise bad_request(f"{where} must be a whole number of tokens", where)
                r.budget = min(budget, BUDGET_CAP)
            r.source = "thinking.budget_tokens"
        elif kind == "disabled":
            r.enabled, r.budget = False, 0
        elif kind == "adaptive":
            r.enabled = True
        # another type is a newer mode this gateway does not know: the bot's default applies
        omit = thinking.get("display") == "omitted"
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str):
        low = effort.lower()
        mapped = "high" if low in _ABOVE_HIGH else _EFFORTS.get(low)
        if mapped is not None:
            r.effort = mapped
            r.source = "output_config.effort"
    return r, omit
