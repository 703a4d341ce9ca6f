"""models.yaml: the original's files, validation, stable atomic saves, reloads, bad files."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml

from poe2openai.models_yaml import ConfigError, ConfigStore, ModelRule, dump_config, parse_config

ORIGINAL = """\
enable: true
models:
  gpt-4o:
    mapping: gpt-4o-poe
  claude-3.7-sonnet:
    enable: false
  flux-pro:
    replace_response: true
  Claude-Sonnet-4:
    mapping: Sonnet
    enable: null
    replace_response: null
custom_models:
- id: my-private-bot
  created: 1735689600
  owned_by: custom
- id: other-bot
  created: null
api_token: pk-xxxxxxxx
use_v1_api: true
"""


def test_reads_the_original_format_unchanged() -> None:
    cfg = parse_config(yaml.safe_load(ORIGINAL))
    assert cfg.enable is True and cfg.use_v1_api is True and cfg.api_token == "pk-xxxxxxxx"
    assert cfg.rule("GPT-4O") == ModelRule(mapping="gpt-4o-poe")
    assert cfg.rule("claude-3.7-sonnet") == ModelRule(enable=False)
    assert cfg.rule("flux-pro") == ModelRule(replace_response=True)
    assert cfg.by_public_name("SONNET") == "claude-sonnet-4"
    assert [c.id for c in cfg.custom_models] == ["my-private-bot", "other-bot"]
    assert cfg.custom_models[1].created is None


def test_mtime_is_checked_at_most_once_a_second(tmp_path: Path) -> None:
    now = [0.0]
    store = ConfigStore(str(tmp_path), clock=lambda: now[0])
    assert store.config.enable is None
    (tmp_path / "models.yaml").write_text("enable: true\n")
    assert store.config.enable is None  # same second: not checked again
    now[0] += 1.0
    assert store.config.enable is True


def test_minimal_and_empty_files() -> None:
    assert parse_config(None).enable is None
    assert parse_config({"enable": False}).models == {}
    assert parse_config({"models": {"x": None}}).rule("x") == ModelRule()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"models": {"a": {"mapping": "same"}, "b": {"mapping": "SAME"}}}, "models.b.mapping"),
        ({"models": {"": {"enable": False}}}, "models"),
        ({"models": {"a": {"mapin": "x"}}}, "models.a.mapin"),
        ({"colour": "blue"}, "colour"),
        ({"models": {"a": {"tool_mode": "telepathy"}}}, "models.a.tool_mode"),
        ({"models": {"a": {"enable": "no"}}}, "models.a.enable"),
        ({"models": {"a": {}, "A": {}}}, "models.A"),
        ({"custom_models": [{"owned_by": "me"}]}, "custom_models[0].id"),
        ({"custom_models": [{"id": "x"}, {"id": "X"}]}, "custom_models[1].id"),
        ({"custom_models": [{"id": "x", "created": "yesterday"}]}, "custom_models[0].created"),
        ({"models": {"a": {"mapping": "bot"}}, "custom_models": [{"id": "bot"}]}, "custom_models[0].id"),
        ({"models": ["a"]}, "models"),
    ],
)
def test_invalid_configurations_name_the_entry(data: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.field == field


def test_dump_is_stable_and_round_trips() -> None:
    cfg = parse_config(yaml.safe_load(ORIGINAL))
    text = dump_config(cfg)
    assert list(yaml.safe_load(text)) == ["enable", "models", "custom_models", "api_token", "use_v1_api"]
    assert list(yaml.safe_load(text)["models"]) == sorted(yaml.safe_load(text)["models"])
    assert parse_config(yaml.safe_load(text)) == cfg
    assert dump_config(parse_config(yaml.safe_load(text))) == text


async def test_atomic_save_keeps_a_backup(tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path))
    assert store.config.enable is None and store.error is None
    await store.save({"enable": True, "models": {"a": {"mapping": "one"}}})
    await store.save({"enable": True, "models": {"a": {"mapping": "two"}}})
    assert yaml.safe_load((tmp_path / "models.yaml").read_text())["models"]["a"]["mapping"] == "two"
    assert yaml.safe_load((tmp_path / "models.yaml.bak").read_text())["models"]["a"]["mapping"] == "one"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".models.yaml.")] == []


async def test_invalid_save_changes_nothing(tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path))
    await store.save({"enable": True})
    before = (tmp_path / "models.yaml").read_bytes()
    with pytest.raises(ConfigError):
        await store.save({"models": {"a": {"mapping": "x"}, "b": {"mapping": "x"}}})
    assert (tmp_path / "models.yaml").read_bytes() == before and store.config.enable is True


async def test_concurrent_saves_leave_one_whole_file(tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path))
    configs = [{"enable": True, "models": {f"m{i}": {"mapping": f"name-{i}"}}} for i in range(25)]
    await asyncio.gather(*(store.save(c) for c in configs))
    data = yaml.safe_load((tmp_path / "models.yaml").read_text())
    assert data in [{**c, "custom_models": []} for c in configs]
    assert parse_config(data) == store.config


def test_external_edits_are_picked_up_and_bad_ones_keep_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("enable: true\nmodels:\n  a:\n    mapping: first\n")
    messages: list[str] = []
    now = [0.0]

    def clock() -> float:
        now[0] += ConfigStore.CHECK_EVERY  # every read is a second later: each one checks the file
        return now[0]

    store = ConfigStore(str(tmp_path), messages.append, clock)
    assert store.config.by_public_name("first") == "a"
    path.write_text("enable: true\nmodels:\n  a:\n    mapping: second-name\n")
    os.utime(path, ns=(1, 10**18))
    assert store.config.by_public_name("second-name") == "a"
    path.write_text("enable: true\nmodels: [broken\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert store.config.by_public_name("second-name") == "a"  # last good stays in force
    assert store.error is not None and "invalid" in store.error and messages
    path.write_text("enable: true\nmodels:\n  a:\n    mapin: typo\n")
    os.utime(path, ns=(1, 3 * 10**18))
    assert store.config.by_public_name("second-name") == "a" and "models.a.mapin" in (store.error or "")
    path.unlink()
    assert store.config.enable is None and store.error is None
