"""Tool-call arguments as bots write them: repaired JSON, or XML parameters coerced to the schema."""

from __future__ import annotations

import html
import math
import re
from typing import Any

import orjson

from poe2openai.errors import too_deep

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
# ASCII only: int() and float() also take "١٢", "1_000", " inf" and "nan"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson can write
_DIGITS_MAX = 20  # longer integer texts are outside that range anyway (and int() stops at 4300)


def _integer(text: str) -> int | None:
    if not _INTEGER.fullmatch(text) or len(text.lstrip("+-").lstrip("0")) > _DIGITS_MAX:
        return None
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else None


def _number(text: str) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _loads(text: str) -> Any:
    """``orjson.loads``, or ``ValueError`` for what is not JSON or nests too deep to write back."""
    value = orjson.loads(text)
    if too_deep(value):
        raise ValueError("nested too deep")
    return value


def parse_json_arguments(text: str) -> dict[str, Any] | None:
    """A JSON object from ``text``; tolerates a code fence, trailing commas and CDATA."""
    s = text.strip()
    if s.startswith("<![CDATA[") and s.endswith("]]>"):
        s = s[9:-3].strip()
    if not s:
        return {}
    m = _FENCE.match(s)
    if m:
        s = m.group(1).strip()
    for candidate in (s, _TRAILING_COMMA.sub(r"\1", s), html.unescape(s)):
        try:
            value = _loads(candidate)
        except ValueError:  # orjson.JSONDecodeError included
            continue
        if isinstance(value, dict):
            return value
        return None
    return None


def _types(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            return [x for o in options for x in _types(o)]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return ["string"]
    return []


def coerce(value: str, schema: Any) -> Any:
    """An XML parameter's text as the type its schema asks for (the text itself if it does not fit)."""
    raw = html.unescape(value.strip("\n"))
    stripped = raw.strip()
    for t in _types(schema) or ["string"]:
        if t == "string":
            return raw
        if t == "integer":
            i = _integer(stripped)
            if i is not None:
                return i
            f = _number(stripped)
            if f is not None and f.is_integer() and _INT_MIN <= f <= _INT_MAX:
                return int(f)
        elif t == "number":
            i = _integer(stripped)
            if i is not None:
                return i
            f = _number(stripped)
            if f is not None:
                return f
        elif t == "boolean":
            low = stripped.lower()
            if low in ("true", "yes", "1"):
                return True
            if low in ("false", "no", "0"):
                return False
        elif t == "null":
            if stripped.lower() in ("", "null", "none"):
                return None
        elif t in ("array", "object"):
            s = stripped
            m = _FENCE.match(s)
            if m:
                s = m.group(1).strip()
            for candidate in (s, _TRAILING_COMMA.sub(r"\1", s)):
                try:
                    parsed = _loads(candidate)
                except ValueError:
                    continue
                if (t == "array" and isinstance(parsed, list)) or (t == "object" and isinstance(parsed, dict)):
                    return parsed
    return raw


def encode_arguments(args: dict[str, Any]) -> str:
    """The ``function.arguments`` string."""
    return orjson.dumps(args).decode()
