"""Every validation problem of spark.config, and that one ConfigError reports them all at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spark.cache.config import CacheConfig
from spark.config import load_settings
from spark.errors import ConfigError

WriteFile = Callable[..., Path]

MODES = "read_write, read_only, replay, refresh"
CACHE_KEYS = (
    "enabled, dir, ttl_seconds, max_size_mb, mode, namespace, encrypt, key_env, key_file, "
    "memory_max_entries, memory_max_bytes, backend, url, password_env, prefix, local_tier, "
    "timeout_ms, cooldown_seconds, lock_seconds, cluster, sentinel, service"
)


def problems_of(path: Path | None = None, **kwargs: object) -> list[str]:
    """The problems of the ConfigError that loading raises (the test fails if it does not)."""
    with pytest.raises(ConfigError) as caught:
        load_settings(path, **kwargs)  # type: ignore[arg-type]
    for problem in caught.value.problems:
        assert problem in str(caught.value)
    return caught.value.problems


def test_every_problem_is_reported_at_once(write: WriteFile) -> None:
    path = write(
        """
        [cache]
        ttl = 60
        enabled = "yes"
        ttl_seconds = -1
        max_size_mb = 0

        [models.gpt]
        provider = "openia"
        model_id = "gpt-4o"

        [models.embed]
        provider = "openai"

        [profiles.testing.cache]
        mode = "replya"
        """
    )
    problems = problems_of(path, env={"SPARK_CACHE_TTL": "abc"}, profile="testing")
    assert problems == [
        'spark.toml: [cache] ttl: unknown key (did you mean "ttl_seconds"?);'
        f" allowed keys: {CACHE_KEYS}",
        'spark.toml: [cache] enabled: expected true or false (got "yes")',
        "spark.toml: [cache] ttl_seconds: must be >= 0 (got -1)",
        "spark.toml: [cache] max_size_mb: must be > 0 (got 0)",
        'spark.toml: [models.gpt] provider: must be one of bedrock, echo, gemini, openai (got "openia")',
        f'spark.toml: [profiles.testing.cache] mode: must be one of {MODES} (got "replya")',
        'env SPARK_CACHE_TTL: expected a number (got "abc")',
        'spark.toml: [models.embed] model_id: required (the provider\'s model name, e.g. "gpt-4o")',
    ]


def test_error_message_counts_the_problems(write: WriteFile) -> None:
    path = write("[cache]\nmode = 'x'\nttl_seconds = 'y'\n")
    with pytest.raises(ConfigError, match=r"\(2 problems\)"):
        load_settings(path)


def test_unknown_tables_and_keys_get_a_suggestion(write: WriteFile) -> None:
    path = write(
        """
        [modles.gpt]
        provider = "openai"

        [spark]
        default_profil = "dev"

        [pricing."gpt-4o"]
        input = 1
        ouput = 2
        """
    )
    problems = problems_of(path)
    assert problems[0].startswith('spark.toml: modles: unknown key (did you mean "models"?)')
    assert problems[1].startswith(
        'spark.toml: [spark] default_profil: unknown key (did you mean "default_profile"?)'
    )
    assert 'spark.toml: [pricing.gpt-4o] ouput: unknown key (did you mean "output"?)' in problems[2]
    assert problems[3] == "spark.toml: [pricing.gpt-4o] output: required"


def test_wrong_types_name_the_expected_type(write: WriteFile) -> None:
    path = write(
        """
        models = 3

        [cache]
        dir = 5
        namespace = true
        ttl_seconds = "60"

        [pricing.x]
        input = "cheap"
        output = 1
        as_of = 3
        """
    )
    assert problems_of(path) == [
        "spark.toml: models: expected a table (got 3)",
        "spark.toml: [cache] dir: expected a string (got 5)",
        "spark.toml: [cache] namespace: expected a string (got true)",
        'spark.toml: [cache] ttl_seconds: expected a number (got "60")',
        'spark.toml: [pricing.x] input: expected a number (got "cheap")',
        "spark.toml: [pricing.x] as_of: expected a date or a string (got 3)",
    ]


def test_model_option_types(write: WriteFile) -> None:
    path = write(
        """
        [models.m]
        provider = "bedrock"
        model_id = "x"
        timeout = -5
        max_retries = 1.5
        region = ["us-east-1"]
        """
    )
    assert problems_of(path) == [
        "spark.toml: [models.m] timeout: must be > 0 (got -5)",
        "spark.toml: [models.m] max_retries: expected an integer (got 1.5)",
        "spark.toml: [models.m] region: expected a string (got an array)",
    ]


def test_problems_in_a_profile_file_name_that_file(write: WriteFile) -> None:
    path = write("[profiles.testing.cache]\nenabled = true\n")
    write("[cache]\nmode = 'nope'\n[profiles.x]\n", "profiles/testing.toml")
    assert problems_of(path, profile="testing") == [
        f'profiles/testing.toml: [cache] mode: must be one of {MODES} (got "nope")',
        "profiles/testing.toml: profiles: unknown key; allowed keys: cache, models, pricing, telemetry",
    ]


def test_inactive_profiles_are_schema_checked_too(write: WriteFile) -> None:
    path = write("[profiles.staging.cache]\nttl_seconds = -3\n")
    write("[cache]\nenabld = true\n", "profiles/production.toml")
    problems = problems_of(path)
    assert problems[0] == "spark.toml: [profiles.staging.cache] ttl_seconds: must be >= 0 (got -3)"
    assert problems[1].startswith(
        'profiles/production.toml: [cache] enabld: unknown key (did you mean "enabled"?)'
    )


def test_rejected_provider_is_not_also_reported_missing(write: WriteFile) -> None:
    path = write("[models.a]\nprovider = 'azure'\nmodel_id = 'x'\n")
    assert problems_of(path) == [
        'spark.toml: [models.a] provider: must be one of bedrock, echo, gemini, openai (got "azure")'
    ]


def test_alias_without_provider_or_model_id(write: WriteFile) -> None:
    path = write("[models.a.cache]\nenabled = true\n")
    assert problems_of(path) == [
        "spark.toml: [models.a] provider: required (one of bedrock, echo, gemini, openai)",
        'spark.toml: [models.a] model_id: required (the provider\'s model name, e.g. "gpt-4o")',
    ]


def test_incomplete_alias_of_another_profile_is_deferred_to_validate(write: WriteFile) -> None:
    path = write(
        """
        [profiles.dev.cache]
        enabled = true

        [profiles.staging.models.claude]
        provider = "bedrock"
        """
    )
    settings = load_settings(path, profile="dev")
    with pytest.raises(ConfigError) as caught:
        settings.validate()
    assert caught.value.problems == [
        "spark.toml: [profiles.staging.models.claude] model_id: required"
        ' (the provider\'s model name, e.g. "gpt-4o")'
    ]
    assert problems_of(path, profile="staging") == caught.value.problems


def test_unknown_environment_lists_the_profiles(write: WriteFile) -> None:
    path = write("[profiles.development.cache]\nenabled = true\n[profiles.testing]\n")
    write("[cache]\nenabled = false\n", "profiles/production.toml")
    problems = problems_of(path, env={"ENVIRONMENT": "prod"})
    assert problems == [
        'env ENVIRONMENT: unknown profile "prod"; known profiles: development, production, testing'
        " (a profile is a [profiles.prod] table or a profiles/prod.toml file)"
    ]


def test_unknown_default_profile_and_profile_argument(write: WriteFile) -> None:
    path = write("[spark]\ndefault_profile = 'dev'\n")
    assert problems_of(path)[0].startswith(
        'spark.toml: [spark] default_profile: unknown profile "dev"; known profiles: (none defined)'
    )
    assert problems_of(path, profile="qa")[0].startswith('argument profile: unknown profile "qa"')


def test_profile_argument_without_any_file_is_an_error() -> None:
    assert problems_of(profile="testing")[0].startswith(
        'argument profile: unknown profile "testing"'
    )


def test_environment_is_ignored_without_a_file() -> None:
    settings = load_settings(env={"ENVIRONMENT": "production"})
    assert settings.profile == "default"


def test_bad_toml_reports_line_and_column(write: WriteFile) -> None:
    path = write("[cache]\nenabled = true\nttl_seconds = \n")
    (problem,) = problems_of(path)
    assert problem.startswith("spark.toml: invalid TOML: ")
    assert "line 3, column 15" in problem


def test_bad_toml_in_a_profile_file_is_reported_with_other_problems(write: WriteFile) -> None:
    path = write("[cache]\nmode = 'x'\n")
    write("[cache\n", "profiles/dev.toml")
    problems = problems_of(path, env={"SPARK_CACHE_MAX_SIZE_MB": "-1"})
    assert problems[0].startswith("spark.toml: [cache] mode: must be one of")
    assert problems[1].startswith("profiles/dev.toml: invalid TOML: ")
    assert "(at line 1, column 7)" in problems[1]
    assert problems[2] == 'env SPARK_CACHE_MAX_SIZE_MB: must be > 0 (got "-1")'


@pytest.mark.parametrize(
    ("var", "raw", "problem"),
    [
        ("SPARK_ENABLE_CACHE", "maybe", "must be one of true, false, 1, 0, yes, no, on, off"),
        ("SPARK_CACHE_TTL", "abc", "expected a number"),
        ("SPARK_CACHE_TTL", "-5", "must be >= 0"),
        ("SPARK_CACHE_TTL", "inf", "expected a finite number"),
        ("SPARK_CACHE_MODE", "write", f"must be one of {MODES}"),
        ("SPARK_CACHE_MAX_SIZE_MB", "0", "must be > 0"),
        ("SPARK_CACHE_MAX_SIZE_MB", "big", "expected a number"),
    ],
)
def test_bad_environment_values(var: str, raw: str, problem: str) -> None:
    assert problems_of(env={var: raw}) == [f'env {var}: {problem} (got "{raw}")']


def test_bad_arguments() -> None:
    problems = problems_of(overrides={"ttl_seconds": -1, "colour": "red", "enabled": "yes"})
    assert problems == [
        "argument: ttl_seconds: must be >= 0 (got -1)",
        'argument: colour: unknown key (did you mean "cluster"?); allowed keys: ' + CACHE_KEYS,
        'argument: enabled: expected true or false (got "yes")',
    ]


def test_encryption_without_any_key_source_is_an_error(write: WriteFile) -> None:
    path = write(
        """
        [cache]
        key_env = ""

        [profiles.testing.cache]
        enabled = true
        encrypt = true
        """
    )
    assert problems_of(path, profile="testing") == [
        "spark.toml: [profiles.testing.cache] encrypt: true but there is no key source"
        " (key_env is empty and no key_file is set)"
    ]


ENCRYPTED = """
    [cache]
    enabled = true
    encrypt = true

    [models.embed]
    provider = "openai"
    model_id = "text-embedding-3-small"
