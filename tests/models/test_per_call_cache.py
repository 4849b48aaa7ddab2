"""Per-call cache controls: ``cache_mode=`` and ``cache_ttl_seconds=`` for one call, on every
call kind; neither enters the key nor reaches the provider (docs/caching.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from spark.cache import CacheConfig
from spark.errors import ConfigError
from spark.testing import ProviderServer

Models = Callable[..., Any]
EMBEDDER = {"openai": "text-embedding-3-small"}


def entries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.parent.parent.parent == root)


class Answer(BaseModel):
    word: str


async def text(model: Any, kind: str, prompt: str, **controls: Any) -> Any:
    """One call of ``kind`` with the per-call ``controls``."""
    if kind == "get_text":
        return await model.get_text(prompt, **controls)
    if kind == "generate":
        return (await model.generate(prompt, **controls)).text
    if kind == "stream":
        return "".join([chunk async for chunk in model.stream_text(prompt, **controls)])
    if kind == "get_json":
        return await model.get_json(Answer, prompt, **controls)
    return (await model.embed(prompt, **controls)).embeddings


KINDS = ["get_text", "generate", "stream", "get_json", "embed"]


def model_for(models: Models, kind: str, **options: Any) -> Any:
    return models(
        "openai", "text-embedding-3-small" if kind == "embed" else "gpt-4o-mini", **options
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_off_neither_reads_nor_writes_and_is_a_bypass(
    models: Models, server: ProviderServer, cache_config: CacheConfig, kind: str
) -> None:
    model = model_for(models, kind)
    await text(model, kind, "What is new?")  # stored
    stored = entries(cache_config.resolved_dir)
    before = model.cache_manager.counters.bypasses
    await text(model, kind, "What is new?", cache_mode="off")
    await text(model, kind, "Something else", cache_mode="off")
    assert server.count() == 3  # the stored answer was not read
    assert entries(cache_config.resolved_dir) == stored  # nothing new written
    assert model.cache_manager.counters.bypasses == before + 2
    for request in server.requests:
        assert "cache_mode" not in json.dumps(request.body)
        assert "cache_ttl" not in json.dumps(request.body)


@pytest.mark.parametrize("kind", KINDS)
async def test_what_a_call_past_the_cache_costs_is_spent(
    models: Models, server: ProviderServer, kind: str
) -> None:
    """A bypass is no miss, but the provider was paid: "spent" counts it, here and in the
    ledger (docs/costs.md, "The three sums")."""
    model = model_for(models, kind)
    await text(model, kind, "What is new?")  # a miss: paid
    manager = model.cache_manager
    spent = manager.get_stats()["spent_cost_usd"]
    assert spent > 0
    misses = manager.counters.misses
    await text(model, kind, "What is new?", cache_mode="off")
    stats = manager.get_stats()
    assert stats["spent_cost_usd"] == pytest.approx(2 * spent)
    assert stats["all_processes"]["spent_cost_usd"] == pytest.approx(2 * spent)
    assert manager.counters.misses == misses, "a bypass is not a miss"


async def test_a_call_on_provider_held_state_is_spent(models: Models) -> None:
    model = models("openai", "gpt-4o-mini", api="responses")
    paid = await model.generate("Go on", previous_response_id="resp_1")  # made past the cache
    assert paid.cost_usd
    assert model.cache_manager.get_stats()["spent_cost_usd"] == pytest.approx(paid.cost_usd)


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_calls_and_rewrites(
    models: Models, server: ProviderServer, cache_config: CacheConfig, kind: str
) -> None:
    model = model_for(models, kind)
    await text(model, kind, "Latest?")
    (path,) = entries(cache_config.resolved_dir)
    first_write = path.stat().st_mtime_ns
    misses = model.cache_manager.counters.misses
    time.sleep(0.01)
    server.answer_chars = 120  # the provider's answer changed
    fresh = await text(model, kind, "Latest?", cache_mode="refresh")
    assert server.count() == 2
    assert model.cache_manager.counters.misses == misses + 1  # a refresh is a miss that rewrites
    assert entries(cache_config.resolved_dir) == [path]
    assert await text(model, kind, "Latest?") == fresh  # the rewritten entry is what hits now
    assert server.count() == 2
    if kind not in ("embed", "get_json"):  # (their answers do not change with answer_chars)
        assert path.stat().st_mtime_ns != first_write


@pytest.mark.parametrize("kind", KINDS)
async def test_read_only_serves_hits_and_stores_nothing(
    models: Models, server: ProviderServer, cache_config: CacheConfig, kind: str
) -> None:
    model = model_for(models, kind)
    answer = await text(model, kind, "Stored")
    assert await text(model, kind, "Stored", cache_mode="read_only") == answer
    assert server.count() == 1
    await text(model, kind, "Not stored", cache_mode="read_only")
    assert server.count() == 2
    assert len(entries(cache_config.resolved_dir)) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_short_ttl_for_one_call(
    models: Models, server: ProviderServer, cache_config: CacheConfig, kind: str
) -> None:
    model = model_for(models, kind)  # the model's TTL: a day
    await text(model, kind, "News")
    time.sleep(0.3)
    await text(model, kind, "News", cache_ttl_seconds=0.2)  # older than 0.2 s: stale, a miss
    assert server.count() == 2
    (path,) = entries(cache_config.resolved_dir)
    head = json.loads(path.read_bytes()[: path.read_bytes().index(b',"payload":')] + b"}")
    assert head["expires_at"] - head["created_at"] == pytest.approx(0.2)  # written with it
    await text(model, kind, "News")  # the model's own TTL next call: fresh enough, a hit
    assert server.count() == 2


async def test_controls_are_not_part_of_the_key(models: Models) -> None:
    model = models("openai", "gpt-4o-mini")
    plain = model.cache_key("Hi")
    assert model.cache_key("Hi", cache_mode="refresh", cache_ttl_seconds=5) == plain
    embedder = models("openai", "text-embedding-3-small")
    assert embedder.embedding_cache_key("Hi", cache_mode="off") == embedder.embedding_cache_key(
        "Hi"
    )


async def test_a_mode_caches_one_call_of_a_model_without_a_cache(
    server: ProviderServer, tmp_path: Path
) -> None:
    off = CacheConfig(enabled=False, cache_dir=tmp_path / "c")
    model = server.model("openai", "gpt-4o-mini", cache_config=off, api_key="sk-x")
    await model.get_text("Keep this one", cache_mode="read_write")
    await model.get_text("Keep this one", cache_mode="read_write")
    await model.get_text("Keep this one")  # the model's rule: no cache
    await model.get_text("Keep this one", cache_ttl_seconds=60)  # a TTL alone turns nothing on
    assert server.count() == 3
    assert len(entries(tmp_path / "c")) == 1
    await model.aclose()


@pytest.mark.parametrize(
    ("controls", "match"),
    [
        ({"cache_mode": "sometimes"}, "not a cache mode"),
        ({"cache_mode": "replay"}, "profile's mode"),
        ({"cache_ttl_seconds": -1}, "cache_ttl_seconds"),
        ({"cache_ttl_seconds": "60"}, "cache_ttl_seconds"),
        ({"cache_ttl_seconds": True}, "cache_ttl_seconds"),
    ],
)
async def test_bad_controls_are_config_errors(
    models: Models, server: ProviderServer, controls: dict[str, Any], match: str
) -> None:
    model = models("openai", "gpt-4o-mini")
    with pytest.raises(ConfigError, match=match):
        await model.get_text("Hi", **controls)
    assert server.count() == 0


@pytest.mark.parametrize("mode", ["off", "refresh", "read_write", "read_only"])
async def test_replay_cannot_be_escaped_per_call(
    server: ProviderServer, tmp_path: Path, mode: str
) -> None:
    replaying = CacheConfig(enabled=True, cache_dir=tmp_path / "c", mode="replay")
    model = server.model("openai", "gpt-4o-mini", cache_config=replaying, api_key="sk-x")
    with pytest.raises(ConfigError, match="this cache replays"):
        await model.get_text("Hi", cache_mode=mode)
    assert server.count() == 0
    await model.aclose()
