"""Finding spark.toml (argument, SPARK_CONFIG, parent directories) and resolving relative paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spark.config import find_config_file, load_settings
from spark.errors import ConfigError

WriteFile = Callable[..., Path]


def test_found_in_the_current_directory(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("[cache]\nttl_seconds = 1\n")
    monkeypatch.chdir(path.parent)
    assert load_settings().path == path


def test_found_in_a_parent_directory(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("[cache]\nttl_seconds = 1\n")
    deep = path.parent / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    settings = load_settings()
    assert settings.path == path
    assert settings.cache_config().ttl_seconds == 1


def test_nearest_file_wins(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    write("[cache]\nttl_seconds = 1\n")
    inner = write("[cache]\nttl_seconds = 2\n", "sub/spark.toml")
    monkeypatch.chdir(inner.parent)
    assert load_settings().cache_config().ttl_seconds == 2


def test_spark_config_names_the_file(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    write("[cache]\nttl_seconds = 1\n")  # would be found by searching; SPARK_CONFIG wins
    custom = write("[cache]\nttl_seconds = 3\n", "conf/custom.toml")
    monkeypatch.chdir(custom.parent.parent)
    settings = load_settings(env={"SPARK_CONFIG": "conf/custom.toml"})
    assert settings.path == custom
    (ttl,) = [r for r in settings.explain() if r.name == "cache.ttl_seconds"]
    assert ttl.source == "custom.toml [cache]"


def test_spark_config_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"SPARK_CONFIG": str(tmp_path / "nope.toml"), "SPARK_CACHE_TTL": "x"})
    assert caught.value.problems == [
        f"env SPARK_CONFIG: no such file: {tmp_path / 'nope.toml'}",
        'env SPARK_CACHE_TTL: expected a number (got "x")',
    ]


def test_path_argument_wins_over_spark_config(write: WriteFile, tmp_path: Path) -> None:
    path = write("[cache]\nttl_seconds = 4\n")
    settings = load_settings(path, env={"SPARK_CONFIG": str(tmp_path / "nope.toml")})
    assert settings.path == path


def test_path_argument_may_be_the_directory(write: WriteFile) -> None:
    path = write("[cache]\nttl_seconds = 4\n")
    assert load_settings(str(path.parent)).path == path
    with pytest.raises(ConfigError, match="argument path: no such file"):
        load_settings(path.parent / "missing")


def test_no_file_anywhere_means_defaults_and_environment() -> None:
    settings = load_settings(env={"SPARK_ENABLE_CACHE": "1", "SPARK_CACHE_TTL": "60"})
    assert settings.path is None
    assert settings.cache_config().enabled is True
    assert settings.cache_config().ttl_seconds == 60


def test_relative_paths_are_relative_to_the_file(write: WriteFile) -> None:
    path = write(
        """
        [cache]
        dir = "cache"
        key_file = ".spark/cache.key"

        [models.m]
        provider = "gemini"
        model_id = "gemini-2.0-flash"

        [models.m.cache]
        dir = "../shared/cache"
        """
    )
    assert Path.cwd() != path.parent
    settings = load_settings(path)
    assert settings.cache_config().cache_dir == path.parent / "cache"
    assert settings.cache_config().key_file == path.parent / ".spark" / "cache.key"
    assert settings.cache_config("m").cache_dir == path.parent / "../shared/cache"


def test_profile_file_paths_are_relative_to_spark_toml(write: WriteFile) -> None:
    path = write("[profiles.testing.cache]\nenabled = true\n")
    write("[cache]\ndir = 'tests/llm_cache'\nkey_file = 'keys/ci.key'\n", "profiles/testing.toml")
    config = load_settings(path, profile="testing").cache_config()
    assert config.cache_dir == path.parent / "tests" / "llm_cache"
    assert config.key_file == path.parent / "keys" / "ci.key"


def test_home_and_absolute_paths(write: WriteFile, tmp_path: Path) -> None:
    path = write(f"[cache]\ndir = '~/llm'\nkey_file = '{tmp_path / 'abs.key'}'\n")
    config = load_settings(path).cache_config()
    assert config.cache_dir == tmp_path / "home" / "llm"
    assert config.key_file == tmp_path / "abs.key"


def test_empty_dir_means_the_default_directory(write: WriteFile, tmp_path: Path) -> None:
    path = write("[cache]\ndir = 'x'\n[profiles.p.cache]\ndir = ''\n")
    config = load_settings(path, profile="p").cache_config()
    assert config.cache_dir == tmp_path / "home" / ".cache" / "spark" / "llm-responses"


def test_profiles_come_from_tables_and_files(write: WriteFile) -> None:
    path = write("[profiles.b]\n[profiles.a.cache]\nenabled = true\n")
    write("[cache]\nttl_seconds = 9\n", "profiles/c.toml")
    write("not toml at all, but not a .toml file either", "profiles/notes.txt")
    settings = load_settings(path, env={"ENVIRONMENT": "c"})
    assert settings.profiles == ["a", "b", "c"]
    assert (settings.profile, settings.cache_config().ttl_seconds) == ("c", 9)


def test_find_config_file(
    write: WriteFile, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write("")
    assert find_config_file() is None
    assert find_config_file(env={"SPARK_CONFIG": str(path)}) == path
    monkeypatch.chdir(path.parent)
    assert find_config_file() == path
    with pytest.raises(ConfigError, match="no such file"):
        find_config_file(tmp_path / "missing.toml")
