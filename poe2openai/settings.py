"""Settings: read once from the environment into one frozen object.

Every variable has the name and default of the original poe2openai. A bad value raises
:class:`SettingsError` with one line naming the variable; ``__main__`` prints it and exits.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable as documented in ``--help`` and the README."""

    name: str
    default: str
    help: str


VARIABLES: tuple[Variable, ...] = (
    Variable("HOST", "0.0.0.0", "address to listen on"),
    Variable("PORT", "8080", "port to listen on"),
    Variable("ADMIN_USERNAME", "admin", "user name for /admin"),
    Variable("ADMIN_PASSWORD", "123456", "password for /admin (change it)"),
    Variable(
        "ADMIN_ALLOWED_HOSTS",
        "",
        "comma-separated host names /admin answers to besides loopback, IP addresses and HOST",
    ),
    Variable("MAX_REQUEST_SIZE", "1073741824", "largest request body in bytes"),
    Variable("LOG_LEVEL", "info", "debug, info, warn or error"),
    Variable("CONFIG_DIR", "./", "folder holding models.yaml"),
    Variable("RATE_LIMIT_MS", "100", "minimum gap between requests to Poe in ms (0: off)"),
    Variable("RATE_LIMIT_MAX_WAIT_MS", "30000", "longest a request queues for the rate limit before a 429"),
    Variable("URL_CACHE_TTL_SECONDS", "259200", "how long an uploaded attachment is reused"),
    Variable("URL_CACHE_SIZE_MB", "100", "memory bound of the attachment cache in MB"),
    Variable("POE_BASE_URL", "https://api.poe.com", "Poe API base URL"),
    Variable(
        "POE_FILE_UPLOAD_URL",
        "https://www.quora.com/poe_api/file_upload_3RD_PARTY_POST",
        "Poe file upload URL",
    ),
    Variable("MODELS_CACHE_SECONDS", "300", "how long Poe's model list is reused"),
    Variable("CORS_ALLOW_ORIGINS", "*", "comma-separated origins allowed by CORS, or *"),
    Variable("SHUTDOWN_GRACE_SECONDS", "30", "how long open streams may finish on SIGTERM"),
    Variable("ALLOW_PRIVATE_URLS", "false", "let the gateway fetch URLs on private networks"),
    Variable("POE_IDLE_TIMEOUT_SECONDS", "300", "longest Poe may go without an event before the answer fails"),
    Variable("REQUEST_TIMEOUT_SECONDS", "1800", "longest one request may take, queueing and streaming included"),
    Variable("MAX_RESPONSE_SIZE", "67108864", "longest answer (characters) a request that is not streamed may get"),
    Variable(
        "KEEPALIVE_TIMEOUT_SECONDS",
        "20",
        "close a connection idle this long, or whose request headers have not all arrived by then",
    ),
    Variable("REQUEST_BODY_TIMEOUT_SECONDS", "60", "a request body must arrive within this time (408 otherwise)"),
    Variable(
        "MAX_COMPRESSION_RATIO", "100", "a gzip/deflate body may inflate to this many times its size (past 1 MiB)"
    ),
    Variable(
        "RESPONSE_STORE_SIZE_MB",
        "64",
        "memory bound in MB of the responses kept for previous_response_id (0: keep none)",
    ),
    Variable("RESPONSE_STORE_TTL_SECONDS", "86400", "how long a kept response can be continued or read (0: keep none)"),
    Variable("METRICS_TOKEN", "", "bearer token for /metrics (empty: the admin credentials only)"),
    Variable("WORKERS", "1", "worker processes on one port (more than 1: gunicorn with aiohttp's worker)"),
    Variable("REDIS_URL", "", "redis:// URL of the state shared by several gateways (empty: in memory)"),
    Variable(
        "POE_API_KEYS",
        "",
        "comma-separated Poe keys the gateway holds; clients then use keys issued on /admin",
    ),
    Variable(
        "ALLOW_CLIENT_POE_KEYS",
        "false",
        "with gateway-held Poe keys, still let callers send their own Poe key",
    ),
    Variable("BALANCE_CHECK_SECONDS", "300", "how often the pool keys' point balances are checked"),
    Variable(
        "POINTS_HISTORY_SECONDS",
        "120",
        "how often each pool key's points history is read from Poe, to attribute spend (0: never)",
    ),
    Variable(
        "POINTS_PER_USD",
        "33333",
        "Poe points one US dollar buys, for spend estimated from a bot's published price",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway reads from its environment, validated."""

    host: str = "0.0.0.0"
    port: int = 8080
    admin_username: str = "admin"
    admin_password: str = "123456"
    admin_allowed_hosts: tuple[str, ...] = ()
    max_request_size: int = 1073741824
    log_level: str = "info"
    config_dir: str = "./"
    rate_limit_ms: int = 100
    rate_limit_max_wait_ms: int = 30000
    url_cache_ttl_seconds: int = 259200
    url_cache_size_mb: float = 100.0
    poe_base_url: str = "https://api.poe.com"
    poe_file_upload_url: str = "https://www.quora.com/poe_api/file_upload_3RD_PARTY_POST"
    models_cache_seconds: float = 300.0
    cors_allow_origins: tuple[str, ...] = ("*",)
    shutdown_grace_seconds: float = 30.0
    allow_private_urls: bool = False
    poe_idle_timeout_seconds: float = 300.0
    request_timeout_seconds: float = 1800.0
    max_response_size: int = 67108864
    keepalive_timeout_seconds: float = 20.0
    request_body_timeout_seconds: float = 60.0
    max_compression_ratio: float = 100.0
    response_store_size_mb: float = 64.0
    response_store_ttl_seconds: float = 86400.0
    metrics_token: str = ""
    workers: int = 1
    redis_url: str = ""
    poe_api_keys: tuple[str, ...] = ()
    allow_client_poe_keys: bool = False
    balance_check_seconds: float = 300.0
    points_history_seconds: float = 120.0
    points_per_usd: float = 33333.0

    @property
    def uses_default_password(self) -> bool:
        """True while the admin password is still the published default."""
        return self.admin_password == "123456"

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (used by tests and ``--demo``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _int(name: str, raw: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}{upper}")
    return value


def _float(name: str, raw: str, minimum: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value != value or value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _positive(name: str, raw: str) -> float:
    value = _float(name, raw, 0)
    if value == 0:
        raise SettingsError(f"{name}={raw!r} must be more than 0")
    return value


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name}={raw!r} is not an http(s) URL")
    return value


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")


def _log_level(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value == "warn":
        value = "warning"
    if value not in LOG_LEVELS:
        raise SettingsError(f"{name}={raw!r} must be one of debug, info, warn, error")
    return value


def _origins(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())
    if not items:
        raise SettingsError(f"{name} is empty; use * to allow any origin")
    return items


_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*")


def normalize_host(raw: str) -> str:
    """A host name or address as the admin Host check compares it: lower case, no brackets
    around an IPv6 address, no trailing dot."""
    value = raw.strip().lower()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return value.removesuffix(".")


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    items: list[str] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        host = normalize_host(item)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOST_NAME.fullmatch(host):
                raise SettingsError(
                    f"{name}={raw!r}: {item.strip()!r} is not a host name or IP address (no port, no *)"
                ) from None
        items.append(host)
    return tuple(items)


def _keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    if any(not k.isprintable() or " " in k for k in keys):
        raise SettingsError(f"{name} holds a key with spaces or control characters")  # never quote a key
    return keys


def _redis_url(name: str, raw: str) -> str:
    value = raw.strip()
    if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"{name} is not a redis://, rediss:// or unix:// URL")  # no echo: it may hold a password
    return value


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the settings from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    defaults = {v.name: v.default for v in VARIABLES}

    def get(name: str, parse: Callable[[str, str], T]) -> T:
        return parse(name, env.get(name, defaults[name]))

    host = env.get("HOST", defaults["HOST"]).strip()
    if not host:
        raise SettingsError("HOST is empty")
    return Settings(
        host=host,
        port=get("PORT", lambda n, r: _int(n, r, 1, 65535)),
        admin_username=env.get("ADMIN_USERNAME", defaults["ADMIN_USERNAME"]),
        admin_password=env.get("ADMIN_PASSWORD", defaults["ADMIN_PASSWORD"]),
        admin_allowed_hosts=get("ADMIN_ALLOWED_HOSTS", _hosts),
        max_request_size=get("MAX_REQUEST_SIZE", lambda n, r: _int(n, r, 1)),
        log_level=get("LOG_LEVEL", _log_level),
        config_dir=env.get("CONFIG_DIR", defaults["CONFIG_DIR"]) or "./",
        rate_limit_ms=get("RATE_LIMIT_MS", lambda n, r: _int(n, r, 0)),
        rate_limit_max_wait_ms=get("RATE_LIMIT_MAX_WAIT_MS", lambda n, r: _int(n, r, 0)),
        url_cache_ttl_seconds=get("URL_CACHE_TTL_SECONDS", lambda n, r: _int(n, r, 0)),
        url_cache_size_mb=get("URL_CACHE_SIZE_MB", lambda n, r: _float(n, r, 0)),
        poe_base_url=get("POE_BASE_URL", _url),
        poe_file_upload_url=get("POE_FILE_UPLOAD_URL", _url),
        models_cache_seconds=get("MODELS_CACHE_SECONDS", lambda n, r: _float(n, r, 0)),
        cors_allow_origins=get("CORS_ALLOW_ORIGINS", _origins),
        shutdown_grace_seconds=get("SHUTDOWN_GRACE_SECONDS", lambda n, r: _float(n, r, 0)),
        allow_private_urls=get("ALLOW_PRIVATE_URLS", _bool),
        poe_idle_timeout_seconds=get("POE_IDLE_TIMEOUT_SECONDS", lambda n, r: _float(n, r, 0.1)),
        request_timeout_seconds=get("REQUEST_TIMEOUT_SECONDS", lambda n, r: _float(n, r, 1)),
        max_response_size=get("MAX_RESPONSE_SIZE", lambda n, r: _int(n, r, 1)),
        keepalive_timeout_seconds=get("KEEPALIVE_TIMEOUT_SECONDS", _positive),
        request_body_timeout_seconds=get("REQUEST_BODY_TIMEOUT_SECONDS", _positive),
        max_compression_ratio=get("MAX_COMPRESSION_RATIO", lambda n, r: _float(n, r, 1)),
        response_store_size_mb=get("RESPONSE_STORE_SIZE_MB", lambda n, r: _float(n, r, 0)),
        response_store_ttl_seconds=get("RESPONSE_STORE_TTL_SECONDS", lambda n, r: _float(n, r, 0)),
        metrics_token=env.get("METRICS_TOKEN", "").strip(),
        workers=get("WORKERS", lambda n, r: _int(n, r, 1, 64)),
        redis_url=get("REDIS_URL", _redis_url),
        poe_api_keys=get("POE_API_KEYS", _keys),
        allow_client_poe_keys=get("ALLOW_CLIENT_POE_KEYS", _bool),
        balance_check_seconds=get("BALANCE_CHECK_SECONDS", lambda n, r: _float(n, r, 1)),
        points_history_seconds=get("POINTS_HISTORY_SECONDS", lambda n, r: _float(n, r, 0)),
        points_per_usd=get("POINTS_PER_USD", lambda n, r: _float(n, r, 0)),
    )


def help_text() -> str:
    """The environment table printed by ``--help``."""
    width = max(len(v.name) for v in VARIABLES)
    lines = [f"  {v.name:<{width}}  {v.help} (default: {v.default})" for v in VARIABLES]
    return "\n".join(lines)
