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
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TOOL_MODES = ("xml", "native", "auto")
_TOP_KEYS = ("enable", "models", "custom_models", "api_token", "use_v1_api")
_MODEL_KEYS = ("enable", "mapping", "replace_response", "tool_mode", "reasoning_flags")
_CUSTOM_KEYS = ("id", "owned_by", "created")


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
    replace_response: bool | None = None
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
            replace_response=_opt_bool(raw.get("replace_response"), f"{where}.replace_response"),
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
        entry = {k: getattr(rule, k) for k in _MODEL_KEYS if getattr(rule, k) is not None}
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
    text: str = yaml.safe_dump(as_plain(cfg), sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text


class ConfigStore:
    """``models.yaml`` on disk: loaded lazily, reloaded when its mtime changes, saved atomically.

    A file that fails to load leaves the last good configuration in force and sets
    :attr:`error` (shown by the log and the admin page) until a good version is read or saved.
    """

    CHECK_EVERY = 1.0  # seconds between mtime checks on the request path

    def __init__(
        self, directory: str, log: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(directory) / "models.yaml"
        self._clock = clock
        self._checked = float("-inf")
        self.backup = self.path.with_name("models.yaml.bak")
        self._config = ModelsConfig()
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) last read, None: no file
        self.error: str | None = None
        self._lock = asyncio.Lock()
        self._log = log or (lambda _m: None)
        self.reload()

    @property
    def config(self) -> ModelsConfig:
        """The configuration in force, re-read first if the file changed (checked once a second)."""
        now = self._clock()
        if now - self._checked >= self.CHECK_EVERY:
            self._checked = now
            self.reload()
        return self._config

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload(self) -> None:
        """Re-read the file if it changed since the last read."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp is None:
            self._config, self.error = ModelsConfig(), None
            return
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
            self._config = parse_config(data)
            self.error = None
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError) as exc:
            where = f" at {exc.field}" if isinstance(exc, ConfigError) and exc.field else ""
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.error = f"{self.path} is invalid{where}: {detail}. The last good configuration stays in force."
            self._log(self.error)

    async def save(self, data: Any) -> ModelsConfig:
        """Validate and write ``data`` (plain JSON/YAML data); raises :class:`ConfigError`."""
        cfg = parse_config(data)
        text = dump_config(cfg)
        async with self._lock:
            await asyncio.to_thread(self._write, text)
            self._config = cfg
            self.error = None
            self._stamp = self._current_stamp()
        return cfg

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            shutil.copy2(self.path, self.backup)
        fd, tmp = tempfile.mkstemp(prefix=".models.yaml.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
