"""The plugin's defaults, as a user meets them: a pytest run inside a temporary project
(``pytester``, in a subprocess) with a spark.toml, the real OpenAI SDK and a ProviderServer
standing in for the live provider."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from spark.testing import ProviderServer

pytest_plugins = ["pytester"]

# development (the file's default) caches in dev_cache and calls the provider on a miss;
# testing replays tests/llm_cache. No entry is recorded: a replay can only fail.
SPARK_TOML = """
[spark]
default_profile = "development"

[cache]
enabled = true
dir = "dev_cache"

[models.chat]
provider = "openai"
model_id = "gpt-4o"
max_retries = 0

[profiles.development.cache]
mode = "read_write"
{testing}
"""

TESTING_PROFILE = """
[profiles.testing.cache]
dir = "tests/llm_cache"
mode = "replay"
"""

ASKS = """
import asyncio
import spark.models


def test_asks():
    model = spark.models.from_profile("chat")
    assert asyncio.run(model.get_text("What is Spark?")).startswith("Answer")
"""


@pytest.fixture(scope="module")
def live() -> Iterator[ProviderServer]:
    """The "live provider" of the inner runs (a real SDK talks to it over HTTP)."""
    with ProviderServer() as server:
        yield server


@pytest.fixture
def project(
    pytester: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A project with a testing profile; its provider variables point at ``live``."""
    for name, value in live.env().items():
        monkeypatch.setenv(name, value)
    pytester.makefile(".toml", spark=SPARK_TOML.format(testing=TESTING_PROFILE))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    live.reset()
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


# -- the testing profile is the default --------------------------------------------------


def test_without_environment_the_testing_profile_replays(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    project.makepyfile(test_app=ASKS)
    result = run(project)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "spark: */spark.toml, profile testing (ENVIRONMENT is unset: the default under pytest)",
            "*CacheMissError: replay mode: no cache entry for openai/gpt-4o*tests/llm_cache*",
        ]
    )
    assert live.count("openai") == 0, "the suite must not reach the provider"
    assert "reached a live provider" not in result.stdout.str()


