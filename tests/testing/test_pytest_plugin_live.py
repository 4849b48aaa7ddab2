"""The plugin's report of calls that reached a live provider, as a user meets it: a pytest run
inside a temporary project (``pytester``, in a subprocess) with a testing profile, the real
OpenAI SDK, and a ProviderServer of this (outer) process standing in for the live provider —
to the inner run it is a provider elsewhere, as the real one would be."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spark.testing import ProviderServer

pytest_plugins = ["pytester"]

# The testing profile replays tests/llm_cache; "chat" caches, "raw" never does.
SPARK_TOML = """
[cache]
enabled = true
dir = "dev_cache"

[models.chat]
provider = "openai"
model_id = "gpt-4o"
max_retries = 0

[models.raw]
provider = "openai"
model_id = "gpt-4o-mini"
max_retries = 0

[models.raw.cache]
enabled = false

[profiles.testing.cache]
dir = "tests/llm_cache"
mode = "replay"
"""

HELPERS = """
import asyncio
import pytest
import spark.models


def ask(alias, question="What is Spark?"):
    return asyncio.run(spark.models.from_profile(alias).get_text(question))
"""

WARNING = "spark: * reached a live provider *, though */spark.toml has a testing profile"


@pytest.fixture(scope="module")
def live() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


@pytest.fixture
def project(
    pytester: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    for name, value in live.env().items():
        monkeypatch.setenv(name, value)
    for name in ("ENVIRONMENT", "SPARK_CACHE_MODE", "SPARK_ENABLE_CACHE", "SPARK_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    pytester.makefile(".toml", spark=SPARK_TOML)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    live.reset()
    return pytester


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def record(project: pytest.Pytester, live: ProviderServer) -> None:
    """Record "What is Spark?" for chat into tests/llm_cache, then forget the server's count."""
    project.makepyfile(test_app=HELPERS + "\ndef test_chat():\n    ask('chat')\n")
    assert run(project, "--spark-cache=record").ret == 0
    live.reset()


# -- calls made with the cache off are reported ---------------------------------------------


def test_a_model_without_cache_is_reported_with_the_test_and_the_fix(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    project.makepyfile(
        test_app=HELPERS
        + """
def test_raw():
    ask("raw")
    ask("raw", "again")


def test_quiet():
    pass
"""
    )
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 2
    result.stdout.fnmatch_lines(
        [
            "=*= Spark LLM cache =*=",
            "spark: 2 calls reached a live provider (openai: 2), though */spark.toml has a"
            " testing profile",
            "  in test_app.py::test_raw",
            "  because those models do not use the testing profile's cache (built without"
            " spark.models.from_profile, with a cache_config of their own, or cache off)",
            "  to replay the recorded answers instead: build them with"
            " spark.models.from_profile(ALIAS); to record them on purpose:"
            " `pytest --spark-cache=record`",
        ]
    )
    assert "test_quiet" not in result.stdout.str().split("Spark LLM cache")[1]


def test_the_session_switch_off_is_named_as_the_cause(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    record(project, live)
    result = run(project, "--spark-cache=off")
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 1, "the recorded answer was not used: the cache is off"
    result.stdout.fnmatch_lines(
        [
            "spark: 1 call reached a live provider (openai: 1), though */spark.toml has a"
            " testing profile",
            "  in test_app.py::test_chat",
            "  because --spark-cache=off turns the cache off",
            "  to replay the recorded answers instead: run without --spark-cache=off;*",
        ]
    )


def test_spark_enable_cache_false_is_named_as_the_cause(
    project: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(project, live)
    monkeypatch.setenv("SPARK_ENABLE_CACHE", "false")
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            WARNING,
            "  in test_app.py::test_chat",
            "  because SPARK_ENABLE_CACHE=false turns the cache off",
            "  to replay the recorded answers instead: unset SPARK_ENABLE_CACHE;*",
        ]
    )


def test_a_marker_that_turns_the_cache_off_is_named(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    project.makepyfile(
        test_app=HELPERS
        + """
@pytest.mark.spark_cache(mode="off")
def test_live_on_purpose():
    ask("chat")
"""
    )
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            WARNING,
            "  in test_app.py::test_live_on_purpose",
            '  because @pytest.mark.spark_cache(mode="off") turns the cache off there',
        ]
    )


