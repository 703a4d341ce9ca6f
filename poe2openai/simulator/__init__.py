"""A Poe simulator: an aiohttp app speaking Poe's real protocol over HTTP.

- ``POST /bot/{name}``: bearer-key check, case-insensitive bot lookup, ``type`` dispatch
  (``query`` streams events; ``report_*``/``settings`` answer ``{}``); every body recorded.
- ``GET /v1/models``: Poe's public model list shape (ms ``created``, ``metadata``, ``parameters``).
- ``POST /file_upload``: Poe's upload endpoint (multipart ``file`` or ``download_url``); stored
  bytes are served back under ``/base/...``.

Bots answer from built-in behaviours (echo, thinking, image, slow, tool-using, and the agent bot
of :mod:`poe2openai.simulator.agent` for ``agent-bot`` and ``agent-*``) or from a
script queued by a test with :meth:`Simulator.script`. Scripts are lists of steps: events,
raw bytes, sleeps, an HTTP error, a cut connection; responses can use CRLF line ends, keep-
alive comments, and arbitrary write sizes (split inside lines and UTF-8 sequences).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson
from aiohttp import web
from aiohttp.multipart import BodyPartReader

from poe2openai.simulator import agent
from poe2openai.simulator.agent import AGENT_BOT as AGENT_BOT
from poe2openai.simulator.agent import ANSWER_PREFIX as ANSWER_PREFIX


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event; ``data`` is JSON-encoded unless it is already ``bytes``."""

    name: str
    data: Any = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes written as they are."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Sleep:
    """A pause between writes."""

    seconds: float


@dataclass(frozen=True, slots=True)
class HttpError:
    """Answer with this status and body instead of a stream."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Cut:
    """Drop the connection here (no ``done``)."""


Step: TypeAlias = Event | Raw | Sleep | HttpError | Cut


def text(t: str) -> Event:
    """A ``text`` event."""
    return Event("text", {"text": t})


def replace(t: str) -> Event:
    """A ``replace_response`` event."""
    return Event("replace_response", {"text": t})


def error(t: str, allow_retry: bool = False, error_type: str | None = None) -> Event:
    """An ``error`` event."""
    data: dict[str, Any] = {"allow_retry": allow_retry, "text": t}
    if error_type:
        data["error_type"] = error_type
    return Event("error", data)


DONE = Event("done", {})
DEFAULT_COST = 20  # points a query costs when Simulator.query_costs does not say
HISTORY_KEPT = 10_000  # rows of points history kept per key (Poe keeps 30 days)


def texts(*parts: str) -> list[Step]:
    """A plain answer in several ``text`` events, then ``done``."""
    return [*(text(p) for p in parts), DONE]


@dataclass
class Script:
    """A scripted answer for one query."""

    steps: list[Step]
    crlf: bool = False
    write_size: int = 0  # split the body into writes of this many bytes (0: one write per step)
    pings: bool = False  # a ``: ping`` comment before each event
    headers_after: float = 0.0  # seconds before the response headers go out


@dataclass
class Recorded:
    """One request the simulator received."""

    bot: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # arrival, for pacing checks


MODELS: list[dict[str, Any]] = [
    {
        "id": "claude-sonnet-4.5",
        "owned_by": "Anthropic",
        "display": "Claude-Sonnet-4.5",
        "pricing": {"prompt": "0.0000026", "completion": "0.000013", "image": None, "request": None},
        "parameters": [
            {
                "name": "thinking_budget",
                "schema": {"type": "number", "minimum": 0, "maximum": 31999},
                "default_value": 0,
            },
            {"name": "web_search", "schema": {"type": "boolean"}, "default_value": False},
        ],
    },
    {
        "id": "gpt-5",
        "owned_by": "OpenAI",
        "display": "GPT-5",
        "pricing": {"prompt": "0.0000011", "completion": "0.0000090", "image": None, "request": None},
        "parameters": [
            {
                "name": "reasoning_effort",
                "schema": {"type": "string", "enum": ["minimal", "low", "medium", "high"]},
                "default_value": "medium",
            },
            {"name": "web_search", "schema": {"type": "boolean"}, "default_value": False},
        ],
    },
    {
        "id": "gemini-2.5-pro",
        "owned_by": "Google",
        "display": "Gemini-2.5-Pro",
        "parameters": [
            {
                "name": "thinking_budget",
                "schema": {"type": "number", "minimum": 0, "maximum": 32768},
                "default_value": 0,
            }
        ],
    },
    {
        "id": "deepseek-r1",
        "owned_by": "Fireworks AI",
        "display": "DeepSeek-R1",
        "parameters": [{"name": "enable_thinking", "schema": {"type": "boolean"}, "default_value": True}],
    },
    {
        "id": "gpt-4o-mini",
        "owned_by": "OpenAI",
        "display": "GPT-4o-Mini",
        "pricing": {"prompt": "0.00000014", "completion": "0.00000054", "image": None, "request": None},
        "parameters": [],
    },
    {
        "id": "nano-banana",
        "owned_by": "Google",
        "display": "Nano-Banana",
        "parameters": [{"name": "aspect_ratio", "schema": {"type": "string", "enum": ["1:1", "16:9", "9:16"]}}],
    },
]


def _last_user_text(body: dict[str, Any]) -> str:
    for msg in reversed(body.get("query") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""


_TOOL_SECTION = re.compile(r"^## (\S+)\n(?:.*\n)?Parameters \(JSON Schema\): (.*)$", re.MULTILINE)


def _example_arguments(schema: dict[str, Any], said: str) -> dict[str, Any]:
    props = schema.get("properties")
    example: dict[str, Any] = {"string": said, "integer": 1, "number": 1.5, "boolean": True, "array": [said]}
    out: dict[str, Any] = {}
    for key, prop in props.items() if isinstance(props, dict) else []:
        kind = prop.get("type") if isinstance(prop, dict) else None
        out[key] = example.get(kind, said) if isinstance(kind, str) else said
    return out


_ANSWER_FORMAT = re.compile(
    r"^# Answer format\n(?:.*\n)*?(?:JSON Schema: (.*)|The value is a JSON object\.)$", re.MULTILINE
)


def _system(body: dict[str, Any]) -> str:
    return str(next((m.get("content", "") for m in body.get("query", []) if m.get("role") == "system"), ""))


def asked_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema the gateway's answer-format instruction asks for (``{}``: any object)."""
    found = _ANSWER_FORMAT.search(_system(body))
    if found is None:
        return None
    return orjson.loads(found.group(1)) if found.group(1) else {"type": "object"}


