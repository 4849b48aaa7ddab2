"""``spark ask`` and ``spark demo`` with the real SDKs against the local provider server."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from spark.testing import ProviderServer

Invoke = Callable[..., Result]

pytest.importorskip("spark.models.openai", reason="the OpenAI model is not written yet")


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    """One local provider server for the module."""
    with ProviderServer() as running:
        yield running


@pytest.fixture
def ask_project(tmp_path: Path, server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spark.toml whose ``gpt`` alias talks to the local server."""
    server.reset()
    directory = tmp_path / "ask"
    directory.mkdir()
    (directory / "spark.toml").write_text(
        f"""\
[cache]
enabled = true
dir = "cache"

[models.gpt]
provider = "openai"
model_id = "gpt-4o-mini"
base_url = "{server.openai_base_url}"
max_retries = 0

[profiles.vault.cache]
encrypt = true
"""
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cli")
    monkeypatch.chdir(directory)
    return directory


def test_ask_misses_then_hits(spark: Invoke, ask_project: Path, server: ProviderServer) -> None:
    first = spark("ask", "What is the capital of France?", "--model", "gpt")
    assert first.exit_code == 0, first.output
    text, status = first.stdout.rstrip("\n").rsplit("\n", 1)
    assert text.strip()
    assert status.startswith("cached: no · ")
    assert " in / " in status
    assert "out tokens" in status
    assert "cost $0.0" in status
    second = spark("ask", "What is the capital of France?", "--model", "gpt", "--json")
    answer = json.loads(second.stdout)
    assert answer["cached"] is True
    assert answer["text"] == text
    assert answer["cost_usd"] == 0.0
    assert answer["saved_usd"] > 0
    assert server.count(provider="openai") == 1
    assert len(list((ask_project / "cache").rglob("*.json"))) == 1


def test_ask_no_cache_and_system_prompt(
    spark: Invoke, ask_project: Path, server: ProviderServer
) -> None:
    for _ in range(2):
        result = spark("ask", "Hi", "--model", "gpt", "--system", "Be brief.", "--no-cache")
        assert result.exit_code == 0, result.output
        assert "cached: no" in result.stdout
    assert server.count(provider="openai") == 2
    assert not (ask_project / "cache").exists()


def test_ask_reads_the_prompt_from_stdin(spark: Invoke, ask_project: Path) -> None:
    result = spark("ask", "-", "--model", "gpt", "--json", input="From stdin?\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"]


def test_ask_errors_are_one_line(spark: Invoke, ask_project: Path, server: ProviderServer) -> None:
    unknown = spark("ask", "Hi", "--model", "gpt5")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: unknown model alias 'gpt5'; known aliases: gpt\n")
    profile = spark("ask", "Hi", "--model", "gpt", "--profile", "prod")
    assert profile.exit_code == 1
    assert "unknown profile" in profile.stderr
    no_key = spark("ask", "Hi", "--model", "gpt", "--profile", "vault")
    assert no_key.exit_code == 1
    assert no_key.stderr.startswith("error: cache encryption is on but no key was found")
    assert "SPARK_CACHE_KEY" in no_key.stderr
    server.fail_next(401, provider="openai")
    refused = spark("ask", "Hello?", "--model", "gpt")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: ")
    assert "API key" in refused.stderr
    missing_arg = spark("ask", "Hi")
    assert missing_arg.exit_code == 2
    for result in (unknown, profile, no_key, refused, missing_arg):
        assert "Traceback" not in result.output


def test_demo_prints_latency_hit_rate_and_dollars_saved(spark: Invoke) -> None:
    pytest.importorskip("spark.models.bedrock", reason="the Bedrock model is not written yet")
    pytest.importorskip("spark.models.gemini", reason="the Gemini model is not written yet")
    result = spark("demo", "--questions", "3", "--latency", "0.05", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    answers = report["answers"]
    assert [a["provider"] for a in answers] == ["openai", "bedrock", "gemini"] * 2
    assert [a["cached"] for a in answers] == [False] * 3 + [True] * 3
    assert (report["hits"], report["misses"], report["hit_rate"]) == (3, 3, 0.5)
    saved = sum(a["cost_usd"] for a in answers[3:])
    assert saved > 0
    assert report["saved_usd"] == pytest.approx(saved)
    assert report["second_round_median_s"] == statistics.median(a["latency_s"] for a in answers[3:])
    assert report["second_round_median_s"] < 0.05 <= report["first_round_median_s"]


def test_demo_human_output(spark: Invoke) -> None:
    pytest.importorskip("spark.models.bedrock", reason="the Bedrock model is not written yet")
    pytest.importorskip("spark.models.gemini", reason="the Gemini model is not written yet")
    result = spark("demo", "-n", "2", "--latency", "0.4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Round 1, cold cache:" in lines
    assert sum(" miss " in line for line in lines) == 2
    assert sum(" hit " in line for line in lines) == 2
    assert "Hit rate: 50.0% (2 hits, 2 misses)" in lines
    saved = next(line for line in lines if line.startswith("Dollars saved: $"))
    assert float(saved.removeprefix("Dollars saved: $")) > 0
    median = next(line for line in lines if line.startswith("Second round median latency: "))
    assert "µs" in median or " ms " in median
