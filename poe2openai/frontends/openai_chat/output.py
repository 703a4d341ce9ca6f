"""``response_format`` in a Chat Completions request: ``text``, ``json_object`` or ``json_schema``."""

from __future__ import annotations

import re
from typing import Any

from poe2openai.conversation import OutputFormat
from poe2openai.errors import bad_request, check_nesting, shown
from poe2openai.pipeline.json_output import check_schema

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
KINDS = ("text", "json_object", "json_schema")


def output_format(raw: dict[str, Any]) -> OutputFormat:
    """The neutral output format of a request body (400s name the field)."""
    value = raw.get("response_format")
    if value is None:
        return OutputFormat()
    if not isinstance(value, dict):
        raise bad_request("response_format must be an object", "response_format")
    kind = value.get("type")
    if kind not in KINDS:
        raise bad_request(
            f"response_format.type must be one of {', '.join(KINDS)} (got {shown(kind)})", "response_format.type"
        )
    if kind != "json_schema":
        return OutputFormat(kind)
    spec = value.get("json_schema")
    where = "response_format.json_schema"
    if not isinstance(spec, dict):
        raise bad_request(f"{where} must be an object", where, "missing_required_parameter")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad_request(f"{where}.name must be 1 to 64 letters, digits, _ or - (got {shown(name)})", f"{where}.name")
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise bad_request(f"{where}.description must be a string", f"{where}.description")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise bad_request(f"{where}.strict must be true or false", f"{where}.strict")
    schema = spec.get("schema")
    if schema is not None:
        if not isinstance(schema, dict):
            raise bad_request(f"{where}.schema must be a JSON Schema object", f"{where}.schema")
        check_nesting(schema, f"{where}.schema")
        problem = check_schema(schema)
        if problem is not None:
            raise bad_request(f"{where}.schema is not a valid JSON Schema: {problem}", f"{where}.schema")
    return OutputFormat("json_schema", schema or None, name, description, bool(strict))
