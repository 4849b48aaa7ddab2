"""``spark cache explain`` and ``spark cache prune --unused``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from spark.cache import CacheConfig, CacheManager, generate_key


def test_explain_a_hit_and_a_miss(
    spark: Callable[..., Result], fill: Callable[..., list[str]], cache_dir: Path
) -> None:
    [key] = fill(1)
    hit = spark("cache", "explain", "--model", "gpt", '{"messages": "question 0"}')
    assert hit.exit_code == 0, hit.output
    assert hit.output.startswith("HIT: ")
    assert key in hit.output
    assert "encryption  none" in hit.output
    assert "response    not shown (--show-values prints it)" in hit.output
    assert "answer 0" not in hit.output, "the stored answer only with --show-values"
    shown = spark(
        "cache", "explain", "--model", "gpt", "--show-values", '{"messages": "question 0"}'
    )
    assert '"text": "answer 0"' in shown.stdout
    miss = spark(
        "cache", "explain", "--model", "gpt", '{"messages": "question 1", "temperature": 0.5}'
    )
    assert miss.exit_code == 1
    assert "no cache entry for openai/gpt-4o-mini" in miss.output
    assert key in miss.output, "names the nearest entry"
    assert "messages[0].content changed" in miss.output
    assert "body.temperature added: 0.5" in miss.output


def test_explain_of_an_encrypted_cache_names_fields_and_shows_digests(
    spark: Callable[..., Result], fill: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    [key] = fill(1, encrypt=True)
    request = '{"messages": "question 1", "temperature": 0.5}'
    miss = spark("cache", "explain", "--profile", "vault", "--model", "gpt", request)
    assert miss.exit_code == 1
    assert key in miss.output, "names the nearest entry"
    assert "messages[0].content changed (sha256:" in miss.output
    assert "body.temperature added (0.5)" in miss.output
    assert "question" not in miss.output
    found = spark(
        "cache",
        "explain",
        "--profile",
        "vault",
        "--model",
        "gpt",
        "--json",
        '{"prompt": "question 0"}',
    )
    body: dict[str, Any] = json.loads(found.stdout)
    assert (found.exit_code, body["hit"], body["response"]) == (0, True, None)
    assert body["entry"]["encryption"] == "fernet"
    assert "answer 0" not in found.output
    shown = spark(
        "cache", "explain", "--profile", "vault", "--model", "gpt", "--show-values", request
    )
    assert "messages[0].content changed" in shown.stdout
    assert "sha256:" not in shown.stdout
    assert "--show-values prints the text of encrypted cache entries" in shown.stderr


def test_explain_json_and_bad_requests(
    spark: Callable[..., Result], fill: Callable[..., list[str]], tmp_path: Path
) -> None:
    fill(1)
    request = tmp_path / "req.json"
    request.write_text(
        json.dumps({"provider": "openai", "model_id": "gpt-4o-mini", "prompt": "question 0"})
    )
    result = spark("cache", "explain", f"@{request}", "--json")
    body: dict[str, Any] = json.loads(result.stdout)
    assert (result.exit_code, body["hit"], body["explanation"]) == (0, True, None)
    no_model = spark("cache", "explain", '{"messages": "x"}')
    assert no_model.exit_code == 1
    assert "names no provider and model" in no_model.output
    assert "Traceback" not in no_model.output
    not_json = spark("cache", "explain", "{nope")
    assert not_json.exit_code == 1
    assert "REQUEST is not JSON" in not_json.output
    bad_param = spark(
        "cache",
        "explain",
        '{"provider": "openai", "model_id": "m", "messages": "x", "tmperature": 1}',
    )
    assert bad_param.exit_code == 1
    assert bad_param.stderr.splitlines() == [
        "error: the request: unknown parameter 'tmperature' for OpenAI chat completions; did you"
        " mean 'temperature'? (fields the SDK does not know go in extra_body={...})",
        "Fix REQUEST: its keys are the arguments of get_text.",
    ]


async def test_prune_unused_after_a_recorded_run(
    spark: Callable[..., Result], fill: Callable[..., list[str]], cache_dir: Path
) -> None:
    refused = spark("cache", "prune", "--unused", "--yes")
    assert refused.exit_code == 1
    assert "record the test suite first" in refused.output
    fill(3)
    config = CacheConfig(enabled=True, cache_dir=cache_dir)
    bound = CacheManager(cache_dir, config).bind(config)
    assert bound.lookup(bound.chat_request("openai", "gpt-4o-mini", "question 1")) is not None
    bound.manager.write_usage_record()
    result = spark("cache", "prune", "--unused", "--yes")
    assert result.exit_code == 0, result.output
    assert "Removed 2 unused entries" in result.output
    assert CacheManager(cache_dir).get_stats()["total_entries"] == 1


async def test_prune_asks_first_with_json_too(
    spark: Callable[..., Result], fill: Callable[..., list[str]], cache_dir: Path
) -> None:
    fill(3)
    config = CacheConfig(enabled=True, cache_dir=cache_dir)
    CacheManager(cache_dir, config).write_usage_record()  # a run that used none of them

    asked = spark("cache", "prune", "--unused", "--json", input="n\n")

    assert asked.exit_code == 1
    assert "did not use?" in asked.stderr
    assert CacheManager(cache_dir).get_stats()["total_entries"] == 3
    pruned = spark("cache", "prune", "--unused", "--json", "--yes")
    assert json.loads(pruned.stdout)["removed"] == 3
