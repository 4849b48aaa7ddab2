"""``spark config validate --strict`` refuses what the other commands refuse, naming the profile.

Each case is checked both ways: the command that uses the cache refuses it, and ``validate
--strict`` fails with a line that says which profile and what is wrong (never the key itself);
without ``--strict`` the same line is a warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

import spark.models as spark_models
from spark.cache import generate_key
from spark.errors import ConfigError

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]

BAD_KEY = "not-a-fernet-key"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("SPARK_CACHE_KEY", raising=False)


def test_a_malformed_key_variable(
    spark: Invoke, project: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", good)
    fill(1, encrypt=True)
    monkeypatch.setenv("SPARK_CACHE_KEY", f"{good},{BAD_KEY}")
    refused = spark("cache", "verify", "--profile", "vault")
    assert refused.exit_code == 1  # what the other commands do with it

    line = (
        "profile vault: SPARK_CACHE_KEY: key #2 of 2 is not a valid Fernet key (44 characters "
        "of url-safe base64, as `spark cache keygen` prints them)"
    )
    lenient = spark("config", "validate", "--profile", "vault")
    assert lenient.exit_code == 0
    assert f"warning: {line}" in lenient.stderr
    strict = spark("config", "validate", "--profile", "vault", "--strict")
    assert strict.exit_code == 1
    assert strict.stdout == ""
    assert f"  {line}" in strict.stderr
    assert BAD_KEY not in strict.output
    assert good not in strict.output


def test_a_key_file_others_can_read(
    spark: Invoke, project: Path, fill: Fill, key_file: Callable[..., str]
) -> None:
    key_file()
    path = project / "secrets" / "cache.key"
    fill(1, encrypt=True, key_file=path)
    path.chmod(0o644)
    refused = spark("cache", "verify", "--profile", "ci")
    assert refused.exit_code == 1
    assert "readable by others" in refused.stderr

    strict = spark("config", "validate", "--profile", "ci", "--strict")
    assert strict.exit_code == 1
    assert (
        f"  profile ci: key file {path} is readable by others (mode 644); run `chmod 600 {path}`"
    ) in strict.stderr
    path.chmod(0o600)
    assert spark("config", "validate", "--profile", "ci", "--strict").exit_code == 0


def test_a_key_file_with_a_malformed_key_or_none(spark: Invoke, project: Path) -> None:
    path = project / "secrets" / "cache.key"
    path.parent.mkdir()
    path.write_text(f"# the CI key\n{BAD_KEY}\n")
    path.chmod(0o600)
    strict = spark("config", "validate", "--profile", "ci", "--strict")
    assert strict.exit_code == 1
    assert f"  profile ci: key file {path}: key #1 of 1 is not a valid Fernet key" in (
        strict.stderr
    )
    assert BAD_KEY not in strict.output
    path.write_text("# nothing yet\n")
    empty = spark("config", "validate", "--profile", "ci", "--strict")
    assert empty.exit_code == 1
    assert f"  profile ci: key file {path} holds no key (one key per line)" in empty.stderr


def test_all_profiles_name_the_profile_of_each_problem(
    spark: Invoke, project: Path, key_file: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file()
    path = project / "secrets" / "cache.key"
    path.chmod(0o640)
    monkeypatch.setenv("SPARK_CACHE_KEY", BAD_KEY)
    result = spark("config", "validate", "--all-profiles", "--strict")
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert problems
    assert all(line.startswith("  profile ") for line in problems), problems
    # Every cache that is on reads SPARK_CACHE_KEY, so each profile has that problem; only ci
    # has the key file.
    for name in ("ci", "dev", "vault"):
        assert any(
            line.startswith(f"  profile {name}: SPARK_CACHE_KEY: key #1") for line in problems
        )
    assert [line for line in problems if "readable by others" in line] == [
        f"  profile ci: key file {path} is readable by others (mode 640); run `chmod 600 {path}`"
    ]
    report = json.loads(spark("config", "validate", "--all-profiles", "--strict", "--json").stdout)
    assert report["ok"] is False
    assert sorted({p.split(":")[0] for p in report["problems"]}) == [
        "profile ci",
        "profile dev",
        "profile vault",
    ]

    # Without --strict: the same lines as warnings, each naming its profile; exit 0.
    lenient = spark("config", "validate", "--all-profiles")
    assert lenient.exit_code == 0
    warnings = [line for line in lenient.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings
    assert all(line.startswith("warning: profile ") for line in warnings), warnings


def test_a_profile_of_its_own_names_itself(spark: Invoke, project: Path) -> None:
    text = (project / "spark.toml").read_text()
    (project / "spark.toml").write_text(
        text + '\n[profiles.ci.models.extra]\nprovider = "openai"\n'
    )
    result = spark("config", "validate", "--all-profiles")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if "extra" in line]
    assert lines
    assert all(line.startswith("  profile ci: ") for line in lines), lines


def test_strict_passes_when_every_key_is_in_order(
    spark: Invoke, project: Path, key_file: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file()
    monkeypatch.setenv("SPARK_CACHE_KEY", f"{generate_key()},{generate_key()}")
    result = spark("config", "validate", "--all-profiles", "--strict")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 3
    assert os.environ["SPARK_CACHE_KEY"] not in result.output


def test_an_option_the_provider_does_not_take_fails_validate_as_it_fails_the_build(
    spark: Invoke, project: Path
) -> None:
    (project / "spark.toml").write_text(
        '[models.claude]\nprovider = "bedrock"\nmodel_id = "anthropic.claude-3-haiku"\n'
        'api = "responses"\n'
        '[profiles.ci.models.claude]\nbase_url = "http://localhost:1"\n'
        '[models.gpt]\nprovider = "openai"\nmodel_id = "gpt-4o"\nregion = "us-east-1"\n'
    )
    expected = [
        "  spark.toml: [models.claude] api: not an option of provider 'bedrock' (its options:"
        " region, endpoint_url, timeout, max_retries)",
        "  spark.toml: [models.gpt] region: not an option of provider 'openai' (its options:"
        " api_key_env, base_url, api, timeout, max_retries)",
    ]
    in_ci = (
        "  spark.toml: [profiles.ci.models.claude] base_url: not an option of provider 'bedrock'"
    )

    result = spark("config", "validate")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if "not an option" in line]
    assert lines[:2] == expected
    assert lines[2].startswith(in_ci), "the other profiles' problems come along"

    ci = spark("config", "validate", "--profile", "ci")
    assert ci.exit_code == 1
    assert any(line.startswith(in_ci) for line in ci.stderr.splitlines()), ci.stderr

    asked = spark("ask", "hi", "--model", "gpt")
    assert asked.exit_code == 1
    assert expected[1].strip() in asked.stderr
    with pytest.raises(ConfigError) as raised:
        spark_models.from_profile("claude", config_path=project / "spark.toml")
    assert raised.value.problems == [line.strip() for line in expected]


def test_a_cache_dir_that_cannot_be_made(spark: Invoke, project: Path) -> None:
    """A file where the cache directory (or a parent of it) would be: every write would fail
    and every read find nothing, so validate says so and clear and cleanup do not look fine."""
    (project / "afile").write_text("")
    text = (project / "spark.toml").read_text()
    (project / "spark.toml").write_text(text.replace('dir = "cache"', 'dir = "afile/cache"'))
    warned = spark("config", "validate")
    assert warned.exit_code == 0
    assert "warning: profile dev: cache dir" in warned.stderr
    assert "afile is a file" in warned.stderr
    strict = spark("config", "validate", "--strict")
    assert strict.exit_code == 1
    assert "afile is a file" in strict.stderr
    for command in (("clear", "--yes"), ("cleanup",)):
        result = spark("cache", *command)
        assert "note: no cache directory at" in result.stderr, command


def test_every_problem_of_the_file_at_once(spark: Invoke, project: Path) -> None:
    """A bad value used to hide the other profiles' problems until it was fixed."""
    (project / "spark.toml").write_text(
        '[models.o]\nprovider = "openai"\nmodel_id = "gpt-4o"\ntimeout = -1\n\n'
        '[profiles.p.models.new]\nprovider = "echo"\n\n'
        '[profiles.testing.cache]\nenabled = true\nencrypt = true\nkey_env = ""\n'
    )
    for args in ((), ("--all-profiles",)):
        result = spark("config", "validate", *args)
        assert result.exit_code == 1
        assert "(3 problems)" in result.stderr, result.stderr
        assert "[models.o] timeout" in result.stderr
        assert "[profiles.p.models.new] model_id: required" in result.stderr
        assert "[profiles.testing.cache] encrypt: true but there is no key source" in result.stderr
    as_json = json.loads(spark("config", "validate", "--json").stdout)
    assert len(as_json["problems"]) == 3
