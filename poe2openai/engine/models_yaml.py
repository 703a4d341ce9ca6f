"""``models.yaml``: which models clients see, under which names, with which per-model options.

The schema is the original poe2openai's (files written by it load unchanged), plus our own
per-model keys. All keys are optional::

    enable: true                 # master switch for the visibility rules and custom models
    models:
      gpt-4o:
        mapping: my-gpt          # the public name clients see and may send
      claude-3.7-sonnet:
        enable: false            # hidden from /v1/models (and refused in chat)
      flux-pro:
        replace_response: true   # send system prompts as user messages (image/video bots)
        tool_mode: native        # xml (default) | native | auto
        reasoning_flags: true    # send reasoning options as --reasoning_effort style text, not parameters
    custom_models:               # bots Poe's list lacks, e.g. private bots
      - id: my-private-bot
        owned_by: me
        created: 1735689600
    api_token: ...               # accepted for compatibility; unused
    use_v1_api: true             # accepted for compatibility; unused

Ids match case-insensitively. Per-model options apply whatever ``enable`` says; ``enable``
gates hiding, renaming and custom models, as in the original.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_LABEL = "models.yaml"  # how the page and API name the file (its path is the operator's business)
TOOL_MODES = ("xml", "native", "auto")
_TOP_KEYS = ("enable", "models", "custom_models", "api_token", "use_v1_api")
_MODEL_KEYS = ("enable", "mapping", "replace_response", "tool_mode", "reasoning_flags")
# The file keeps the original's key; in code the option is named for what it does.
_FIELD = {"replace_response": "system_as_user"}
_CUSTOM_KEYS = ("id", "owned_by", "created")

YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, when PyYAML was built with it
YAML_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Temp files of a save (``.models.yaml.<hex>.tmp``, ``.models.yaml.bak.<hex>.tmp``) and of
# earlier versions (``tempfile.mkstemp(prefix=".models.yaml.")``); removed at start once older
# than this, so a save in progress in another process is left alone.
_TEMP_NAME = re.compile(r"\.models\.yaml(?:\.bak)?\.[0-9a-f]{12}\.tmp|\.models\.yaml\.[a-z0-9_]{8}")
STALE_TEMP_SECONDS = 600.0


class ConfigError(ValueError):
    """An invalid configuration; ``field`` names the entry."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class ModelRule:
    """The options of one Poe model."""

    enable: bool | None = None
    mapping: str | None = None
    system_as_user: bool | None = None  # file key ``replace_response``: system prompts sent as user text
    tool_mode: str | None = None
    reasoning_flags: bool | None = None


@dataclass(frozen=True, slots=True)
class CustomModel:
    """A bot missing from Poe's list."""

    id: str
    owned_by: str | None = None
    created: int | None = None


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    """The whole file."""

    enable: bool | None = None
    models: dict[str, ModelRule] = field(default_factory=dict)
    custom_models: tuple[CustomModel, ...] = ()
    api_token: str | None = None
    use_v1_api: bool | None = None

    @property
    def rules_on(self) -> bool:
        """Whether hiding, renaming and custom models apply."""
        return self.enable is True

    def rule(self, model_id: str) -> ModelRule | None:
        """The options for ``model_id`` (any case)."""
        return self.models.get(model_id.lower())

    def by_public_name(self, name: str) -> str | None:
        """The Poe id a public name (mapping) stands for, when the rules are on."""
        if not self.rules_on:
            return None
        low = name.lower()
        for model_id, rule in self.models.items():
            if rule.mapping is not None and rule.mapping.lower() == low:
                return model_id
        return None


def _opt_bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"{where} must be true or false", where)


def _opt_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string", where)
    value = value.strip()
    return value or None