def test_calls_outside_any_test_are_counted(project: pytest.Pytester, live: ProviderServer) -> None:
    project.makeconftest(HELPERS + '\nask("raw")\n')  # at collection
    project.makepyfile(test_app="def test_nothing():\n    pass\n")
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["spark: 1 call reached a live provider (openai: 1), though *", "  because *"]
    )
    assert "  in test_" not in result.stdout.str()


def test_many_tests_are_listed_briefly(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app=HELPERS
        + """
@pytest.mark.parametrize("n", range(5))
def test_raw(n):
    ask("raw", f"question {n}")
"""
    )
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "spark: 5 calls reached a live provider (openai: 5), though *",
            "  in test_app.py::test_raw[[]0[]], test_app.py::test_raw[[]1[]],"
            " test_app.py::test_raw[[]2[]] (and 2 more)",
        ]
    )


# -- no report when nothing reached a provider, or only a local fake did -------------------


def test_only_cache_hits_report_nothing(project: pytest.Pytester, live: ProviderServer) -> None:
    record(project, live)
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 0
    result.stdout.fnmatch_lines(["*tests/llm_cache: 1 hits, 0 misses, 0 entries recorded*"])
    assert "reached a live provider" not in result.stdout.str()


def test_the_offline_echo_provider_is_not_a_live_provider(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import asyncio
        from spark.models.echo import EchoModel


        def test_echo():
            assert asyncio.run(EchoModel().get_text("Hi"))
        """
    )
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    assert "reached a live provider" not in result.stdout.str()


def test_calls_to_a_provider_server_of_the_test_process_are_not_reported(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    project.makepyfile(
        test_app="""
        import asyncio


        def test_against_the_fake(provider_server):
            model = provider_server.model("openai", "gpt-4o", max_retries=0)
            assert asyncio.run(model.get_text("Hi"))
            assert provider_server.count("openai") == 1
        """
    )
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 0
    assert "reached a live provider" not in result.stdout.str()


# -- recording on purpose is reported without a warning -----------------------------------


def test_spark_cache_mode_read_write_records_without_a_warning(
    project: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_MODE", "read_write")
    project.makepyfile(test_app=HELPERS + "\ndef test_chat():\n    ask('chat')\n")
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "spark: 1 call reached a live provider (openai: 1) to record answers"
            " (SPARK_CACHE_MODE=read_write)"
        ]
    )
    assert "has a testing profile" not in result.stdout.str()


def test_recording_and_unexpected_calls_are_told_apart(
    project: pytest.Pytester, live: ProviderServer
) -> None:
    project.makepyfile(
        test_app=HELPERS
        + """
def test_raw():
    ask("raw")


def test_chat():
    ask("chat")
"""
    )
    result = run(project, "--spark-cache=record")
    assert result.ret == 0, result.stdout.str()
    # Under --spark-cache=record every call is a recording one, the uncached model's included.
    result.stdout.fnmatch_lines(
        [
            "spark: 2 calls reached a live provider (openai: 2) to record answers"
            " (--spark-cache=record)"
        ]
    )
    mixed = HELPERS + (
        "\ndef test_raw():\n    ask('raw')\n\n\n"
        "@pytest.mark.spark_cache(mode='record')\n"
        "def test_new():\n    ask('chat', 'new question')\n"
    )
    project.makepyfile(test_app=mixed)
    result = run(project)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "spark: 1 call reached a live provider (openai: 1) to record answers"
            ' (@pytest.mark.spark_cache(mode="record") in test_app.py::test_new)',
            "spark: 1 call reached a live provider (openai: 1), though * has a testing profile",
            "  in test_app.py::test_raw",
        ]
    )


def test_no_testing_profile_no_report(
    pytester: pytest.Pytester, live: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in live.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    pytester.makefile(".toml", spark=SPARK_TOML.split("[profiles.testing.cache]")[0])
    pytester.makepyfile(test_app=HELPERS + "\ndef test_raw():\n    ask('raw')\n")
    live.reset()
    result = run(pytester)
    assert result.ret == 0, result.stdout.str()
    assert live.count("openai") == 1
    assert "reached a live provider" not in result.stdout.str()
