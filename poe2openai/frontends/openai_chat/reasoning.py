"""The reasoning fields of an OpenAI-style request body, and ``poe_parameters``.

- ``reasoning_effort``: ``none``, ``minimal``, ``low``, ``medium``, ``high``;
- ``thinking: {"type": "enabled"|"disabled", "budget_tokens": 0..30768}``;
- ``extra_body.google.thinking_config.thinking_budget`` / ``include_thoughts`` (also as a
  top-level ``google``, which is where the ``openai`` SDK puts ``extra_body`` keys);
- ``poe_parameters: {...}`` (or ``extra_body.poe_parameters``): any other bot parameter,
  e.g. ``{"web_search": true, "aspect_ratio": "16:9"}``.

The engine maps the result to the bot's own parameters (:mod:`bot_parameters`).
"""

from __future__ import annotations

from typing import Any

from poe2openai.conversation import ReasoningRequest
from poe2openai.errors import bad_request, check_nesting, shown
from poe2openai.poe.bot_parameters import BUDGET_MAX, EFFORTS


def _budget(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"{where} must be a whole number of tokens", where)
    if not 0 <= value <= BUDGET_MAX:
        raise bad_request(f"{where} must be from 0 to {BUDGET_MAX} (got {shown(value)})", where)
    return value


def read_request(raw: dict[str, Any]) -> ReasoningRequest:
    """Validate the reasoning fields of a request body."""
    r = ReasoningRequest()
    extra_body = raw.get("extra_body") if isinstance(raw.get("extra_body"), dict) else {}
    assert isinstance(extra_body, dict)

    google = raw.get("google", extra_body.get("google"))
    where = "google" if "google" in raw else "extra_body.google"
    if google is not None:
        cfg = google.get("thinking_config") if isinstance(google, dict) else None
        if cfg is not None and not isinstance(cfg, dict):
            raise bad_request(f"{where}.thinking_config must be an object", f"{where}.thinking_config")
        if isinstance(cfg, dict):
            if cfg.get("thinking_budget") is not None:
                r.budget = _budget(cfg["thinking_budget"], f"{where}.thinking_config.thinking_budget")
                r.source = f"{where}.thinking_config.thinking_budget"
            include = cfg.get("include_thoughts")
            if include is not None and not isinstance(include, bool):
                raise bad_request(
                    f"{where}.thinking_config.include_thoughts must be true or false",
                    f"{where}.thinking_config.include_thoughts",
                )
            if include is True and r.budget != 0:
                r.enabled = True

    thinking = raw.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise bad_request("thinking must be an object", "thinking")
        kind = thinking.get("type", "enabled")
        if kind not in ("enabled", "disabled", "adaptive"):
            raise bad_request("thinking.type must be enabled or disabled", "thinking.type")
        if kind == "disabled":
            r.enabled, r.budget = False, 0
        else:
            r.enabled = True
            if thinking.get("budget_tokens") is not None:
                r.budget = _budget(thinking["budget_tokens"], "thinking.budget_tokens")
        r.source = "thinking.budget_tokens"

    effort = raw.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort.lower() not in EFFORTS:
            raise bad_request(
                f"reasoning_effort must be one of {', '.join(EFFORTS)} (got {shown(effort)})", "reasoning_effort"
            )
        r.effort = effort.lower()
        r.source = "reasoning_effort"

    params = raw.get("poe_parameters", extra_body.get("poe_parameters"))
    if params is not None:
        where = "poe_parameters" if "poe_parameters" in raw else "extra_body.poe_parameters"
        if not isinstance(params, dict):
            raise bad_request(f"{where} must be an object of bot parameters", where)
        for name, value in params.items():
            check_nesting(value, f"{where}.{name[:100]}")
        r.extra = dict(params)
    return r
