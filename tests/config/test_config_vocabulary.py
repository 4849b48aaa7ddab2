"""One settings vocabulary: the same names and the same rule for a setting in spark.toml, in the
``SPARK_*`` variables and in ``CacheConfig`` (whose seed names stay as aliases)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import spark.models
from spark.cache import CacheManager
from spark.cache.config import CacheConfig, default_cache_dir
from spark.cli import cli
from spark.config import ENV_VARS, load_settings
from spark.config.schema import CACHE_KEYS
from spark.errors import ConfigError

WriteFile = Callable[..., Path]


def problems_of(**kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(**kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def config_problems(**kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        CacheConfig(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith("invalid CacheConfig: ")
    return caught.value.problems


def test_every_file_key_and_variable_is_a_cache_config_name() -> None:
    fields = {field.name for field in dataclasses.fields(CacheConfig)}
    assert set(CACHE_KEYS) <= fields
    assert set(ENV_VARS.values()) <= set(CACHE_KEYS)
    assert ENV_VARS["SPARK_CACHE_DIR"] == "dir"
    assert ENV_VARS["SPARK_CACHE_MAX_SIZE_MB"] == "max_size_mb"


def test_every_cache_config_setting_can_be_set_in_spark_toml() -> None:
    assert set(CACHE_KEYS) == {field.name for field in dataclasses.fields(CacheConfig)}


def test_the_memory_tier_bounds_have_one_name_everywhere(
    write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ENV_VARS["SPARK_CACHE_MEMORY_MAX_ENTRIES"] == "memory_max_entries"
    assert ENV_VARS["SPARK_CACHE_MEMORY_MAX_BYTES"] == "memory_max_bytes"
    path = write("[cache]\nmemory_max_entries = 10\nmemory_max_bytes = 4096\n")
    from_file = load_settings(path).cache_config()
    assert (from_file.memory_max_entries, from_file.memory_max_bytes) == (10, 4096)
    env = {"SPARK_CACHE_MEMORY_MAX_ENTRIES": "0", "SPARK_CACHE_MEMORY_MAX_BYTES": "2048"}
    settings = load_settings(path, env=env)
    from_env = settings.cache_config()
    assert (from_env.memory_max_entries, from_env.memory_max_bytes) == (0, 2048)
    sources = {value.name: value.source for value in settings.explain()}
    assert sources["cache.memory_max_entries"] == "env SPARK_CACHE_MEMORY_MAX_ENTRIES"
    assert from_env == CacheConfig(**{**vars(from_env), "memory_max_entries": 0})


def test_new_names_and_old_aliases_build_the_same_config(tmp_path: Path) -> None:
    new = CacheConfig(dir=tmp_path, max_size_mb=5)
    old = CacheConfig(cache_dir=tmp_path, max_cache_size_mb=5)
    assert new == old
    assert hash(new) == hash(old)
    assert (old.dir, old.cache_dir, old.max_size_mb, old.max_cache_size_mb) == (
        tmp_path,
        tmp_path,
        5,
        5,
    )
    assert CacheConfig(enabled=True, cache_dir=tmp_path).resolved_dir == tmp_path


def test_replace_and_with_overrides_take_either_name(tmp_path: Path) -> None:
    base = CacheConfig(dir=tmp_path / "a", max_size_mb=5)
    assert dataclasses.replace(base, cache_dir=tmp_path / "b").dir == tmp_path / "b"
    assert dataclasses.replace(base, dir=tmp_path / "c").cache_dir == tmp_path / "c"
    assert dataclasses.replace(base, max_cache_size_mb=1).max_size_mb == 1
    assert dataclasses.replace(base, mode="replay").dir == tmp_path / "a"
    assert base.with_overrides(cache_dir=tmp_path / "d", enabled=None).dir == tmp_path / "d"
    assert dataclasses.replace(base, cache_dir=None).dir is None  # None is a value: the default


def test_a_problem_names_the_setting_as_the_caller_spelled_it() -> None:
    assert config_problems(max_cache_size_mb=0) == ["max_cache_size_mb: must be > 0 (got 0)"]
    assert config_problems(max_size_mb=0) == ["max_size_mb: must be > 0 (got 0)"]
    assert config_problems(cache_dir=5) == ["cache_dir: expected a string (got 5)"]


@pytest.mark.parametrize(
    ("key", "in_file", "in_env", "problem"),
    [
        ("ttl_seconds", "-1", "-1", "must be >= 0"),
        ("ttl_seconds", "inf", "inf", "expected a finite number"),
        ("max_size_mb", "0", "0", "must be > 0"),
        ("mode", '"replya"', "replya", "must be one of read_write, read_only, replay, refresh"),
        ("backend", '"sqlite"', "sqlite", "must be one of disk, redis"),
        ("memory_max_entries", "-1", "-1", "must be >= 0"),
        ("memory_max_bytes", "1.5", "1.5", "expected an integer"),
        ("memory_max_bytes", '"64MB"', "64MB", "expected an integer"),
    ],
)
def test_one_rule_per_setting_in_file_environment_and_cache_config(
    write: WriteFile, key: str, in_file: str, in_env: str, problem: str
) -> None:
    var = next(name for name, target in ENV_VARS.items() if target == key)
    path = write(f"[cache]\n{key} = {in_file}\n")
    (from_file,) = problems_of(path=path)
    (from_env,) = problems_of(env={var: in_env})
    python_value = {"-1": -1, "inf": float("inf"), "0": 0, "1.5": 1.5}.get(in_env, in_env)
    (from_python,) = config_problems(**{key: python_value})
    assert from_file.startswith(f"spark.toml: [cache] {key}: {problem} (got ")
    assert from_env == f'env {var}: {problem} (got "{in_env}")'
    assert from_python.startswith(f"{key}: {problem} (got ")


@pytest.mark.parametrize("key", ["dir", "key_file"])
def test_a_path_with_a_nul_character_is_a_problem_not_a_crash(write: WriteFile, key: str) -> None:
    path = write(f'[cache]\n{key} = "cache\\u0000x"\n')
    rule = "a path cannot hold a NUL character (\\u0000)"
    assert problems_of(path=path) == [f'spark.toml: [cache] {key}: {rule} (got "cache\\u0000x")']
    assert config_problems(**{key: "cache\x00x"}) == [f'{key}: {rule} (got "cache\\u0000x")']


def test_redis_needs_a_url_is_one_rule_with_one_wording(write: WriteFile) -> None:
    rule = '"redis" needs a url, e.g. url = "redis://localhost:6379/0"'
    path = write('[profiles.team.cache]\nbackend = "redis"\n')
    assert problems_of(path=path, profile="team") == [
        f"spark.toml: [profiles.team.cache] backend: {rule}"
    ]
    assert problems_of(env={"SPARK_CACHE_BACKEND": "redis"}) == [f"env SPARK_CACHE_BACKEND: {rule}"]
    assert config_problems(backend="redis") == [f"backend: {rule}"]


def test_a_bad_redis_url_never_shows_its_password() -> None:
    (problem,) = config_problems(backend="redis", url="memcache://app:hunter2@cache")
    assert (
        problem
        == 'url: must start with redis://, rediss://, unix:// (got "memcache://app:***@cache")'
    )


def test_arguments_take_the_old_names_too(write: WriteFile, tmp_path: Path) -> None:
    settings = load_settings(
        write("[cache]\nenabled = true\n"),
        overrides={"cache_dir": tmp_path / "mine", "max_cache_size_mb": 7},
    )
    config = settings.cache_config()
    assert (config.dir, config.max_size_mb) == (tmp_path / "mine", 7)
    explained = {value.name: value.source for value in settings.explain()}
    assert explained["cache.dir"] == explained["cache.max_size_mb"] == "argument"


@pytest.mark.parametrize(("raw", "expected"), [("yes", True), ("ON", True), ("0", False)])
def test_environment_text_converts_by_the_setting_rule(raw: str, expected: bool) -> None:
    assert load_settings(env={"SPARK_ENABLE_CACHE": raw}).cache_config().enabled is expected


def test_environment_names_are_exact_and_blank_values_are_unset() -> None:
    settings = load_settings(env={"spark_cache_ttl": "5", "SPARK_CACHE_MODE": "   "})
    explained = {value.name: value.source for value in settings.explain()}
    assert explained["cache.ttl_seconds"] == explained["cache.mode"] == "default"
    assert load_settings(env={"SPARK_CACHE_TTL": " 60 "}).cache_config().ttl_seconds == 60


def test_one_default_directory_for_the_cache_and_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    built_in = tmp_path / "xdg" / "spark" / "llm-responses"
    assert default_cache_dir() == built_in
    assert load_settings().cache_config().dir == built_in
    assert CacheConfig().resolved_dir == built_in
    monkeypatch.setenv("SPARK_CACHE_DIR", "relative/cache")  # the CWD is tmp_path/elsewhere
    chosen = Path.cwd() / "relative" / "cache"
    assert default_cache_dir() == chosen
    assert CacheConfig().resolved_dir == chosen
    assert load_settings().cache_config().dir == chosen
    CacheManager.reset_instances()
    try:
        assert CacheManager.get_instance().cache_dir == chosen
    finally:
        CacheManager.reset_instances()


def test_config_show_reports_each_source_under_the_file_names(
    write: WriteFile, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("[cache]\ndir = 'from-file'\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("SPARK_CACHE_MAX_SIZE_MB", "12")
    result = CliRunner().invoke(cli, ["config", "show", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    values = {v["name"]: v for v in json.loads(result.output)["values"]}
    assert values["cache.dir"]["value"] == str(project / "from-file")
    assert values["cache.dir"]["source"] == "spark.toml [cache]"
    assert values["cache.max_size_mb"] == {
        "name": "cache.max_size_mb",
        "value": 12,
        "source": "env SPARK_CACHE_MAX_SIZE_MB",
    }


def test_config_validate_reports_file_and_environment_problems_and_fails(
    write: WriteFile, project: Path
) -> None:
    write("[cache]\nmax_cache_size_mb = 10\n")
    env = {**os.environ, "SPARK_CACHE_TTL": "a day", "SPARK_CONFIG": str(project)}
    result = subprocess.run(
        [sys.executable, "-m", "spark", "config", "validate"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        'spark.toml: [cache] max_cache_size_mb: unknown key (did you mean "max_size_mb"?)'
        in result.stderr
    )
    assert 'env SPARK_CACHE_TTL: expected a number (got "a day")' in result.stderr


@pytest.mark.parametrize("new_first", [True, False])
def test_given_both_names_the_old_one_wins_wherever_they_are_given(
    tmp_path: Path, new_first: bool
) -> None:
    path = tmp_path / "spark.toml"
    path.write_text('[models.e]\nprovider = "echo"\nmodel_id = "e"\n')
    new = {"dir": tmp_path / "new", "max_size_mb": 9}
    old = {"cache_dir": tmp_path / "old", "max_cache_size_mb": 5}
    both = {**new, **old} if new_first else {**old, **new}

    configs = [
        CacheConfig(**both),
        load_settings(path, overrides=both).cache_config("e"),
        spark.models.from_profile("e", config_path=path, **both).cache_config,
    ]

    assert [(c.dir, c.max_size_mb) for c in configs] == [(tmp_path / "old", 5)] * 3