"""


def test_missing_key_is_only_a_warning_at_load(write: WriteFile) -> None:
    settings = load_settings(write(ENCRYPTED))
    warning = (
        "encryption is on for [cache], [models.embed] but no key was found:"
        " environment variable SPARK_CACHE_KEY is not set and no key_file is set"
    )
    assert settings.warnings == [warning]
    assert settings.validate() == [warning]
    with pytest.raises(ConfigError) as caught:
        settings.validate(strict_keys=True)
    assert caught.value.problems == [warning]


def test_key_from_environment_or_key_file_silences_the_warning(write: WriteFile) -> None:
    path = write(ENCRYPTED)
    assert load_settings(path, env={"SPARK_CACHE_KEY": "k"}).validate(strict_keys=True) == []
    write(ENCRYPTED + "\n[models.embed.cache]\nkey_file = '.spark/cache.key'\n")
    settings = load_settings(path)
    assert settings.warnings == [
        "encryption is on for [cache] but no key was found:"
        " environment variable SPARK_CACHE_KEY is not set and no key_file is set",
        "encryption is on for [models.embed] but no key was found:"
        " environment variable SPARK_CACHE_KEY is not set"
        f" and key file {path.parent / '.spark' / 'cache.key'} does not exist",
    ]
    write("k\n", ".spark/cache.key")
    assert len(load_settings(path).warnings) == 1


def test_disabled_cache_needs_no_key(write: WriteFile) -> None:
    path = write(ENCRYPTED.replace("enabled = true", "enabled = false"))
    assert load_settings(path).warnings == []


def test_unknown_alias_lists_the_aliases(write: WriteFile) -> None:
    settings = load_settings(write(ENCRYPTED))
    for call in (settings.model, settings.cache_config, settings.explain):
        with pytest.raises(
            ConfigError, match=r"unknown model alias 'gpt' in .*; known aliases: embed"
        ):
            call("gpt")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("cache_dir", "dir"),
        ("max_cache_size_mb", "max_size_mb"),
        ("ttl", "ttl_seconds"),
        ("mdoe", "mode"),
    ],
)
def test_unknown_key_suggestions(write: WriteFile, typo: str, meant: str) -> None:
    (problem,) = problems_of(write(f"[cache]\n{typo} = 1\n"))
    assert problem.startswith(f'spark.toml: [cache] {typo}: unknown key (did you mean "{meant}"?)')


def test_a_choice_of_the_wrong_type_is_told_the_values_it_may_take(write: WriteFile) -> None:
    path = write(
        """
        [cache]
        mode = 3
        backend = true

        [models.m]
        provider = 1
        model_id = "x"
        api = ["chat"]
        """
    )
    assert problems_of(path) == [
        "spark.toml: [cache] mode: must be one of read_write, read_only, replay, refresh (got 3)",
        "spark.toml: [cache] backend: must be one of disk, redis (got true)",
        "spark.toml: [models.m] provider: must be one of bedrock, echo, gemini, openai (got 1)",
        "spark.toml: [models.m] api: must be one of chat, responses (got an array)",
    ]


def test_sentinels_are_a_list_in_a_file_and_comma_separated_in_a_variable(
    write: WriteFile,
) -> None:
    """A file is strict (a string is not a list of addresses there); a variable is text."""
    path = write('[cache]\nsentinel = "s1:26379,s2:26379"\nservice = "main"\n')
    assert problems_of(path) == [  # (not also "service: is used only with sentinel")
        'spark.toml: [cache] sentinel: expected a list of "host:port" strings, e.g.'
        ' ["s1:26379", "s2:26379"] (got "s1:26379,s2:26379")'
    ]
    with pytest.raises(ConfigError, match="invalid CacheConfig: sentinel: expected a list"):
        CacheConfig(sentinel="s1:26379", service="main")

    listed = write('[cache]\nsentinel = ["s1:26379", "s2:26379"]\nservice = "main"\n')
    env = {"SPARK_CACHE_REDIS_SENTINEL": " s3:26379, s4:26379 "}
    assert load_settings(listed).cache_config().sentinel == ("s1:26379", "s2:26379")
    assert load_settings(listed, env=env).cache_config().sentinel == ("s3:26379", "s4:26379")


def test_a_rule_of_two_settings_is_not_applied_to_a_value_already_refused(
    write: WriteFile,
) -> None:
    """``backend = "redis"`` with a bad url reports the url, not also "needs a url"; the rule
    still holds where both values are known, in a model's cache too."""
    path = write(
        """
        [cache]
        backend = "redis"
        url = "http://cache:6379"

        [models.m]
        provider = "echo"
        model_id = "m"

        [models.m.cache]
        service = "main"
        """
    )
    assert problems_of(path) == [
        "spark.toml: [cache] url: must start with redis://, rediss://, unix:// (got"
        ' "http://cache:6379")',
        'spark.toml: [models.m.cache] service: is used only with sentinel = ["host:port", ...]',
    ]


def test_a_refused_variable_is_not_reported_again_by_a_rule_reading_it(
    write: WriteFile,
) -> None:
    """SPARK_CACHE_URL=http://... was also reported as a missing url (with TOML syntax)."""
    path = write("[cache]\nenabled = true\n")
    env = {"SPARK_CACHE_BACKEND": "redis", "SPARK_CACHE_URL": "http://cache:6379"}
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env=env)
    assert raised.value.problems == [
        'env SPARK_CACHE_URL: must start with redis://, rediss://, unix:// (got "http://cache:6379")'
    ]
    with pytest.raises(ConfigError) as missing:  # no url at all: the rule says so
        load_settings(path, env={"SPARK_CACHE_BACKEND": "redis"})
    assert any("needs a url" in problem for problem in missing.value.problems)