def example_value(schema: Any, said: str, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value that matches ``schema`` (the subset pydantic and SDKs produce: types,
    properties, items, enum, const, anyOf/oneOf/allOf, $ref to $defs, minimums and lengths)."""
    root = root if root is not None else schema
    if not isinstance(schema, dict) or depth > 20:
        return said
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return example_value(target, said, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")] or options
            return example_value(usable[0], said, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        return {k: example_value(v, said, root, depth + 1) for k, v in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [example_value(schema.get("items", {}), said, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low: Any = schema.get("minimum", schema.get("exclusiveMinimum")) or 0
        value = max(1, int(low) + (1 if "exclusiveMinimum" in schema else 0))
        return value if kind == "integer" else value + 0.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = said or "example"
    return (text * (1 + int(schema.get("minLength", 0)) // max(1, len(text))))[: schema.get("maxLength", 10_000)]


def json_answer(body: dict[str, Any], lead: list[Step] | None = None) -> list[Step] | None:
    """When the gateway asks for JSON: a conforming value, wrapped the way bots often do
    (a sentence and a fence the gateway strips), in small pieces."""
    schema = asked_schema(body)
    if schema is None:
        return None
    said = _last_user_text(body).strip().split("\n")[0][:60] or "example"
    value = orjson.dumps(example_value(schema, said), option=orjson.OPT_INDENT_2).decode()
    answer = f"Here is the JSON you asked for:\n\n```json\n{value}\n```\n\nLet me know if you need more."
    return [*(lead or []), *texts(*(answer[i : i + 16] for i in range(0, len(answer), 16)))]


def tool_answer(body: dict[str, Any]) -> list[Step] | None:
    """When the gateway offers tools: call the first one, then answer from its result."""
    system = next((m.get("content", "") for m in body.get("query", []) if m.get("role") == "system"), "")
    found = _TOOL_SECTION.search(str(system)) if "# Tools" in str(system) else None
    if found is None:
        return None
    said = _last_user_text(body).strip()
    if said.startswith("<tool_result"):
        result = said.split("\n", 1)[1].rsplit("</tool_result>", 1)[0].strip() if "\n" in said else said
        return json_answer(body) or texts("The tool answered: ", result)
    name, schema = found.group(1), orjson.loads(found.group(2))
    args = orjson.dumps(_example_arguments(schema, said or "hello")).decode()
    call = f"<tool_call>\n<name>{name}</name>\n<arguments>{args}</arguments>\n</tool_call>"
    if "no text before it" not in system:  # an older instruction invited a sentence first
        call = f"Let me use {name}.\n\n{call}"
    return texts(*(call[i : i + 12] for i in range(0, len(call), 12)))


def echo_answer(body: dict[str, Any]) -> list[Step]:
    """The default bot: repeats the last user message, a few words per event (or uses a tool)."""
    tools = tool_answer(body)
    if tools is not None:
        return tools
    structured = json_answer(body)
    if structured is not None:
        return structured
    said = _last_user_text(body).strip() or "(nothing)"
    words = f"You said: {said}".split(" ")
    parts = [" ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "") for i in range(0, len(words), 3)]
    return [Event("meta", {"content_type": "text/markdown"}), *texts(*parts)]


def agent_answer(body: dict[str, Any]) -> list[Step]:
    """The agent bot (see :mod:`poe2openai.simulator.agent`): uses the client's tools to do a
    file-writing task, answering in small ``text`` events."""
    steps: list[Step] = []
    for piece in agent.pieces(agent.answer(body)):
        steps += [Sleep(agent.GAP), text(piece)] if steps else [text(piece)]
    return [*steps, DONE]


def thinking_answer(body: dict[str, Any]) -> list[Step]:
    """A reasoning bot: a ``*Thinking...*`` block, then the answer."""
    said = _last_user_text(body).strip() or "(nothing)"
    thinking: list[Step] = [text("*Thinking...*"), text("\n\n> **Reading the question**\n> The user wants JSON.\n\n")]
    structured = json_answer(body, thinking)
    if structured is not None:
        return structured
    return texts(
        "*Thinking...*",
        "\n\n> **Reading the question**\n> ",
        "\n> The user wrote: ",
        said[:200].replace("\n", " "),
        "\n\n",
        f"Here is my answer to: {said[:200]}",
    )


def image_answer(body: dict[str, Any], base: str) -> list[Step]:
    """An image bot: progress via replace_response, then an inline file."""
    url = f"{base}/base/image/{hashlib.sha256(_last_user_text(body).encode()).hexdigest()}"
    return [
        replace("Generating image (1s elapsed)…"),
        replace("Generating image (2s elapsed)…"),
        Event("file", {"url": url, "content_type": "image/png", "name": "image.png", "inline_ref": "aB3dE9xZ"}),
        replace("![image.png][aB3dE9xZ]"),
        DONE,
    ]


class Simulator:
    """The fake Poe. Create one, queue scripts, run :attr:`app` on loopback."""

    def __init__(self, *, valid_keys: set[str] | None = None, word_delay: float = 0.0) -> None:
        self.valid_keys = valid_keys  # None: any non-empty key except "bad-key"
        self.word_delay = word_delay
        self.requests: list[Recorded] = []
        self.uploads: list[Recorded] = []
        self.files: dict[str, tuple[bytes, str]] = {}
        self.model_list_calls = 0
        self.model_list_fail = False
        self.upload_fail: tuple[int, str] | None = None
        self.upload_fail_next: list[tuple[int, str]] = []  # failures for the next uploads, one each
        self.refuse_download_url = False  # answer download_url uploads as Poe does for links it cannot fetch
        self.open_streams = 0
        self.cancelled_streams = 0
        self._scripts: dict[str, deque[Script]] = defaultdict(deque)
        self._key_scripts: dict[str, deque[Script]] = defaultdict(deque)
        self.balances: dict[str, int] = {}  # points per key; a key not listed has 1000
        self.points_history: dict[str, list[dict[str, Any]]] = {}  # per key, newest first
        self.query_costs: dict[str, int] = {}  # points a query to a bot costs (others: DEFAULT_COST)
        self.balance_calls: list[str] = []  # keys whose balance was asked
        self.behaviours: dict[str, Callable[[dict[str, Any]], list[Step]]] = {}
        self.base_url = ""
        self.app = web.Application(client_max_size=1 << 30)
        self.app.router.add_post("/bot/{name}", self._bot)
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/file_upload", self._upload)
        self.app.router.add_get("/base/{kind}/{digest}", self._file)
        self.app.router.add_get("/files/{name}", self._static)
        self.app.router.add_get("/redirect", self._redirect)
        self.app.router.add_get("/usage/current_balance", self._balance)
        self.app.router.add_get("/usage/points_history", self._history)
        self.static_files: dict[str, tuple[bytes, str]] = {}  # served at /files/{name}, e.g. for link fetches

    # --- test API -----------------------------------------------------------------------

    def script(self, bot: str, steps: list[Step], **options: Any) -> None:
        """Queue an answer for the next query to ``bot``."""
        self._scripts[bot.lower()].append(Script(list(steps), **options))

    def script_for_key(self, key: str, steps: list[Step], **options: Any) -> None:
        """Queue an answer for the next query made with the Poe key ``key`` (any bot)."""
        self._key_scripts[key].append(Script(list(steps), **options))

    def bodies(self, bot: str | None = None) -> list[dict[str, Any]]:
        """Recorded query bodies (of ``bot`` only, if given)."""
        return [r.body for r in self.requests if bot is None or r.bot == bot.lower()]

    # --- handlers -----------------------------------------------------------------------

    def _authorised(self, request: web.Request, bearer_only: bool = True) -> str | None:
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ("" if bearer_only else auth)
        if not key:
            return None
        if self.valid_keys is None:
            return None if key == "bad-key" else key
        return key if key in self.valid_keys else None

    async def _bot(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"].lower()
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response(
                {"error": {"message": "invalid JSON", "type": "invalid_request_error"}}, status=400
            )
        kind = body.get("type") if isinstance(body, dict) else None
        if kind in ("report_error", "report_feedback", "report_reaction", "settings"):
            return web.json_response({})
        if kind != "query" or not isinstance(body.get("query"), list):
            return web.json_response({"error": {"message": "type must be query"}}, status=400)
        self.requests.append(Recorded(name, body, dict(request.headers)))
        if self._authorised(request) is None:
            return web.json_response(
                {
                    "error": {
                        "message": "Invalid API key provided",
                        "type": "authentication_error",
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        queue = self._key_scripts.get(self._authorised(request) or "") or self._scripts.get(name)
        if queue:
            script = queue.popleft()
        else:
            steps = self._behaviour(name, body, request)
            if steps is None:
                return web.json_response(
                    {"error": {"message": f"Bot does not exist: {name}", "type": "not_found_error"}}, status=404
                )
            script = Script(steps)
        if not (script.steps and isinstance(script.steps[0], HttpError)):
            self._charge(self._authorised(request) or "", name)
        return await self._stream(request, script)

    def _charge(self, key: str, bot: str) -> None:
        """Poe charges the query to the key: its balance and its points history."""
        cost = self.query_costs.get(bot, DEFAULT_COST)
        self.balances[key] = max(0, self.balances.get(key, 1000) - cost)
        row = {
            "creation_time": int(time.time() * 1_000_000),
            "bot_name": bot,
            "query_id": "q-" + uuid.uuid4().hex[:16],
            "usage_type": "API",
            "cost_points": cost,
        }
        rows = self.points_history.setdefault(key, [])
        rows.insert(0, row)
        del rows[HISTORY_KEPT:]

    def _behaviour(self, name: str, body: dict[str, Any], request: web.Request) -> list[Step] | None:
        if name in self.behaviours:
            return self.behaviours[name](body)
        if agent.is_agent_bot(name):
            return agent_answer(body)
        if name in ("deepseek-r1", "gemini-2.5-pro") or name.endswith("-thinking"):
            return thinking_answer(body)
        if name == "nano-banana":
            return image_answer(body, f"{request.scheme}://{request.host}")
        if name.startswith("slow"):
            return [Sleep(0.2), *echo_answer(body)]
        if name.startswith("unknown") or name.startswith("no-such"):
            return None
        return echo_answer(body)

    async def _stream(self, request: web.Request, script: Script) -> web.StreamResponse:
        first = script.steps[0] if script.steps else None
        if isinstance(first, HttpError):
            payload = first.body if first.body is not None else {"error": {"message": f"HTTP {first.status}"}}
            raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            return web.Response(body=raw, status=first.status, headers=first.headers, content_type=first.content_type)
        if script.headers_after:
            await asyncio.sleep(script.headers_after)
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store"}
        )
        try:
            await resp.prepare(request)
        except ConnectionResetError:  # the gateway hung up before the headers (its client gave up)
            return resp
        nl = b"\r\n" if script.crlf else b"\n"
        self.open_streams += 1
        try:
            for step in script.steps:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    continue
                if isinstance(step, Cut):
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if isinstance(step, Raw):
                    data = step.data
                elif isinstance(step, Event):
                    payload = step.data if isinstance(step.data, bytes) else orjson.dumps(step.data)
                    data = (b": ping" + nl + nl if script.pings else b"") + (
                        b"event: " + step.name.encode() + nl + b"data: " + payload + nl + nl
                    )
                else:
                    continue
                if script.write_size > 0:
                    for i in range(0, len(data), script.write_size):
                        await resp.write(data[i : i + script.write_size])
                        await asyncio.sleep(0)
                else:
                    await resp.write(data)
                if self.word_delay:
                    await asyncio.sleep(self.word_delay)
            await resp.write_eof()
        except asyncio.CancelledError:
            self.cancelled_streams += 1
            raise
        except ConnectionResetError:  # the gateway closed the Poe request: nothing to log
            self.cancelled_streams += 1
            return resp
        finally:
            self.open_streams -= 1
        return resp

    async def _balance(self, request: web.Request) -> web.Response:
        key = self._authorised(request)
        if key is None:
            return web.json_response(
                {"error": {"message": "Invalid API key", "type": "authentication_error"}}, status=401
            )
        self.balance_calls.append(key)
        return web.json_response({"current_point_balance": self.balances.get(key, 1000)})

    async def _history(self, request: web.Request) -> web.Response:
        key = self._authorised(request)
        if key is None:
            return web.json_response(
                {"error": {"message": "Invalid API key", "type": "authentication_error"}}, status=401
            )
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return web.json_response({"error": {"message": "limit must be 1 to 100"}}, status=400)
        rows = self.points_history.get(key, [])
        after = request.query.get("starting_after")
        if after is not None:
            ids = [r.get("query_id") for r in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        page = rows[:limit]
        return web.json_response({"has_more": len(rows) > limit, "length": len(page), "data": page})

    async def _models(self, request: web.Request) -> web.Response:
        self.model_list_calls += 1
        if self.model_list_fail:
            return web.json_response({"error": {"message": "unavailable"}}, status=503)
        data = [
            {
                "id": m["id"],
                "object": "model",
                "created": 1758868894776,
                "description": f"{m['display']} on the Poe simulator",
                "owned_by": m["owned_by"],
                "root": m["id"],
                "metadata": {"display_name": m["display"], "url": f"https://poe.com/{m['id']}"},
                "parameters": m["parameters"],
                "pricing": m.get("pricing"),
            }
            for m in MODELS
        ]
        return web.json_response({"object": "list", "data": data})

    async def _upload(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else auth
        if not key or key == "bad-key":
            return web.Response(status=401, text="Unauthorized")
        fields: dict[str, Any] = {}
        content: bytes | None = None
        filename = "file"
        ctype = "application/octet-stream"
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):  # pragma: no cover - nested multipart
                    continue
                if part.name == "file":
                    content = await part.read()
                    filename = part.filename or filename
                    ctype = part.headers.get("Content-Type", ctype)
                else:
                    fields[part.name or ""] = (await part.read()).decode()
        else:
            form = await request.post()
            fields = {k: str(v) for k, v in form.items()}
        self.uploads.append(
            Recorded(
                "upload",
                {"fields": fields, "filename": filename, "content_type": ctype, "size": len(content or b"")},
                dict(request.headers),
            )
        )
        if self.upload_fail_next:
            status, reason = self.upload_fail_next.pop(0)
            return web.Response(status=status, text=reason)
        if self.upload_fail is not None:
            return web.Response(status=self.upload_fail[0], text=self.upload_fail[1])
        if content is None and self.refuse_download_url:
            return web.Response(status=400, text="Unable to download file from the provided URL")
        if content is None:
            url = fields.get("download_url", "")
            if not re.match(r"https?://", url):
                return web.Response(status=400, text="download_url must be an http(s) URL")
            content = url.encode()
            ctype = _guess_type(url)
            filename = url.rsplit("/", 1)[-1] or "file"
        digest = hashlib.sha256(content).hexdigest()
        kind = ctype.split("/", 1)[0] if "/" in ctype else "file"
        self.files[digest] = (content, ctype)
        base = f"{request.scheme}://{request.host}"
        return web.json_response(
            {"attachment_url": f"{base}/base/{kind}/{digest}", "mime_type": ctype, "size": len(content)}
        )

    async def _static(self, request: web.Request) -> web.Response:
        found = self.static_files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query.get("to", "/"))

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["digest"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])


def _guess_type(url: str) -> str:
    low = url.lower().split("?", 1)[0]
    for ext, mime in (
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".pdf", "application/pdf"),
        (".txt", "text/plain"),
    ):
        if low.endswith(ext):
            return mime
    return "application/octet-stream"
