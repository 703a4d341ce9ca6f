"""Structured output: the answer's text reduced to the one JSON value it holds, then judged.

Bots asked for JSON often wrap it: a sentence first, a Markdown code fence, commentary after.
This stage drops all of that. Text is held until the value's opening brace (or bracket, when
the schema allows an array) is seen with something JSON-like after it; from there the value
streams as it arrives (trailing commas dropped), and whatever follows its closing bracket is
dropped. At the end the value is parsed and validated against the schema (``jsonschema``):

- not JSON, or no JSON at all: the answer ends with a :class:`Failure` naming the problem;
- valid JSON that does not match the schema: a :class:`Failure` when the format is strict,
  otherwise the answer ends normally (the schema was asked for, the value is delivered);
- a cut answer (``finish_reason: length``) or one that made a tool call is not judged.

:attr:`JsonOutput.problem` says what was wrong either way, so the engine can re-ask a whole
answer once before anything reaches the client. Reasoning passes through untouched. Nothing
here knows a wire format.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from jsonschema import exceptions as schema_errors
from jsonschema import validators

from poe2openai.conversation import OutputFormat
from poe2openai.errors import ApiError, shown
from poe2openai.pipeline.deltas import Delta, End, Failure, ResetDelta, TextDelta, ToolCallDelta
from poe2openai.pipeline.json_scan import JsonScanner

_BEFORE, _INSIDE, _AFTER = range(3)
_PROSE_KEPT = 200  # characters of prose before the value, quoted in an error
_NEXT_IN_OBJECT = re.compile(r'\s*["}]')
_NEXT_IN_ARRAY = re.compile(r'\s*[-0-9"{\[\]tfn]')
_SPACE_ONLY = re.compile(r"\s*")
CODE = "invalid_structured_output"


def _validator_class(schema: dict[str, Any]) -> Any:
    return validators.validator_for(schema, default=validators.Draft202012Validator)


def check_schema(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a JSON Schema, or ``None`` if it is one."""
    try:
        _validator_class(schema).check_schema(schema)
    except schema_errors.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"{exc.message}" + (f" (at {where})" if where else "")
    return None


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why ``value`` does not match ``schema`` (the most relevant error), or ``None``."""
    try:
        error = schema_errors.best_match(_validator_class(schema)(schema).iter_errors(value))
    except Exception as exc:  # an unresolvable $ref and the like: the schema, not the answer
        return f"the schema could not be applied ({type(exc).__name__})"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message} (at {'/' + where if where else 'the top level'})"


def invalid_output(problem: str) -> ApiError:
    """The error a client gets when the bot's answer is not the JSON it asked for."""
    return ApiError(
        502,
        f"The bot's answer is not the JSON that response_format asks for: {problem}",
        type="api_error",
        code=CODE,
        headers={"x-should-retry": "false"},  # the gateway already re-asked; SDKs must not loop
    )


class JsonOutput:
    """The structured-output stage for one answer."""

    __slots__ = ("_arrays", "_called", "_fmt", "_json", "_pending", "_prose", "_scan", "_state", "mismatch", "problem")

    def __init__(self, fmt: OutputFormat) -> None:
        self._fmt = fmt
        schema = fmt.schema or {}
        kind = schema.get("type") if fmt.kind == "json_schema" else "object"
        self._arrays = kind == "array" or (isinstance(kind, list) and "array" in kind) or kind is None
        self.problem: str | None = None  # what was wrong with the answer, once it ended
        self.mismatch = False  # the problem is the schema only (the value is JSON)
        self._reset()

    def _reset(self) -> None:
        self._state = _BEFORE
        self._prose: list[str] = []
        self._json: list[str] = []
        self._pending = ""  # an opening bracket and the whitespace after it, not yet confirmed
        self._scan: JsonScanner | None = None
        self._called = False

    def feed(self, batch: list[Delta]) -> list[Delta]:
        """Reduce one batch."""
        out: list[Delta] = []
        for d in batch:
            kind = type(d)
            if kind is TextDelta:
                assert isinstance(d, TextDelta)
                self._text(d.text, out)
            elif kind is ToolCallDelta:
                self._called = True
                out.append(d)
            elif kind is ResetDelta:
                self._reset()
                out.append(d)
            elif kind is End:
                assert isinstance(d, End)
                out.append(self._judge(d))
            else:
                out.append(d)
        return out

    def _emit(self, text: str, out: list[Delta]) -> None:
        if text:
            self._json.append(text)
            out.append(TextDelta(text))

    def _text(self, t: str, out: list[Delta]) -> None:
        while t:
            if self._state == _AFTER:
                return
            if self._state == _INSIDE:
                assert self._scan is not None
                fragment, rest = self._scan.feed(t)
                self._emit(fragment, out)
                if rest is not None:
                    self._state = _AFTER
                return
            t = self._pending + t
            self._pending = ""
            start = self._find_open(t)
            if start < 0:
                self._keep_prose(t)
                return
            self._keep_prose(t[:start])
            t = t[start:]
            follows = _NEXT_IN_OBJECT if t[0] == "{" else _NEXT_IN_ARRAY
            if follows.match(t, 1):
                self._scan = JsonScanner()
                self._state = _INSIDE
                self._emit(t[0], out)
                t = t[1:]
            elif _SPACE_ONLY.fullmatch(t, 1):
                self._pending = t  # what follows decides
                return
            else:  # "{name}" in prose: not the value
                self._keep_prose(t[0])
                t = t[1:]

    def _find_open(self, t: str) -> int:
        brace = t.find("{")
        if not self._arrays:
            return brace
        bracket = t.find("[")
        if brace < 0 or (0 <= bracket < brace):
            return bracket
        return brace

    def _keep_prose(self, t: str) -> None:
        if t and sum(map(len, self._prose)) < _PROSE_KEPT:
            self._prose.append(t)

    @property
    def json_text(self) -> str:
        """The value as passed on so far (quoted in a re-ask)."""
        return "".join(self._json)

    def _judge(self, end: End) -> Delta:
        if end.finish_reason == "length" or self._called:
            return end
        problem = self._problem()
        self.problem = problem
        if problem is None or (self.mismatch and not self._fmt.strict):
            return end
        return Failure(invalid_output(problem))

    def _problem(self) -> str | None:
        if self._state == _BEFORE:
            prose = "".join(self._prose).strip()
            return "it holds no JSON value" + (f"; it began {shown(prose, 80)}" if prose else " (it was empty)")
        try:
            value = orjson.loads(self.json_text)
        except orjson.JSONDecodeError as exc:
            return f"it is not valid JSON ({exc})"
        if self._fmt.kind == "json_object" and not isinstance(value, dict):
            return "it is not a JSON object"
        if self._fmt.kind == "json_schema" and self._fmt.schema:
            found = schema_problem(value, self._fmt.schema)
            if found is not None:
                self.mismatch = True
                return f"it does not match the schema: {found}"
        return None
