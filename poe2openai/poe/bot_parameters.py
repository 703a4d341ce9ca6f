"""Reasoning options and other bot parameters: from a :class:`ReasoningRequest` (what a
dialect's parser read, plus a model-name suffix for clients that cannot send extra fields:
``gpt-5:high``, ``claude-sonnet-4.5:thinking``, ``claude-sonnet-4.5:thinking-8000``) to the
parameters the bot publishes in Poe's model list (``parameters[]`` with JSON-ish schemas).

They become the bot's own parameter (``reasoning_effort``, ``output_effort``,
``thinking_level``, ``thinking_budget``, ``enable_thinking``), converted between effort and
budget where the bot has only the other, clamped to numeric ranges, and checked against
enumerations (a value the bot cannot take is a 400 naming the field). For a bot Poe does not
list, the names are sent as given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from poe2openai.conversation import ReasoningRequest
from poe2openai.errors import bad_request

EFFORTS = ("none", "minimal", "low", "medium", "high")
BUDGET_MAX = 30768  # the original's documented range for thinking budgets
_EFFORT_BUDGET = {"none": 0, "minimal": 1024, "low": 4096, "medium": 8192, "high": 16384}
_EFFORT_NAMES = ("reasoning_effort", "output_effort", "thinking_level")
SUFFIX_THINKING_BUDGET = 8192
_ASCII_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() also takes "²" and "٣"


def split_suffix(model: str) -> tuple[str, str | None]:
    """``gpt-5:high`` → (``gpt-5``, ``high``); names without a known suffix are unchanged."""
    base, sep, suffix = model.rpartition(":")
    if not sep or not base:
        return model, None
    low = suffix.lower()
    if low in EFFORTS or low == "thinking" or (low.startswith("thinking-") and _ASCII_DIGITS.fullmatch(low[9:])):
        return base, low
    return model, None


def _suffix_budget(digits: str) -> int:
    # int() refuses more than 4300 digits; anything past BUDGET_MAX's length clamps anyway
    digits = digits.lstrip("0") or "0"
    return BUDGET_MAX if len(digits) > len(str(BUDGET_MAX)) else min(int(digits), BUDGET_MAX)


def apply_suffix(r: ReasoningRequest, suffix: str | None) -> None:
    """A reasoning suffix of the model name (``gpt-5:high``) counts when no field asked."""
    if suffix is None or r.asked:
        return
    if suffix in EFFORTS:
        r.effort = suffix
    elif suffix == "thinking":
        r.enabled, r.budget = True, SUFFIX_THINKING_BUDGET
    else:
        r.enabled, r.budget = True, _suffix_budget(suffix[9:])
    r.source = "model"


def _schema(spec: dict[str, Any]) -> dict[str, Any]:
    s = spec.get("schema")
    return s if isinstance(s, dict) else {}


def _effort_value(effort: str, schema: dict[str, Any], where: str) -> str:
    enum = schema.get("enum")
    if not isinstance(enum, list) or not enum:
        return effort
    options = [str(v) for v in enum]
    if effort in options:
        return effort
    order = list(EFFORTS)
    ranked = sorted((o for o in options if o in order), key=order.index)
    if ranked:
        # the nearest level the bot has: below "low" take the lowest, above it the nearest below or equal
        wanted = order.index(effort)
        below = [o for o in ranked if order.index(o) <= wanted]
        return below[-1] if below else ranked[0]
    raise bad_request(f"{where}: this model takes {', '.join(options)}", where)


def _effort_from_budget(budget: int) -> str:
    if budget == 0:
        return "none"
    if budget <= 2048:
        return "low"
    if budget <= 12000:
        return "medium"
    return "high"


def _clamp(value: float, schema: dict[str, Any]) -> float:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, (int, float)) and value < low:
        value = low
    if isinstance(high, (int, float)) and value > high:
        value = high
    return value


def _check(name: str, value: Any, schema: dict[str, Any]) -> Any:
    where = f"poe_parameters.{name}"
    kind = schema.get("type")
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and value not in enum:
        raise bad_request(f"{where} must be one of {', '.join(map(str, enum))}", where)
    if kind == "boolean" and not isinstance(value, bool):
        raise bad_request(f"{where} must be true or false", where)
    if kind in ("number", "integer"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise bad_request(f"{where} must be a number", where)
        low, high = schema.get("minimum"), schema.get("maximum")
        if (isinstance(low, (int, float)) and value < low) or (isinstance(high, (int, float)) and value > high):
            raise bad_request(f"{where} must be from {low} to {high}", where)
    if kind == "string" and not isinstance(value, str):
        raise bad_request(f"{where} must be a string", where)
    return value


def bot_parameters(r: ReasoningRequest, published: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    """The parameters to send, for a bot publishing ``published`` (``None``: bot not listed)."""
    out: dict[str, Any] = {}
    if published is None:
        if r.effort is not None:
            out["reasoning_effort"] = r.effort
        if r.budget is not None:
            out["thinking_budget"] = r.budget
        out.update(r.extra)
        return out
    specs = {p.get("name"): p for p in published if isinstance(p.get("name"), str)}
    if r.asked:
        effort = r.effort
        if effort is None and r.budget is not None:
            effort = _effort_from_budget(r.budget)
        if effort is None and r.enabled is not None:
            effort = "medium" if r.enabled else "none"
        budget = r.budget
        if budget is None and r.effort is not None:
            budget = _EFFORT_BUDGET[r.effort]
        for name in _EFFORT_NAMES:
            if name in specs and effort is not None:
                out[name] = _effort_value(effort, _schema(specs[name]), r.source)
        if "thinking_budget" in specs and budget is not None:
            schema = _schema(specs["thinking_budget"])
            value = _clamp(budget, schema)
            if abs(value) > 2**53:  # a bound Poe published past exact integers: orjson writes any float
                out["thinking_budget"] = float(value)
            else:
                whole = schema.get("type") != "number" or float(value).is_integer()
                out["thinking_budget"] = int(value) if whole else value
        if "enable_thinking" in specs:
            enabled = r.enabled if r.enabled is not None else (effort not in ("none", None) and budget != 0)
            out["enable_thinking"] = bool(enabled)
    for name, value in r.extra.items():
        spec = specs.get(name)
        out[name] = _check(name, value, _schema(spec)) if spec is not None else value
    for name, value in r.if_supported.items():
        if name in specs and name not in out:
            out[name] = value
    return out


def as_flags(params: dict[str, Any]) -> str:
    """Parameters as Poe users type them: `` --name value``."""
    parts = []
    for name, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        parts.append(f"--{name} {value}")
    return " ".join(parts)
