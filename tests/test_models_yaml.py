"""models.yaml: the original's files, validation, stable atomic saves, reloads, bad files."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from poe2openai.engine import models_yaml
from poe2openai.engine.models_yaml import ConfigError, ConfigStore, ModelRule, dump_config, parse_config

ROOT = Path(__file__).resolve().parents[1]

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
    assert cfg.rule("flux-pro") == ModelRule(system_as_user=True)
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


def ticking() -> Any:
    """A clock for which every read is a check interval later, so each read checks the file."""
    now = [0.0]

    def clock() -> float:
        now[0] += ConfigStore.CHECK_EVERY
        return now[0]

    return clock


def touch(path: Path, step: int) -> None:
    """Give ``path`` a distinct mtime, so a rewrite within the same tick is still seen."""
    os.utime(path, ns=(1, step * 10**18))


def test_an_empty_file_is_reported_and_the_last_good_kept(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("enable: true\nmodels:\n  a:\n    mapping: first\n")
    messages: list[str] = []
    store = ConfigStore(str(tmp_path), messages.append, ticking())
    assert store.config.by_public_name("first") == "a" and store.error is None
    for n, text in enumerate(["", "\n\n", "# all rules went away\n"]):
        path.write_text(text)
        touch(path, n + 1)
        assert store.config.by_public_name("first") == "a", text
        assert store.error is not None and "empty" in store.error and store.error.startswith("models.yaml ")
        assert len(messages) == n + 1
    path.write_text("{}\n")  # an empty mapping on purpose clears the rules
    touch(path, 9)
    assert store.config.by_public_name("first") is None and store.error is None
    path.write_text("")
    started_empty = ConfigStore(str(tmp_path), messages.append)
    assert started_empty.error is not None and "empty" in started_empty.error


def test_the_default_parser_is_libyamls_when_installed() -> None:
    expected = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    assert models_yaml.YAML_LOADER is expected
    assert models_yaml.load_yaml("enable: true\nmodels: {a: {mapping: b}}\n") == {
        "enable": True,
        "models": {"a": {"mapping": "b"}},
    }


async def test_a_change_is_parsed_off_the_event_loop_while_the_last_good_serves(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("enable: true\nmodels:\n  a:\n    mapping: first\n")
    gate = threading.Event()
    parsed_in: list[int] = []

    def slow_parse(text: str) -> Any:
        parsed_in.append(threading.get_ident())
        if "second" in text:
            gate.wait(timeout=10)  # only a guard against a hang when parsing blocks the loop
        return yaml.safe_load(text)

    store = ConfigStore(str(tmp_path), clock=ticking(), parse=slow_parse)
    assert store.config.by_public_name("first") == "a"  # the first read happens at start-up
    path.write_text("enable: true\nmodels:\n  a:\n    mapping: second\n")
    touch(path, 1)
    assert store.config.by_public_name("first") == "a"  # answered now; the new file parses elsewhere
    await asyncio.sleep(0)
    assert store.config.by_public_name("first") == "a" and not gate.is_set()
    gate.set()
    assert (await store.refresh()).by_public_name("second") == "a"
    assert store.config.by_public_name("second") == "a"
    loop_thread = threading.get_ident()
    assert len(parsed_in) == 2 and parsed_in[1] != loop_thread  # one parse of the change, in a worker


async def test_a_save_during_a_reload_wins(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    gate = threading.Event()

    def slow_parse(text: str) -> Any:
        gate.wait(timeout=10)
        return yaml.safe_load(text)

    store = ConfigStore(str(tmp_path), clock=ticking(), parse=slow_parse)
    path.write_text("enable: true\nmodels:\n  a:\n    mapping: by-hand\n")
    assert store.config.enable is None  # the reload of the hand edit is now waiting
    await store.save({"enable": True, "models": {"a": {"mapping": "saved"}}})
    gate.set()
    assert (await store.refresh()).by_public_name("saved") == "a"
    assert store.config.by_public_name("saved") == "a"


async def test_a_save_keeps_the_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    store = ConfigStore(str(tmp_path))
    await store.save({"enable": True})
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # a new file: as any program would create it
    path.chmod(0o640)
    await store.save({"enable": False})
    await store.save({"enable": True})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "models.yaml.bak").stat().st_mode) == 0o640


CRASH_DURING_SAVE = """
import asyncio, resource, signal, sys
from poe2openai.engine.models_yaml import ConfigStore
store = ConfigStore(sys.argv[1])
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
# Python ignores SIGXFSZ; restored, the process dies the moment a write passes the size limit,
# with part of the file written: a crash (kill -9, power loss) at a known point.
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
asyncio.run(store.save({"enable": False}))
"""


async def test_a_crash_while_saving_leaves_whole_files(tmp_path: Path) -> None:
    store = ConfigStore(str(tmp_path))
    await store.save({"enable": True, "models": {"a": {"mapping": "old"}}})
    await store.save({"enable": True, "models": {f"model-{i}": {"mapping": f"name-{i}"} for i in range(3000)}})
    current = (tmp_path / "models.yaml").read_bytes()
    backup = (tmp_path / "models.yaml.bak").read_bytes()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    args = [sys.executable, "-c", CRASH_DURING_SAVE, str(tmp_path), str(len(current) // 2)]
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGXFSZ, r.stderr
    assert (tmp_path / "models.yaml").read_bytes() == current
    assert (tmp_path / "models.yaml.bak").read_bytes() in (backup, current)  # never a part of one
    # what the crash left behind goes at the next start, once it is old enough not to be a live save
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".models.yaml")]
    ConfigStore(str(tmp_path))
    assert all(p.exists() for p in leftovers)
    for p in leftovers:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    ConfigStore(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.yaml", "models.yaml.bak"]


def test_old_temp_files_of_ours_are_removed_at_start(tmp_path: Path) -> None:
    ours_old = [".models.yaml.0123456789ab.tmp", ".models.yaml.bak.0123456789ab.tmp", ".models.yaml.k2j_9xq1"]
    ours_recent = [".models.yaml.ba9876543210.tmp"]
    others = [".models.yaml.notes", "models.yaml.tmp", ".models.yaml.0123456789ab.tmp.keep", "x.tmp", "models.yaml"]
    old = time.time() - 3600
    for name in ours_old + others:
        (tmp_path / name).write_text("enable: true\n")
        os.utime(tmp_path / name, (old, old))
    for name in ours_recent:
        (tmp_path / name).write_text("enable: true\n")
    messages: list[str] = []
    store = ConfigStore(str(tmp_path), messages.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ours_recent + others)
    assert store.config.enable is True and any("3" in m and "temporary" in m for m in messages)