def _unknown(data: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in known:
            prefix = f"{where}." if where else ""
            raise ConfigError(f"{prefix}{key} is not a known setting (known: {', '.join(known)})", f"{prefix}{key}")


def parse_config(data: Any) -> ModelsConfig:
    """Validate decoded YAML/JSON into a :class:`ModelsConfig`."""
    if data is None:
        return ModelsConfig()
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a mapping", None)
    _unknown(data, _TOP_KEYS, "")
    models_raw = data.get("models") or {}
    if not isinstance(models_raw, dict):
        raise ConfigError("models must be a mapping of model id to options", "models")
    models: dict[str, ModelRule] = {}
    public: dict[str, str] = {}
    for key, raw in models_raw.items():
        model_id = str(key).strip() if key is not None else ""
        where = f"models.{model_id}"
        if not model_id:
            raise ConfigError("a model id in models is empty", "models")
        if model_id.lower() in models:
            raise ConfigError(f"{where} appears twice (ids ignore case)", where)
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping of options", where)
        _unknown(raw, _MODEL_KEYS, where)
        mode = _opt_str(raw.get("tool_mode"), f"{where}.tool_mode")
        if mode is not None and mode not in TOOL_MODES:
            raise ConfigError(f"{where}.tool_mode must be one of {', '.join(TOOL_MODES)}", f"{where}.tool_mode")
        rule = ModelRule(
            enable=_opt_bool(raw.get("enable"), f"{where}.enable"),
            mapping=_opt_str(raw.get("mapping"), f"{where}.mapping"),
            system_as_user=_opt_bool(raw.get("replace_response"), f"{where}.replace_response"),
            tool_mode=mode,
            reasoning_flags=_opt_bool(raw.get("reasoning_flags"), f"{where}.reasoning_flags"),
        )
        if rule.mapping is not None:
            low = rule.mapping.lower()
            if low in public:
                raise ConfigError(
                    f"{where}.mapping {rule.mapping!r} is also the public name of {public[low]}", f"{where}.mapping"
                )
            public[low] = model_id
        models[model_id.lower()] = rule
    custom_raw = data.get("custom_models") or []
    if not isinstance(custom_raw, list):
        raise ConfigError("custom_models must be a list", "custom_models")
    customs: list[CustomModel] = []
    seen: set[str] = set()
    for i, raw in enumerate(custom_raw):
        where = f"custom_models[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping with an id", where)
        _unknown(raw, _CUSTOM_KEYS, where)
        raw_id = raw.get("id")
        if isinstance(raw_id, (int, float)) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)  # YAML reads an unquoted numeric id as a number
        cid = _opt_str(raw_id, f"{where}.id")
        if cid is None:
            raise ConfigError(f"{where}.id is empty", f"{where}.id")
        if cid.lower() in seen:
            raise ConfigError(f"{where}.id {cid!r} appears twice", f"{where}.id")
        if cid.lower() in public and public[cid.lower()] != cid.lower():
            raise ConfigError(f"{where}.id {cid!r} is also the public name of {public[cid.lower()]}", f"{where}.id")
        seen.add(cid.lower())
        created = raw.get("created")
        if created is not None and (not isinstance(created, int) or isinstance(created, bool) or created < 0):
            raise ConfigError(f"{where}.created must be a Unix time in seconds", f"{where}.created")
        customs.append(CustomModel(cid, _opt_str(raw.get("owned_by"), f"{where}.owned_by"), created))
    token = data.get("api_token")
    return ModelsConfig(
        enable=_opt_bool(data.get("enable"), "enable"),
        models=models,
        custom_models=tuple(customs),
        api_token=token if isinstance(token, str) and token else None,
        use_v1_api=_opt_bool(data.get("use_v1_api"), "use_v1_api"),
    )


def as_plain(cfg: ModelsConfig) -> dict[str, Any]:
    """The configuration as plain data, keys in a stable order, unset options left out."""
    out: dict[str, Any] = {"enable": bool(cfg.enable)}
    models: dict[str, Any] = {}
    for model_id in sorted(cfg.models):
        rule = cfg.models[model_id]
        entry = {k: getattr(rule, _FIELD.get(k, k)) for k in _MODEL_KEYS if getattr(rule, _FIELD.get(k, k)) is not None}
        if entry:
            models[model_id] = entry
    out["models"] = models
    out["custom_models"] = [
        {k: getattr(c, k) for k in _CUSTOM_KEYS if getattr(c, k) is not None} for c in cfg.custom_models
    ]
    if cfg.api_token is not None:
        out["api_token"] = cfg.api_token
    if cfg.use_v1_api is not None:
        out["use_v1_api"] = cfg.use_v1_api
    return out


