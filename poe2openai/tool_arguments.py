"""Tool-call arguments as bots write them: repaired JSON, or XML parameters coerced to the schema."""

from __future__ import annotations

import html
import re
from typing import Any

import orjson

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


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
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError:
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
            try:
                return int(stripped)
            except ValueError:
                try:
                    f = float(stripped)
                except ValueError:
                    continue
                if f.is_integer():
                    return int(f)
        elif t == "number":
            try:
                f = float(stripped)
            except ValueError:
                continue
            return int(f) if f.is_integer() and "." not in stripped and "e" not in stripped.lower() else f
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
                    parsed = orjson.loads(candidate)
                except orjson.JSONDecodeError:
                    continue
                if (t == "array" and isinstance(parsed, list)) or (t == "object" and isinstance(parsed, dict)):
                    return parsed
    return raw


def encode_arguments(args: dict[str, Any]) -> str:
    """The ``function.arguments`` string."""
    return orjson.dumps(args).decode()
