"""``spark config validate|show|init`` against real files under tmp_path."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent

import pytest
from click.testing import Result

from spark.config import load_settings

Invoke = Callable[..., Result]

BROKEN = """\
[spark]
default_profile = "dev"

[cache]
enabled = "yes"
ttl_seconds = -5
mode = "replya"
colour = "blue"

[models.gpt]
provider = "openia"
model_id = "gpt-4o"

[profiles.dev.cache]
enabled = true
"""


def test_validate_ok(spark: Invoke, project: Path) -> None:
    result = spark("config", "validate")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK: {project / 'spark.toml'} (profile dev, 2 models)\n"


def test_validate_lists_every_problem_without_a_traceback(spark: Invoke, project: Path) -> None:
    (project / "spark.toml").write_text(BROKEN)
    result = spark("config", "validate")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: invalid Spark configuration (5 problems):"
    for needle in (
        "enabled: expected true or false",
        "ttl_seconds: must be >= 0",
        "mode:",
        "colour",
    ):
        assert any(needle in line and "spark.toml: [cache]" in line for line in lines), needle
    assert any("provider: must be one of bedrock, echo, gemini, openai" in line for line in lines)
    assert "Traceback" not in result.output


def test_validate_json_reports_problems(spark: Invoke, project: Path) -> None:
    (project / "spark.toml").write_text(BROKEN)
    result = spark("config", "validate", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert len(report["problems"]) == 5


def test_validate_unknown_profile(spark: Invoke, project: Path) -> None:
    result = spark("config", "validate", "--profile", "prod")
    assert result.exit_code == 1
    assert 'unknown profile "prod"; known profiles: ci, dev, vault' in result.stderr


def test_validate_unknown_environment(
    spark: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    result = spark("config", "validate")
    assert result.exit_code == 1
    assert "env ENVIRONMENT: unknown profile" in result.stderr


def test_validate_warns_of_a_missing_key_and_strict_fails(spark: Invoke, project: Path) -> None:
    result = spark("config", "validate", "--profile", "ci")
    assert result.exit_code == 0
    assert "warning: profile ci: encryption is on" in result.stderr
    assert "key file" in result.stderr
    assert result.stdout.startswith("OK: ")
    strict = spark("config", "validate", "--profile", "ci", "--strict")
    assert strict.exit_code == 1
    assert "error: invalid Spark configuration" in strict.stderr
    assert "  profile ci: encryption is on for [cache]" in strict.stderr
    assert "no key was found" in strict.stderr


def test_validate_all_profiles(spark: Invoke, project: Path) -> None:
    result = spark("config", "validate", "--all-profiles")
    assert result.exit_code == 0
    assert [line.split("(")[1] for line in result.stdout.splitlines()] == [
        "profile ci, 2 models)",
        "profile dev, 2 models)",
        "profile vault, 2 models)",
    ]
    assert "warning: profile ci:" in result.stderr
    assert spark("config", "validate", "--all-profiles", "--strict").exit_code == 1


def test_validate_without_a_file(spark: Invoke, tmp_path: Path) -> None:
    result = spark("config", "validate")
    assert result.exit_code == 1
    assert "error: no spark.toml found" in result.stderr
    assert "spark config init" in result.stderr


def test_global_config_option_and_spark_config_variable(
    spark: Invoke, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert spark("--config", str(project / "spark.toml"), "config", "validate").exit_code == 0
    monkeypatch.setenv("SPARK_CONFIG", str(project))
    assert "profile dev" in spark("config", "validate").stdout
    missing = spark("--config", "nowhere.toml", "config", "validate")
    assert missing.exit_code == 1
    assert "no such file" in missing.stderr


def test_show_names_the_source_of_every_value(
    spark: Invoke, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_TTL", "60")
    result = spark("config", "show", "--model", "gpt", "--json")
    assert result.exit_code == 0
    shown = json.loads(result.stdout)
    sources = {value["name"]: value["source"] for value in shown["values"]}
    values = {value["name"]: value["value"] for value in shown["values"]}
    assert sources["profile"] == "spark.toml [spark] default_profile"
    assert sources["cache.enabled"] == "spark.toml [profiles.dev.cache]"
    assert sources["cache.ttl_seconds"] == "env SPARK_CACHE_TTL"
    assert values["cache.ttl_seconds"] == 60
    assert sources["cache.mode"] == "default"
    assert values["cache.dir"] == str(project / "cache")
    assert values["provider"] == "openai"
    assert sources["model_id"] == "spark.toml [models.gpt]"


def test_show_table(spark: Invoke, project: Path) -> None:
    result = spark("config", "show", "--profile", "ci")
    assert result.exit_code == 0
    assert "profile ci, [cache]" in result.stdout
    assert "spark.toml [profiles.ci.cache]" in result.stdout  # brackets are not rich markup
    assert '"replay"' in result.stdout
    assert "models: gpt, claude" in result.stdout


def test_show_unknown_alias(spark: Invoke, project: Path) -> None:
    result = spark("config", "show", "--model", "gtp")
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: unknown model alias 'gtp' in {project / 'spark.toml'} ")
    assert first.endswith("; did you mean 'gpt'? known aliases: gpt, claude")


def test_init_writes_a_valid_file_and_refuses_to_overwrite(
    spark: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = spark("config", "init")
    assert result.exit_code == 0
    written = tmp_path / "spark.toml"
    document = tomllib.loads(written.read_text())
    assert sorted(document["profiles"]) == ["development", "production", "staging", "testing"]
    assert load_settings(written).profile == "development"
    again = spark("config", "init")
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    assert "--force" in again.stderr
    written.write_text("# mine\n")
    assert spark("config", "init", "--force").exit_code == 0
    assert "[profiles.testing.cache]" in written.read_text()


def test_init_into_a_directory(spark: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    assert spark("config", "init", "--path", str(target)).exit_code == 0
    assert (target / "spark.toml").is_file()


def test_init_through_a_file_says_which_file_is_in_the_way(
    spark: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    result = spark("config", "init", "--path", "afile/spark.toml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: cannot write afile/spark.toml: afile is a file, not a directory",
        "Choose another --path.",
    ]


def test_init_into_a_new_directory_named_with_a_trailing_slash(
    spark: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = spark("config", "init", "--path", "newdir/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "newdir").is_dir()
    assert tomllib.loads((tmp_path / "newdir" / "spark.toml").read_text())["profiles"]
    # The check it suggests finds the file written elsewhere than the current directory.
    assert result.stdout == (
        "Wrote newdir/spark.toml. Check it with `spark --config newdir/spark.toml config "
        "validate`.\n"
    )
    checked = spark("--config", "newdir/spark.toml", "config", "validate")
    assert checked.exit_code == 0, checked.output
    # A path without the slash is the file's own name, as before.
    assert spark("config", "init", "--path", "other.toml").exit_code == 0
    assert (tmp_path / "other.toml").is_file()


def test_profile_file_overlay_is_validated(spark: Invoke, project: Path) -> None:
    (project / "profiles").mkdir()
    (project / "profiles" / "dev.toml").write_text(
        dedent("""\
        [cache]
        mode = "sometimes"
        """)
    )
    result = spark("config", "validate")
    assert result.exit_code == 1
    assert "profiles/dev.toml: [cache] mode: must be one of" in result.stderr