def dump_config(cfg: ModelsConfig) -> str:
    """YAML text with a stable key order."""
    text: str = yaml.dump(
        as_plain(cfg), Dumper=YAML_DUMPER, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return text


def load_yaml(text: str) -> Any:
    """Decode YAML text safely, with libyaml's parser when PyYAML has it (many times faster)."""
    return yaml.load(text, Loader=YAML_LOADER)  # a SafeLoader: plain data only


def _validated(data: Any) -> tuple[ModelsConfig, str]:
    cfg = parse_config(data)
    return cfg, dump_config(cfg)


Stamp = tuple[int, int]  # (mtime_ns, size) of the file as read


def _write_atomically(target: Path, data: bytes, mode: int | None) -> Stamp:
    """Replace ``target`` by ``data`` through a synced temp file, so a crash leaves the old file
    or the new one, never a part. ``mode``: the permissions to keep (None: a new file's, from
    the umask). The temp file is private until its content is in place."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
            st = os.fstat(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return (st.st_mtime_ns, st.st_size)


def _sync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class _Read:
    """One read of the file: what it held, or what is wrong with it."""

    stamp: Stamp | None
    config: ModelsConfig | None
    problem: str | None = None  # "is invalid at …: …" / "is empty …"


class ConfigStore:
    """``models.yaml`` on disk: loaded at start, reloaded when its mtime changes, saved atomically.

    Once the event loop runs, a changed file is parsed in a worker thread (one reload at a
    time) while the configuration in force keeps answering; without a running loop (start-up,
    scripts) it is read in place. A file that fails to load, or is empty, leaves the last good
    configuration in force and sets :attr:`error` (shown by the log and the admin page) until a
    good version is read or saved. Saves keep the file's permissions; at start, temp files an
    interrupted save left behind are removed.
    """

    CHECK_EVERY = 1.0  # seconds between mtime checks on the request path

    def __init__(
        self,
        directory: str,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        parse: Callable[[str], Any] = load_yaml,
    ) -> None:
        self.path = Path(directory) / CONFIG_LABEL
        self.backup = self.path.with_name(CONFIG_LABEL + ".bak")
        self._clock = clock
        self._parse = parse  # text to data; a parameter so tests can watch where it runs
        self._checked = float("-inf")
        self._config = ModelsConfig()
        self._stamp: Stamp | None = None  # last read, None: no file
        self.error: str | None = None
        self._lock = asyncio.Lock()
        self._saves = 0  # a reload that started before the latest save must not undo it
        self._reloading: asyncio.Task[None] | None = None
        self._log = log or (lambda _m: None)
        self.on_save: Callable[[str], Awaitable[None]] | None = None  # tells other processes
        self._remove_stale_temps()
        self.reload()

    @property
    def config(self) -> ModelsConfig:
        """The configuration in force; a change of the file (checked once a second) is picked up
        in the background."""
        now = self._clock()
        if now - self._checked >= self.CHECK_EVERY:
            self._checked = now
            if self._reloading is None and self._current_stamp() != self._stamp:
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    self.reload()
                else:
                    self._start_reload()
        return self._config

    async def refresh(self) -> ModelsConfig:
        """The configuration as the file is now: waits for a reload in flight, then reads the
        file once more if it changed since (in a worker thread)."""
        for _ in range(2):
            task = self._reloading
            if task is None:
                if self._current_stamp() == self._stamp:
                    break
                task = self._start_reload()
            await asyncio.shield(task)  # a client going away must not stop the shared reload
        return self._config

    def reload(self) -> None:
        """Re-read the file here and now if it changed since the last read (not for the event
        loop: a large file takes long to parse)."""
        if self._current_stamp() != self._stamp:
            self._apply(self._read())

    def _start_reload(self) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._reload_in_thread(self._saves))
        self._reloading = task
        return task

    async def _reload_in_thread(self, saves: int) -> None:
        try:
            result = await asyncio.to_thread(self._read)
            if saves == self._saves:
                self._apply(result)
        finally:
            self._reloading = None

    def _current_stamp(self) -> Stamp | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _read(self) -> _Read:
        stamp = self._current_stamp()  # before reading: a write in between shows as a change next time
        if stamp is None:
            return _Read(None, ModelsConfig())
        try:
            data = self._parse(self.path.read_text(encoding="utf-8"))
            if data is None:
                problem = "is empty (no settings in it); write {} to clear the rules on purpose"
                return _Read(stamp, None, problem)
            return _Read(stamp, parse_config(data))
        except Exception as exc:  # whatever the file holds, the gateway keeps running
            where = f" at {exc.field}" if isinstance(exc, ConfigError) and exc.field else ""
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return _Read(stamp, None, f"is invalid{where}: {detail}")

    def _apply(self, result: _Read) -> None:
        self._stamp = result.stamp
        if result.config is not None:
            self._config, self.error = result.config, None
            return
        tail = f" {result.problem}. The last good configuration stays in force."
        self.error = CONFIG_LABEL + tail  # the page is not told where the file lives
        self._log(str(self.path) + tail)

    async def save(self, data: Any) -> ModelsConfig:
        """Validate and write ``data`` (plain JSON/YAML data); raises :class:`ConfigError`."""
        cfg, text = await asyncio.to_thread(_validated, data)
        async with self._lock:
            stamp = await asyncio.to_thread(self._write, text)
            self._saves += 1
            self._config, self.error, self._stamp = cfg, None, stamp
        if self.on_save is not None:
            await self.on_save(text)
        return cfg

    async def adopt(self, text: str) -> None:
        """Another process saved ``text``: write it here too unless this file already has it
        (processes sharing one folder), then use it. A text that does not load is not written."""
        current = await asyncio.to_thread(self._text)
        if current != text:
            data = await asyncio.to_thread(self._parse, text)
            cfg, checked = await asyncio.to_thread(_validated, data)
            async with self._lock:
                stamp = await asyncio.to_thread(self._write, checked)
                self._saves += 1
                self._config, self.error, self._stamp = cfg, None, stamp
            return
        await self.refresh()

    def _text(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def _write(self, text: str) -> Stamp:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode: int | None = stat.S_IMODE(self.path.stat().st_mode)
        except FileNotFoundError:
            mode = None
        else:
            _write_atomically(self.backup, self.path.read_bytes(), mode)
        stamp = _write_atomically(self.path, text.encode("utf-8"), mode)
        _sync_folder(self.path.parent)
        return stamp

    def _remove_stale_temps(self) -> None:
        folder = self.path.parent
        cutoff = time.time() - STALE_TEMP_SECONDS
        removed: list[str] = []
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if not _TEMP_NAME.fullmatch(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                    continue  # maybe a save in progress (another process sharing the folder)
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(entry.name)
        if removed:
            names = ", ".join(sorted(removed))
            self._log(f"removed {len(removed)} temporary file(s) an interrupted save left in {folder}: {names}")
