"""``spark ask`` and ``spark demo`` with the real SDKs against the local provider server."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from spark.cli.ask import answer_text
from spark.testing import ProviderServer
from spark.types import ModelResponse

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
    assert re.search(r"cost <?\$\d+\.\d{4}$", status), status  # the one money format
    second = spark("ask", "What is the capital of France?", "--model", "gpt", "--json")
    answer = json.loads(second.stdout)
    assert answer["cached"] is True
    assert answer["text"] == text
    assert answer["cost_usd"] == 0.0
    assert answer["saved_usd"] > 0
    assert server.count(provider="openai") == 1
    assert len(list((ask_project / "cache").rglob("*.json"))) == 1


def test_ask_shows_a_refusal_as_one(
    spark: Invoke, ask_project: Path, server: ProviderServer
) -> None:
    server.queue_refusal("I can't help with that.")
    refused = spark("ask", "Pick this lock", "--model", "gpt")
    assert refused.exit_code == 0, refused.output
    assert refused.stdout.splitlines()[0] == "(refused) I can't help with that."
    again = json.loads(spark("ask", "Pick this lock", "--model", "gpt", "--json").stdout)
    assert (again["cached"], again["text"], again["refusal"]) == (
        True,
        "",
        "I can't help with that.",
    )


def test_ask_no_cache_and_system_prompt(
    spark: Invoke, ask_project: Path, server: ProviderServer
) -> None:
    for _ in range(2):
        result = spark("ask", "Hi", "--model", "gpt", "--system", "Be brief.", "--no-cache")
        assert result.exit_code == 0, result.output
        assert "cached: no" in result.stdout
    assert server.count(provider="openai") == 2
    assert not (ask_project / "cache").exists()


def test_ask_takes_the_model_id_of_an_alias(
    spark: Invoke, ask_project: Path, server: ProviderServer
) -> None:
    result = spark("ask", "Which alias?", "--model", "gpt-4o-mini", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["alias"], answer["model_id"]) == ("gpt", "gpt-4o-mini")
    assert server.count(provider="openai") == 1
    unaliased = spark("ask", "Hi", "--model", "gpt-4.1-nano")
    assert unaliased.exit_code == 1
    assert unaliased.stderr.startswith("error: --model gpt-4.1-nano: no alias in ")
    assert 'model_id = "gpt-4.1-nano"' in unaliased.stderr


def test_ask_reads_the_prompt_from_stdin(spark: Invoke, ask_project: Path) -> None:
    result = spark("ask", "-", "--model", "gpt", "--json", input="From stdin?\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"]


def test_ask_errors_are_one_line(spark: Invoke, ask_project: Path, server: ProviderServer) -> None:
    unknown = spark("ask", "Hi", "--model", "gpt5")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("error: --model gpt5: no alias in ")
    suggested = unknown.stderr.split("Did you mean ", 1)[1].split("?", 1)[0]
    assert {"gpt", "gpt-5"} <= set(suggested.replace(" or ", ", ").split(", "))  # alias and id
    profile = spark("ask", "Hi", "--model", "gpt", "--profile", "prod")
    assert profile.exit_code == 1
    assert "unknown profile" in profile.stderr
    no_key = spark("ask", "Hi", "--model", "gpt", "--profile", "vault")
    assert no_key.exit_code == 1
    assert no_key.stderr.startswith("error: cache encryption is on but no key was found")
    assert "SPARK_CACHE_KEY" in no_key.stderr
    assert "No entry is sealed yet: make a key with `spark cache keygen`" in no_key.stderr
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
    assert report["backend"] == "provider_server"
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


# A base install: the provider SDKs cannot be imported (a real subprocess, so nothing the test
# session already imported helps).
_BASE_INSTALL_SPARK = """
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("openai", "boto3", "botocore") or name.startswith("google.genai"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, _Blocked())
from spark.cli import main
sys.argv = ["spark", *sys.argv[1:]]
main()
"""


def base_install_spark(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BASE_INSTALL_SPARK, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_on_a_base_install_asks_echo_model_and_hits_in_round_two(tmp_path: Path) -> None:
    done = base_install_spark(tmp_path, "demo", "-n", "3", "--latency", "0.05", "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    answers = report["answers"]
    assert report["backend"] == "echo"
    assert [a["provider"] for a in answers] == ["echo"] * 6
    assert [a["cached"] for a in answers] == [False] * 3 + [True] * 3
    assert answers[0]["text"] == "Echo: What is the capital of France?"
    assert (report["hits"], report["misses"], report["hit_rate"]) == (3, 3, 0.5)
    assert report["saved_usd"] > 0  # priced as gpt-4o-mini
    assert report["second_round_median_s"] < 0.05 <= report["first_round_median_s"]
    assert "Traceback" not in done.stderr


def test_demo_on_a_base_install_says_what_is_missing(tmp_path: Path) -> None:
    done = base_install_spark(tmp_path, "demo", "-n", "2", "--latency", "0")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Asking 2 questions twice of EchoModel, Spark's offline model")
    assert "Not installed: openai, boto3, google-genai;" in lines[0]
    assert "pip install -e '.[all]'" in lines[0]
    round_two = lines[lines.index("Round 2, the same questions again:") + 1 :][:2]
    assert all(" hit " in line for line in round_two)
    assert "Hit rate: 50.0% (2 hits, 2 misses)" in lines
    assert any(line.endswith("(EchoModel priced as gpt-4o-mini)") for line in lines)
    assert done.stderr == ""


def test_ask_says_what_an_answer_without_text_holds() -> None:
    image = {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}}
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed"}

    assert answer_text(ModelResponse(text="", provider_output=[image, search])) == (
        "(no text: the answer holds inline_data, web_search_call; --json prints it whole)"
    )
    assert answer_text(ModelResponse(text="Lisbon", provider_output=[search])) == "Lisbon"
    assert answer_text(ModelResponse(text="", refusal="No.")) == "(refused) No."


def test_cache_trouble_is_a_warning_line_and_the_answer_comes(
    spark: Invoke, ask_project: Path
) -> None:
    (ask_project / "afile").write_text("")
    toml = ask_project / "spark.toml"
    toml.write_text(toml.read_text().replace('dir = "cache"', 'dir = "afile/cache"'))
    result = spark("ask", "Hi", "--model", "gpt")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip()
    lines = result.stderr.splitlines()
    assert lines, "the write failure is reported"
    assert all(line.startswith("warning: ") for line in lines), lines


def test_ask_without_a_spark_toml_says_so_and_how_to_make_one(
    spark: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It offered 'Did you mean' guesses (the name typed among them, in a new order each run)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPARK_CONFIG", raising=False)
    result = spark("ask", "Hi", "--model", "gpt-4o")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: --model gpt-4o: no spark.toml was found (here or in a parent directory), so "
        "there are no aliases",
        "Create one with `spark config init`, or name it with --config or SPARK_CONFIG.",
    ]
