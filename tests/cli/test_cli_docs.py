"""The documentation is checked against the code: --help, environment variables, config keys."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from spark.cli import _docs
from spark.config import ENV_VARS, load_settings
from spark.config.schema import CacheTable, ModelTable, PriceTable, SparkTable

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Names of variables Spark (or the SDKs under it) reads; found anywhere in the source.
_VARIABLE = re.compile(r"\b(?:SPARK|OPENAI|AWS|GOOGLE|GEMINI)_[A-Z0-9_]*[A-Z0-9]\b")
_READ = re.compile(r"""(?:environ|env)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def test_cli_reference_is_generated_from_help() -> None:
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert _docs.updated(current) == current, "run: python -m spark.cli._docs"
    for path in _docs.command_paths():
        assert _docs.help_text(path) in current


def test_cli_docs_check_mode_passes() -> None:
    assert _docs.main(["--check"]) == 0


def _source_variables() -> set[str]:
    names: set[str] = {"ENVIRONMENT", "XDG_CACHE_HOME"}
    for path in (ROOT / "spark").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names.update(_VARIABLE.findall(text))
        names.update(_READ.findall(text))
    return names


def test_every_environment_variable_is_documented() -> None:
    documented = (DOCS / "environment.md").read_text(encoding="utf-8")
    found = _source_variables()
    assert {"SPARK_CONFIG", "SPARK_CACHE_KEY", "OPENAI_API_KEY"} <= found  # the scan works
    missing = sorted(name for name in found if f"`{name}`" not in documented)
    assert missing == [], f"add to docs/environment.md: {missing}"


@pytest.mark.parametrize("name", sorted(ENV_VARS))
def test_cache_variables_are_in_both_pages(name: str) -> None:
    assert f"`{name}`" in (DOCS / "environment.md").read_text(encoding="utf-8")
    assert f"`{name}`" in (DOCS / "configuration.md").read_text(encoding="utf-8")


def test_every_config_key_is_documented() -> None:
    documented = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for table in (SparkTable, CacheTable, ModelTable, PriceTable):
        for key in table.model_fields:
            assert f"| `{key}` |" in documented, (table.__name__, key)


def test_worked_example_matches_the_repository_files() -> None:
    documented = (DOCS / "configuration.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", documented, flags=re.DOTALL)
    root = tomllib.loads((ROOT / "spark.toml").read_text(encoding="utf-8"))
    profile = tomllib.loads((ROOT / "profiles" / "testing.toml").read_text(encoding="utf-8"))
    assert tomllib.loads(blocks[0]) == root
    assert tomllib.loads(blocks[1]) == profile
    example = Path(__file__).parents[1] / "config" / "data" / "example"
    assert tomllib.loads((example / "spark.toml").read_text(encoding="utf-8")) == root
    assert tomllib.loads((example / "profiles" / "testing.toml").read_text("utf-8")) == profile


@pytest.mark.parametrize("profile", ["development", "testing", "staging", "production"])
def test_repository_example_validates(profile: str) -> None:
    settings = load_settings(ROOT / "spark.toml", profile=profile, env={"SPARK_CACHE_KEY": "k"})
    assert settings.validate(strict_keys=True) == []
    assert settings.model_aliases == ["gpt-4o", "embed", "claude", "flash"]
