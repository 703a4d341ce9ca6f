"""Settings from the environment, and the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from poe2openai.settings import VARIABLES, Settings, SettingsError, from_env


def test_defaults_match_the_original() -> None:
    s = from_env({})
    assert s == Settings()
    assert (s.host, s.port, s.admin_username, s.admin_password) == ("0.0.0.0", 8080, "admin", "123456")
    assert s.max_request_size == 1073741824 and s.rate_limit_ms == 100 and s.log_level == "info"
    assert s.url_cache_ttl_seconds == 259200 and s.url_cache_size_mb == 100
    assert s.poe_base_url == "https://api.poe.com"
    assert s.poe_file_upload_url == "https://www.quora.com/poe_api/file_upload_3RD_PARTY_POST"
    assert s.uses_default_password


def test_values_are_parsed() -> None:
    s = from_env(
        {
            "PORT": "9000",
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARN",
            "RATE_LIMIT_MS": "0",
            "POE_BASE_URL": "http://proxy.local:8000/",
            "URL_CACHE_SIZE_MB": "0.5",
            "CORS_ALLOW_ORIGINS": "https://a.example, https://b.example/",
        }
    )
    assert (s.port, s.host, s.log_level, s.rate_limit_ms) == (9000, "127.0.0.1", "warning", 0)
    assert s.poe_base_url == "http://proxy.local:8000" and s.url_cache_size_mb == 0.5
    assert s.cors_allow_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"RATE_LIMIT_MS": "-5"}, "RATE_LIMIT_MS"),
        ({"MAX_REQUEST_SIZE": "0"}, "MAX_REQUEST_SIZE"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"POE_BASE_URL": "ftp://x"}, "POE_BASE_URL"),
        ({"URL_CACHE_TTL_SECONDS": "1.5"}, "URL_CACHE_TTL_SECONDS"),
        ({"ALLOW_PRIVATE_URLS": "maybe"}, "ALLOW_PRIVATE_URLS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        from_env(env)
    assert str(info.value).startswith(name + "=")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "poe2openai", *args], env=full, capture_output=True, text=True, timeout=60
    )


def test_bad_value_stops_startup_with_one_line() -> None:
    r = run_cli(env={"PORT": "abc"})
    assert r.returncode == 2
    assert r.stderr.strip() == "poe2openai: configuration error: PORT='abc' is not a whole number"
    assert "Traceback" not in r.stderr


def test_help_lists_every_variable() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for v in VARIABLES:
        assert v.name in r.stdout
    assert "--demo" in r.stdout


def test_workers_redis_and_metrics_settings() -> None:
    s = from_env({"WORKERS": "4", "REDIS_URL": "redis://:secret@redis:6379/0", "METRICS_TOKEN": " tok "})
    assert (s.workers, s.redis_url, s.metrics_token) == (4, "redis://:secret@redis:6379/0", "tok")
    assert from_env({}).workers == 1 and from_env({}).redis_url == ""
    with pytest.raises(SettingsError, match="WORKERS"):
        from_env({"WORKERS": "0"})
    with pytest.raises(SettingsError, match="REDIS_URL") as bad:
        from_env({"REDIS_URL": "http://user:secret@redis"})
    assert "secret" not in str(bad.value)  # the URL may hold a password: never echoed
