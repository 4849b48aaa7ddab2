"""Hostile members in a shared Redis's index sets: a model with no slash or too many, one that
climbs out of the local tier (``../..``), a key holding an escape sequence. Anyone who can write
to the server can add them. Every command goes on, ``verify`` names them, ``clear`` deletes
them from Redis, and the local tier never reaches outside its directory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import redis
from _redis_support import RedisServer, scan_keys
from click.testing import CliRunner, Result

from spark.cache import CacheManager
from spark.cli import cli
from spark.config import load_settings

SPARK_TOML = """\
[cache]
enabled = true
backend = "redis"
url = "{url}"
prefix = "{prefix}"
dir = "local"
local_tier = {tiered}
"""
KEY = "ab" * 32
HOSTILE = {  # index member (model) -> (entry key, stored value)
    "x": ("k1", b"garbage"),
    "a/b/c": ("k", b"x"),
    "../..": (KEY, b"{}"),
    "openai/gpt-4o-mini": ("k\x1b[2K", b"{}"),
}


def spark(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(params=[False, True], ids=["redis", "tiered"])
def project(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    raw: redis.Redis,
    prefix: str,
) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    tiered = "true" if request.param else "false"
    toml = SPARK_TOML.format(url=redis_server.url, prefix=prefix, tiered=tiered)
    (directory / "spark.toml").write_text(toml, encoding="utf-8")
    monkeypatch.chdir(directory)
    config = load_settings().cache_config()
    bound = CacheManager(config.resolved_dir, config).bind(config)
    for prompt in ("q1", "q2"):
        request_ = bound.chat_request("openai", "gpt-4o-mini", prompt)
        assert bound.save(request_, {"text": f"answer to {prompt}"})
    for model, (key, value) in HOSTILE.items():
        raw.sadd(f"{prefix}models", model)
        raw.sadd(f"{prefix}idx:{model}", key)
        raw.set(f"{prefix}e:{model}/{key}", value)
    return directory


def test_every_command_goes_on_and_verify_names_the_hostile_members(
    project: Path, prefix: str
) -> None:
    for command in (("ls",), ("stats",), ("cleanup",)):
        result = spark("cache", *command)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output
    verified = spark("cache", "verify", "--json")
    report = json.loads(verified.stdout)

    named = {problem["path"] for problem in report["problems"]}
    assert verified.exit_code == 1
    assert named == {f"{model}/{key}" for model, (key, _) in HOSTILE.items()}
    assert (report["checked"], report["ok"]) == (6, 2)


def test_clear_deletes_them_from_redis_and_nothing_outside_the_local_tier(
    project: Path, raw: redis.Redis, prefix: str, tmp_path: Path
) -> None:
    outside = tmp_path / f"{KEY}.json"  # where "../../KEY" of the local tier would point
    outside.write_text("not the cache's")

    result = spark("cache", "clear", "--yes")
    config = load_settings().cache_config()
    stats = CacheManager(config.resolved_dir, config).get_stats()

    assert result.exit_code == 0, result.output
    assert "Removed 6 entries" in result.stdout
    assert [name for name in scan_keys(raw, prefix) if name.startswith(f"{prefix}e:")] == []
    assert stats["total_entries"] == 0
    assert outside.read_text() == "not the cache's"


def _plant_wrong_types(raw: redis.Redis, prefix: str) -> None:
    raw.sadd(f"{prefix}models", "openai/m1", "openai/m2")
    raw.set(f"{prefix}idx:openai/m1", "a string, not a set")
    raw.sadd(f"{prefix}idx:openai/m2", b"\xff\xfe", "k2")  # a member that is not UTF-8
    raw.rpush(f"{prefix}e:openai/m2/k2", "a list, not an entry")
    raw.set(f"{prefix}e:\xff".encode("latin-1"), "a key name that is not UTF-8")


def test_keys_of_the_wrong_type_abort_no_command(
    project: Path, raw: redis.Redis, prefix: str
) -> None:
    _plant_wrong_types(raw, prefix)
    for command in (("ls",), ("stats",), ("cleanup",), ("verify",)):
        result = spark("cache", *command)
        assert "error: Redis" not in result.output, result.output
        assert result.exit_code in (0, 1), result.output
    report = json.loads(spark("cache", "verify", "--json").stdout)
    cleared = spark("cache", "clear", "--yes")

    assert "openai/m2/k2" in {problem["path"] for problem in report["problems"]}
    assert cleared.exit_code == 0, cleared.output
    assert not raw.exists(f"{prefix}e:openai/m2/k2")


def test_verify_repair_deletes_a_models_key_of_the_wrong_type_so_writes_work_again(
    project: Path, raw: redis.Redis, prefix: str
) -> None:
    raw.delete(f"{prefix}models")
    raw.set(f"{prefix}models", "a string, not a set")  # every write's SADD would fail
    config = load_settings().cache_config()
    before = CacheManager(config.resolved_dir, config).bind(config)
    failed = before.save(before.chat_request("openai", "gpt-4o-mini", "q3"), {"text": "a"})

    checked = spark("cache", "verify")
    repaired = spark("cache", "verify", "--repair")
    after = CacheManager(config.resolved_dir, config).bind(config)
    saved = after.save(after.chat_request("openai", "gpt-4o-mini", "q4"), {"text": "b"})
    listed = json.loads(spark("cache", "ls", "--json").stdout)

    asked = [after.chat_request("openai", "gpt-4o-mini", q).key for q in ("q1", "q2", "q3", "q4")]
    assert failed is False
    assert "--repair" in checked.stdout
    assert "Indexed 5 entries again" in repaired.stdout  # q1-q3 (q3's SET landed), 2 planted
    assert "error: Redis" not in repaired.output  # (it fails on the planted entries alone)
    assert saved is True
    assert set(asked) <= {entry["key"] for entry in listed}


def test_a_models_member_that_is_not_utf8_is_skipped_by_show_has_entry_and_remove_entry(
    project: Path, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw.sadd(f"{prefix}models", b"\xff\xfe")  # sorted before every model Spark writes
    config = load_settings().cache_config()
    manager = CacheManager(config.resolved_dir, config)
    key = manager.bind(config).chat_request("openai", "gpt-4o-mini", "q1").key

    shown = spark("cache", "show", key, "--json")
    caplog.clear()  # (the command warned of the member once, as its own manager)
    with caplog.at_level(logging.WARNING, logger="spark"):
        found = manager.has_entry(key)
        removed = manager.remove_entry(key)
        after = manager.has_entry(key)

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["payload"]["response"]["text"] == "answer to q1"
    assert (found, removed, after) == (True, True, False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # one for the member, whatever asks about it
    assert "models member b'" in warnings[0]
    assert "xff" in warnings[0]
