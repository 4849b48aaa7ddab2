"""The worked example (data/example): four environments from one spark.toml + a profile file."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

import spark.config
from spark.config import load_settings, render_default_toml
from spark.config.init_file import starter_document

EXAMPLE = Path(__file__).parent / "data" / "example"
DAY = 86400


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example, so that relative paths resolve under tmp_path."""
    target = tmp_path / "example"
    shutil.copytree(EXAMPLE, target)
    return target / "spark.toml"


def test_development_is_the_default(example: Path, tmp_path: Path) -> None:
    settings = load_settings(example)
    assert settings.profile == "development"
    assert settings.profiles == ["development", "production", "staging", "testing"]
    assert settings.model_aliases == ["gpt-4o", "embed", "claude", "flash"]
    config = settings.cache_config()
    assert (config.enabled, config.ttl_seconds, config.mode, config.encrypt) == (
        True,
        DAY,
        "read_write",
        False,
    )
    assert config.cache_dir == tmp_path / "home" / ".cache" / "spark" / "llm-responses"
    assert settings.warnings == []


def test_testing_replays_an_encrypted_committed_cache(example: Path) -> None:
    settings = load_settings(example, env={"ENVIRONMENT": "testing", "SPARK_CACHE_KEY": "k"})
    for alias in (None, *settings.model_aliases):
        config = settings.cache_config(alias)
        assert config.enabled is True
        assert config.ttl_seconds == 30 * DAY
        assert config.encrypt is True
        assert config.mode == "replay"
        assert config.cache_dir == example.parent / "tests" / "llm_cache"
    explained = {r.name: r.source for r in settings.explain("embed")}
    assert explained["cache.ttl_seconds"] == "spark.toml [profiles.testing.cache]"
    assert explained["cache.mode"] == "profiles/testing.toml [cache]"
    assert settings.warnings == []


def test_testing_without_the_key_warns(example: Path) -> None:
    settings = load_settings(example, env={"ENVIRONMENT": "testing"})
    assert len(settings.warnings) == 1
    assert "SPARK_CACHE_KEY is not set" in settings.warnings[0]


def test_staging_caches_for_an_hour(example: Path) -> None:
    settings = load_settings(example, env={"ENVIRONMENT": "staging"})
    assert all(settings.cache_config(a).ttl_seconds == 3600 for a in settings.model_aliases)
    assert settings.cache_config().enabled is True


def test_production_caches_only_embeddings_for_a_week(example: Path) -> None:
    settings = load_settings(example, env={"ENVIRONMENT": "production"})
    assert settings.cache_config().enabled is False
    assert [a for a in settings.model_aliases if settings.cache_config(a).enabled] == ["embed"]
    assert settings.cache_config("embed").ttl_seconds == 7 * DAY
    embed = settings.model("embed")
    assert (embed.provider, embed.model_id) == ("openai", "text-embedding-3-small")


def test_models_options_and_pricing(example: Path) -> None:
    settings = load_settings(example)
    assert settings.model("claude").options == {"region": "us-east-1"}
    assert settings.model("gpt-4o").options == {"timeout": 60, "max_retries": 2}
    assert settings.model("flash").provider == "gemini"
    price = settings.pricing["gpt-4o"]
    assert (price.input_per_million, price.output_per_million, price.as_of) == (
        2.5,
        10.0,
        "2024-08-06",
    )


def test_every_profile_of_the_example_validates(example: Path) -> None:
    for profile in ("development", "testing", "staging", "production"):
        settings = load_settings(example, profile=profile, env={"SPARK_CACHE_KEY": "k"})
        assert settings.validate(strict_keys=True) == []


def test_render_default_toml_loads_back_cleanly(tmp_path: Path) -> None:
    text = render_default_toml()
    assert tomllib.loads(text) == starter_document()
    path = tmp_path / "fresh" / "spark.toml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    for profile in ("development", "testing", "staging", "production"):
        settings = load_settings(path, profile=profile, env={"SPARK_CACHE_KEY": "k"})
        assert settings.validate(strict_keys=True) == []
    production = load_settings(path, profile="production")
    assert production.cache_config("embed").ttl_seconds == 7 * DAY
    assert load_settings(path).profile == "development"


def test_exported_members() -> None:
    exported = set(spark.config.__all__)
    assert exported == {
        "CONFIG_FILE_NAME",
        "ENV_VARS",
        "KNOWN_PROVIDERS",
        "ModelSettings",
        "Price",
        "ResolvedValue",
        "Settings",
        "find_config_file",
        "load_settings",
        "render_default_toml",
    }
    for name in exported:
        assert getattr(spark.config, name) is not None
