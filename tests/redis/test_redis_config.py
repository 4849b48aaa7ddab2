"""The ``[cache]`` keys of the Redis backend: resolution, validation (every problem at once, with
file, table and key) and passwords never shown. No server is needed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spark.cache import CacheConfig
from spark.cli import cli
from spark.config import load_settings
from spark.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spark.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_redis_settings_resolve_from_file_and_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[cache]\nenabled = true\nbackend = "redis"\nurl = "redis://cache:6379/0"\n'
        'prefix = "team-a:"\nlocal_tier = true\ntimeout_ms = 50\ncooldown_seconds = 2\n'
        'password_env = "SPARK_REDIS_PASSWORD"\n',
    )
    config = load_settings(path).cache_config()
    assert (config.backend, config.url, config.prefix) == (
        "redis",
        "redis://cache:6379/0",
        "team-a:",
    )
    assert (config.local_tier, config.timeout_ms, config.cooldown_seconds) == (True, 50, 2)
    assert config.password_env == "SPARK_REDIS_PASSWORD"
    assert config.lock_seconds == 30
    env = {"SPARK_CACHE_BACKEND": "disk", "SPARK_CACHE_URL": "rediss://other:6380/1"}
    overridden = load_settings(path, env=env).cache_config()
    assert (overridden.backend, overridden.url) == ("disk", "rediss://other:6380/1")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[cache]\nbackend = "memcached"\n\n'
        '[profiles.team.cache]\nbackend = "redis"\n\n'
        '[models.gpt.cache]\nurl = "http://:hunter2@cache:6379"\n\n'
        '[models.gpt]\nprovider = "openai"\nmodel_id = "gpt-4o"\n',
    )
    problems = problems_of(path, env={"SPARK_CACHE_URL": "memcache://:pw2@x"})
    assert problems == [
        'spark.toml: [cache] backend: must be one of disk, redis (got "memcached")',
        "spark.toml: [models.gpt.cache] url: must start with redis://, rediss://, unix:// "
        '(got "http://:***@cache:6379")',
        'env SPARK_CACHE_URL: must start with redis://, rediss://, unix:// (got "memcache://:***@x")',
    ]
    problems = problems_of(path, profile="team")
    assert 'spark.toml: [profiles.team.cache] backend: "redis" needs a url' in problems[-1]
    assert not any("hunter2" in p for p in problems)


def test_cache_config_checks_its_own_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        CacheConfig(backend="redis", timeout_ms=0)
    assert caught.value.problems == [
        'backend: "redis" needs a url, e.g. url = "redis://localhost:6379/0"',
        "timeout_ms: must be > 0 (got 0)",
    ]
    with pytest.raises(ConfigError, match="backend: must be one of disk, redis"):
        CacheConfig(backend="sqlite")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="url: must start with redis://"):
        CacheConfig(backend="redis", url="localhost:6379")


def test_config_show_hides_the_url_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[cache]\nbackend = "redis"\nurl = "redis://app:hunter2@cache:6379/0"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config", "show", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    values = {v["name"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values["cache.url"] == "redis://app:***@cache:6379/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:hunter2@cache:6379/0", "redis://app:***@cache:6379/0"),
        ("redis://:hun@ter@2@cache:6379/0", "redis://:***@cache:6379/0"),  # raw "@" in it
        ("rediss://cache:6380/1?password=hunter2", "rediss://cache:6380/1?password=***"),
    ],
)
def test_the_url_password_is_hidden_whole_in_config_show_and_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, shown: str
) -> None:
    """redis-py (urllib) reads a password up to the address's last "@"; so does the hiding.
    ``repr(CacheConfig)`` (a log line, a traceback) hides it too."""
    write(tmp_path, f'[cache]\nbackend = "redis"\nurl = "{url}"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config", "show", "--json"], catch_exceptions=False)
    values = {v["name"]: v["value"] for v in json.loads(result.stdout)["values"]}
    config = load_settings(tmp_path / "spark.toml").cache_config()

    assert values["cache.url"] == shown
    assert f"url={shown!r}" in repr(config)
    for text in (result.output, repr(config), str(config), repr(load_settings())):
        assert "ter@2" not in text
        assert "hunter2" not in text
    assert config.url == url  # (the value itself is kept for the connection)