def test_an_explicit_environment_wins_and_its_live_calls_are_reported(
    project: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    project.makepyfile(test_app=ASKS)
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 1
    spark_toml = project.path / "spark.toml"
    result.stdout.fnmatch_lines(
        [
            "spark: */spark.toml, profile development (ENVIRONMENT)",
            "*dev_cache: 0 hits, 1 misses, 1 entries recorded*",
            f"spark: 1 call reached a live provider (openai: 1), though {spark_toml} has a"
            " testing profile",
            "  in test_app.py::test_asks",
            "  because ENVIRONMENT=development selects profile development",
            "  to replay the recorded answers instead: unset ENVIRONMENT (or set"
            " ENVIRONMENT=testing); to record them on purpose:"
            " `ENVIRONMENT=testing pytest --spark-cache=record`",
        ]
    )


def test_a_project_without_testing_profile_keeps_its_default(
    pytester: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in live.env().items():
        monkeypatch.setenv(name, value)
    pytester.makefile(".toml", spark=SPARK_TOML.format(testing=""))
    pytester.makepyfile(test_app=ASKS)
    live.reset()
    result = run(pytester)
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 1
    result.stdout.fnmatch_lines(
        ["spark: */spark.toml, its default profile (ENVIRONMENT is unset, no testing profile)"]
    )
    assert "reached a live provider" not in result.stdout.str()


def test_a_testing_profile_with_problems_is_still_the_default(
    pytester: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its problems fail the tests; falling back to the live default would hide them."""
    for name, value in live.env().items():
        monkeypatch.setenv(name, value)
    broken = TESTING_PROFILE + 'encrypt = true\nkey_env = ""\n'
    pytester.makefile(".toml", spark=SPARK_TOML.format(testing=broken))
    pytester.makepyfile(test_app=ASKS)
    live.reset()
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*profile testing (ENVIRONMENT is unset*",
            "ConfigError: invalid Spark configuration (1 problem):",
            "  spark.toml: [[]profiles.testing.cache[]] encrypt: true but there is no key source*",
        ]
    )
    assert "load_settings(" not in result.stdout.str(), "one message, not a traceback"
    assert live.count("openai") == 0


def test_the_default_reaches_spark_subprocesses(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import json, os, subprocess, sys

        def test_environment():
            assert os.environ["ENVIRONMENT"] == "testing"
            shown = subprocess.run(
                [sys.executable, "-m", "spark", "config", "show", "--json"],
                capture_output=True, text=True, check=True,
            )
            assert json.loads(shown.stdout)["profile"] == "testing"
        """
    )
    result = run(project)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def test_the_default_is_undone_when_the_session_ends(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import os

        def test_environment():
            assert os.environ["ENVIRONMENT"] == "testing"
        """
    )
    result = project.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "ENVIRONMENT" not in os.environ


def test_a_session_on_testing_that_records_says_its_calls_went_live_without_a_warning(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    project.makepyfile(test_app=ASKS)
    result = run(project, "--spark-cache=record")
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 1
    result.stdout.fnmatch_lines(
        [
            "*tests/llm_cache: 0 hits, 1 misses, 1 entries recorded*",
            "spark: 1 call reached a live provider (openai: 1) to record answers"
            " (--spark-cache=record)",
        ]
    )
    assert "has a testing profile" not in result.stdout.str(), "recording is no mistake"
    replayed = run(project)
    assert replayed.ret == 0, replayed.stdout.str()
    assert live.count("openai") == 1, "the replay made no provider call"
    replayed.stdout.fnmatch_lines(["*tests/llm_cache: 1 hits, 0 misses, 0 entries recorded*"])
    assert "reached a live provider" not in replayed.stdout.str()


def test_a_marked_test_that_records_is_reported_in_a_replaying_session(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    project.makepyfile(
        test_app="""
        import asyncio
        import pytest
        import spark.models
        from spark.errors import CacheMissError


        def ask():
            return asyncio.run(spark.models.from_profile("chat").get_text("What is Spark?"))


        def test_1_replays():
            with pytest.raises(CacheMissError):
                ask()


        @pytest.mark.spark_cache(mode="record")
        def test_2_records():
            assert ask().startswith("Answer")
        """
    )
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 1
    result.stdout.fnmatch_lines(
        [
            "*tests/llm_cache: 0 hits, 2 misses, 1 entries recorded*",
            "spark: 1 call reached a live provider (openai: 1) to record answers"
            ' (@pytest.mark.spark_cache(mode="record") in test_app.py::test_2_records)',
        ]
    )
    assert "has a testing profile" not in result.stdout.str()


# -- fixtures are registered by the plugin ------------------------------------------------

PROVIDER_SERVER_TEST = """
import openai


def test_provider_server(provider_server):
    client = openai.OpenAI(
        base_url=provider_server.openai_base_url, api_key="test", max_retries=0
    )
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert provider_server.count("openai") == 1
"""


def test_provider_server_needs_no_pytest_plugins_line(project: pytest.Pytester) -> None:
    project.makepyfile(test_server=PROVIDER_SERVER_TEST)
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)


def test_an_existing_pytest_plugins_line_still_works(project: pytest.Pytester) -> None:
    project.makeconftest('pytest_plugins = ["spark.testing.fixtures"]')
    project.makepyfile(test_server=PROVIDER_SERVER_TEST)
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=1)


# -- spark_cache describes the active profile's cache -------------------------------------


def test_spark_cache_describes_the_testing_profile(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_cache="""
        from pathlib import Path
        import pytest
        import spark.models

        ROOT = Path(__file__).parent


        def test_the_profile_cache(spark_cache):
            assert spark_cache.profile == "testing"
            assert spark_cache.mode == "replay"
            assert spark_cache.dir == ROOT / "tests" / "llm_cache"
            model = spark.models.from_profile("chat")
            assert spark_cache.manager() is model.cache_manager


        @pytest.mark.spark_cache(mode="off")
        def test_marker_off(spark_cache):
            assert spark_cache.mode == "off"
            assert spark_cache.dir == ROOT / "tests" / "llm_cache"


        @pytest.mark.spark_cache(mode="record", dir="elsewhere")
        def test_marker_record_elsewhere(spark_cache):
            assert spark_cache.mode == "read_write"
            assert spark_cache.dir == Path.cwd() / "elsewhere"
            assert spark_cache.manager().cache_dir == Path.cwd() / "elsewhere"
        """
    )
    result = run(project, "-v")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=3)


def test_spark_cache_follows_the_session_switch(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_cache="""
        def test_off(spark_cache):
            assert (spark_cache.profile, spark_cache.mode) == ("testing", "off")
        """
    )
    result = run(project, "--spark-cache=off")
    assert result.ret == 0, result.stdout.str()


def test_an_unknown_marker_mode_fails_the_test_in_one_line(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_cache="""
        import pytest

        @pytest.mark.spark_cache(mode="of")
        def test_typo(spark_cache):
            pass
        """
    )
    result = run(project)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.spark_cache(mode='of'): unknown mode;"
            " use one of off, record, refresh, replay*"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_spark_toml_with_problems_does_not_break_the_session(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".toml", spark="[cache]\nenabeld = true\n")
    pytester.makepyfile(
        test_app="""
        import pytest
        import spark.models
        from spark.errors import ConfigError

        def test_config_error():
            with pytest.raises(ConfigError, match="enabeld"):
                spark.models.from_profile("chat")
        """
    )
    result = run(pytester)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
