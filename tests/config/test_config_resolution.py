"""The resolution order of spark.config, one test per row, lowest to highest, with provenance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spark.cache.config import CacheConfig
from spark.config import Settings, load_settings

WriteFile = Callable[..., Path]

BASE = """
    [spark]
    default_profile = "dev"

    [cache]
    enabled = true
    ttl_seconds = 10

    [models.embed]
    provider = "openai"
    model_id = "text-embedding-3-small"

    [profiles.dev.cache]
    ttl_seconds = 20
"""


def source_of(settings: Settings, name: str, alias: str | None = None) -> tuple[object, str]:
    """(value, source) of one explained setting."""
    explained = {r.name: r for r in settings.explain(alias)}
    return explained[name].value, explained[name].source


def test_row_1_builtin_defaults_without_any_file(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.path is None
    assert settings.profile == "default"
    assert settings.profiles == []
    assert settings.model_aliases == []
    expected_dir = tmp_path / "home" / ".cache" / "spark" / "llm-responses"
    assert settings.cache_config() == CacheConfig(cache_dir=expected_dir)
    assert {r.source for r in settings.explain()} == {"default"}


def test_row_1_default_dir_respects_xdg_cache_home(tmp_path: Path) -> None:
    settings = load_settings(env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert settings.cache_config().cache_dir == tmp_path / "xdg" / "spark" / "llm-responses"


def test_row_2_base_file_over_defaults(write: WriteFile) -> None:
    path = write("[cache]\nttl_seconds = 10\nnamespace = 'v2'\n")
    settings = load_settings(path)
    assert settings.cache_config().ttl_seconds == 10
    assert settings.cache_config().namespace == "v2"
    assert source_of(settings, "cache.ttl_seconds") == (10, "spark.toml [cache]")
    assert source_of(settings, "cache.max_size_mb") == (1024, "default")


def test_row_3_profile_table_over_base(write: WriteFile) -> None:
    settings = load_settings(write(BASE))
    assert settings.profile == "dev"
    assert source_of(settings, "cache.ttl_seconds") == (20, "spark.toml [profiles.dev.cache]")
    assert source_of(settings, "cache.enabled") == (True, "spark.toml [cache]")


def test_row_4_profile_file_over_profile_table(write: WriteFile) -> None:
    path = write(BASE)
    write("[cache]\nttl_seconds = 30\n", "profiles/dev.toml")
    settings = load_settings(path)
    assert source_of(settings, "cache.ttl_seconds") == (30, "profiles/dev.toml [cache]")


def test_row_5_model_cache_table_over_merged_cache(write: WriteFile) -> None:
    path = write(BASE + "\n[models.embed.cache]\nttl_seconds = 40\n")
    write("[cache]\nttl_seconds = 30\n", "profiles/dev.toml")
    settings = load_settings(path)
    assert settings.cache_config().ttl_seconds == 30
    assert settings.cache_config("embed").ttl_seconds == 40
    assert source_of(settings, "cache.ttl_seconds", "embed") == (
        40,
        "spark.toml [models.embed.cache]",
    )
    assert source_of(settings, "cache.enabled", "embed") == (True, "spark.toml [cache]")


def test_row_5_profile_model_cache_table_over_base_model_cache_table(write: WriteFile) -> None:
    path = write(
        BASE
        + """
        [models.embed.cache]
        ttl_seconds = 40

        [profiles.dev.models.embed.cache]
        ttl_seconds = 50
        """
    )
    settings = load_settings(path)
    assert source_of(settings, "cache.ttl_seconds", "embed") == (
        50,
        "spark.toml [profiles.dev.models.embed.cache]",
    )


ENV_ROWS = [
    ("SPARK_ENABLE_CACHE", "off", "enabled", False),
    ("SPARK_CACHE_TTL", "5", "ttl_seconds", 5),
    ("SPARK_CACHE_MODE", "read_only", "mode", "read_only"),
    ("SPARK_CACHE_MAX_SIZE_MB", "2.5", "max_size_mb", 2.5),
]


@pytest.mark.parametrize(("var", "raw", "key", "value"), ENV_ROWS)
def test_row_6_environment_over_every_table(
    write: WriteFile, var: str, raw: str, key: str, value: object
) -> None:
    path = write(BASE + "\n[models.embed.cache]\nttl_seconds = 40\nmode = 'refresh'\n")
    settings = load_settings(path, env={var: raw})
    for alias in (None, "embed"):
        assert source_of(settings, f"cache.{key}", alias) == (value, f"env {var}")


def test_row_6_environment_cache_dir_is_relative_to_the_cwd(write: WriteFile) -> None:
    settings = load_settings(write(BASE), env={"SPARK_CACHE_DIR": "here/cache"})
    assert settings.cache_config().cache_dir == Path.cwd() / "here" / "cache"
    assert source_of(settings, "cache.dir")[1] == "env SPARK_CACHE_DIR"


def test_row_6_environment_is_read_from_os_environ(
    write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_TTL", "7")
    monkeypatch.setenv("ENVIRONMENT", "dev")
    settings = load_settings(write(BASE))
    assert source_of(settings, "cache.ttl_seconds") == (7, "env SPARK_CACHE_TTL")
    assert source_of(settings, "profile") == ("dev", "env ENVIRONMENT")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(w, True) for w in ("true", "1", "yes", "on", "TRUE", "On")]
    + [(w, False) for w in ("false", "0", "no", "off", "False")],
)
def test_row_6_enable_cache_spellings(raw: str, expected: bool) -> None:
    assert load_settings(env={"SPARK_ENABLE_CACHE": raw}).cache_config().enabled is expected


def test_row_6_empty_environment_variable_counts_as_unset(write: WriteFile) -> None:
    settings = load_settings(write(BASE), env={"SPARK_CACHE_TTL": "", "ENVIRONMENT": ""})
    assert source_of(settings, "cache.ttl_seconds") == (20, "spark.toml [profiles.dev.cache]")


def test_row_7_arguments_over_environment(write: WriteFile) -> None:
    settings = load_settings(
        write(BASE),
        env={"SPARK_CACHE_TTL": "5", "SPARK_ENABLE_CACHE": "yes"},
        overrides={"ttl_seconds": 1, "enabled": None, "cache_dir": Path("rel")},
    )
    for alias in (None, "embed"):
        assert source_of(settings, "cache.ttl_seconds", alias) == (1, "argument")
        assert source_of(settings, "cache.enabled", alias) == (True, "env SPARK_ENABLE_CACHE")
        assert source_of(settings, "cache.dir", alias) == (Path.cwd() / "rel", "argument")


def test_explain_lists_every_setting_in_order(write: WriteFile) -> None:
    path = write(BASE + "\n[models.embed.cache]\nttl_seconds = 40\n")
    settings = load_settings(path)
    assert [r.name for r in settings.explain()] == [
        "profile",
        "cache.enabled",
        "cache.dir",
        "cache.ttl_seconds",
        "cache.max_size_mb",
        "cache.mode",
        "cache.namespace",
        "cache.encrypt",
        "cache.key_env",
        "cache.key_file",
        "cache.memory_max_entries",
        "cache.memory_max_bytes",
        "cache.backend",
        "cache.url",
        "cache.password_env",
        "cache.prefix",
        "cache.local_tier",
        "cache.timeout_ms",
        "cache.cooldown_seconds",
        "cache.lock_seconds",
        "cache.cluster",
        "cache.sentinel",
        "cache.service",
    ]
    explained = settings.explain("embed")
    assert [r.name for r in explained][-2:] == ["provider", "model_id"]
    assert source_of(settings, "profile") == ("dev", "spark.toml [spark] default_profile")
    assert source_of(settings, "model_id", "embed") == (
        "text-embedding-3-small",
        "spark.toml [models.embed]",
    )


def test_profile_argument_beats_environment(write: WriteFile) -> None:
    path = write(BASE + "\n[profiles.prod.cache]\nenabled = false\n")
    settings = load_settings(path, profile="prod", env={"ENVIRONMENT": "dev"})
    assert settings.profile == "prod"
    assert source_of(settings, "profile") == ("prod", "argument")
    assert settings.cache_config().enabled is False


def test_no_default_profile_means_no_overlay(write: WriteFile) -> None:
    path = write("[cache]\nttl_seconds = 10\n[profiles.dev.cache]\nttl_seconds = 20\n")
    settings = load_settings(path)
    assert (settings.profile, settings.profiles) == ("default", ["dev"])
    assert settings.cache_config().ttl_seconds == 10


def test_profile_may_add_models_and_options(write: WriteFile) -> None:
    path = write(
        BASE
        + """
        [profiles.dev.models.claude]
        provider = "bedrock"
        model_id = "anthropic.claude-3-haiku-20240307-v1:0"
        region = "eu-west-1"
        endpoint_url = "http://127.0.0.1:9000"

        [profiles.dev.models.embed]
        base_url = "http://127.0.0.1:8000/v1"
        timeout = 30
        max_retries = 0
        """
    )
    dev = load_settings(path)
    assert dev.model_aliases == ["embed", "claude"]
    claude = dev.model("claude")
    assert (claude.provider, claude.model_id) == (
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
    )
    assert claude.options == {"region": "eu-west-1", "endpoint_url": "http://127.0.0.1:9000"}
    assert claude.cache == dev.cache_config()
    assert dev.model("embed").options == {
        "base_url": "http://127.0.0.1:8000/v1",
        "timeout": 30,
        "max_retries": 0,
    }
    assert source_of(dev, "timeout", "embed") == (30, "spark.toml [profiles.dev.models.embed]")
    assert load_settings(path, profile="default").model_aliases == ["embed"]


def test_pricing_merges_profiles_and_keeps_dates_as_text(write: WriteFile) -> None:
    path = write(
        BASE
        + """
        [pricing."gpt-4o"]
        input = 2.5
        output = 10
        as_of = 2024-08-06

        [profiles.dev.pricing."anthropic.claude-3-haiku-20240307-v1:0"]
        input = 0.25
        output = 1.25
        """
    )
    pricing = load_settings(path).pricing
    assert pricing["gpt-4o"].input_per_million == 2.5
    assert pricing["gpt-4o"].output_per_million == 10.0
    assert pricing["gpt-4o"].as_of == "2024-08-06"
    assert pricing["anthropic.claude-3-haiku-20240307-v1:0"].as_of is None
    assert load_settings(path, profile="default").pricing.keys() == {"gpt-4o"}
