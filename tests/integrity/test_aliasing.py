"""A hit hands out objects of its own: changing what one call returned never changes what a
later call returns -- from the memory tier (same process, same manager) or from the disk (a
fresh manager), for tool calls of every provider, embeddings of every provider, and the dicts of
``CacheManager.get_or_call``."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _fuzzlib import (
    CLAUDE,
    EMBED,
    GEMINI,
    GEMINI_EMBED,
    GPT,
    TITAN,
    WEATHER,
    ProviderStub,
    stored_answer,
)

from spark.cache import CacheConfig, CacheManager
from spark.testing import ProviderServer
from spark.types import EmbeddingResponse, ModelResponse

MakeModel = Callable[..., Any]

CHAT_MODELS = {"openai": GPT, "bedrock": CLAUDE, "gemini": GEMINI}
EMBED_MODELS = {"openai": EMBED, "bedrock": TITAN, "gemini": GEMINI_EMBED}
NESTED_ARGUMENTS = {"city": "Paris", "days": 3, "options": {"units": ["C"], "hourly": True}}


def _vandalize_tool_calls(response: ModelResponse) -> None:
    """Change everything mutable a caller can reach in a response."""
    for call in response.tool_calls:
        arguments: Any = call.arguments
        try:
            arguments["city"] = "HACKED"
            arguments["options"]["units"].append("K")
            arguments["options"]["hourly"] = False
            arguments["injected"] = {"rm": "-rf"}
        except TypeError:
            pass  # a read-only mapping is fine too: then nothing can change
        with contextlib.suppress(TypeError, AttributeError):
            arguments.pop("days")


def _vandalize_vectors(response: EmbeddingResponse) -> None:
    response.embeddings[0][0] = 123.0
    response.embeddings[0].append(99.0)
    response.embeddings[-1].clear()
    response.embeddings.append([1.0, 2.0])


def _chat_snapshot(response: ModelResponse) -> str:
    return json.dumps(
        [response.text, [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls]],
        sort_keys=True,
        default=dict,
    )


@pytest.mark.parametrize("provider", sorted(CHAT_MODELS))
async def test_tool_call_arguments_of_a_hit_are_the_callers_own(
    provider: str, models: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = models(provider, cache_config, CHAT_MODELS[provider])
    server.queue_tool_call("get_weather", NESTED_ARGUMENTS, provider=provider)
    prompt = "What is the weather in Paris?"

    miss = await model.generate(prompt, tools=[WEATHER])
    assert dict(miss.tool_calls[0].arguments) == NESTED_ARGUMENTS
    expected = _chat_snapshot(miss)
    _vandalize_tool_calls(miss)  # the miss's own answer: not the stored one either

    for _ in range(2):  # the memory tier
        hit = await model.generate(prompt, tools=[WEATHER])
        assert hit.cached
        assert _chat_snapshot(hit) == expected
        _vandalize_tool_calls(hit)

    CacheManager.reset_instances()  # a fresh manager: the entry is read from disk
    cold = models(provider, cache_config, CHAT_MODELS[provider])
    for _ in range(2):
        hit = await cold.generate(prompt, tools=[WEATHER])
        assert hit.cached
        assert _chat_snapshot(hit) == expected
        _vandalize_tool_calls(hit)

    assert server.count(provider) == 1


def _vandalize_choices(response: ModelResponse) -> None:
    """Change every mutable part of every choice's logprobs (the choices themselves are frozen)."""

    def wreck(value: Any) -> None:
        if isinstance(value, dict):
            for item in list(value.values()):
                wreck(item)
            value["injected"] = True
        elif isinstance(value, list):
            for item in value:
                wreck(item)
            value.append("HACKED")

    for choice in response.choices:
        wreck(choice.logprobs)


@pytest.mark.parametrize(
    ("provider", "asked"),
    [
        ("openai", {"n": 2, "logprobs": True, "top_logprobs": 2}),
        ("gemini", {"candidate_count": 2, "response_logprobs": True, "logprobs": 2}),
    ],
)
async def test_every_choice_and_its_logprobs_of_a_hit_are_the_callers_own(
    provider: str,
    asked: dict[str, Any],
    models: MakeModel,
    server: ProviderServer,
    cache_config: CacheConfig,
) -> None:
    model = models(provider, cache_config, CHAT_MODELS[provider])
    miss = await model.generate("Name two colours.", **asked)
    assert len(miss.choices) == 2
    assert all(choice.logprobs for choice in miss.choices)
    expected = json.dumps([c.to_dict() for c in miss.choices], sort_keys=True)
    _vandalize_choices(miss)
    for _ in range(2):  # the memory tier, then again
        hit = await model.generate("Name two colours.", **asked)
        assert hit.cached
        assert json.dumps([c.to_dict() for c in hit.choices], sort_keys=True) == expected
        assert hit.logprobs == hit.choices[0].logprobs
        _vandalize_choices(hit)
    assert server.count(provider) == 1


@pytest.mark.parametrize("provider", sorted(EMBED_MODELS))
async def test_embedding_vectors_of_a_hit_are_the_callers_own(
    provider: str, models: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = models(provider, cache_config, EMBED_MODELS[provider])
    texts = ["first text", "second text"]

    miss = await model.embed(texts)
    asked = server.count(provider)  # (Titan embeds one text per request)
    expected = copy.deepcopy(miss.embeddings)
    assert len(expected) == 2
    _vandalize_vectors(miss)

    for _ in range(2):
        hit = await model.embed(texts)
        assert hit.cached
        assert hit.embeddings == expected
        _vandalize_vectors(hit)

    CacheManager.reset_instances()
    cold = models(provider, cache_config, EMBED_MODELS[provider])
    for _ in range(2):
        hit = await cold.embed(texts)
        assert hit.cached
        assert hit.embeddings == expected
        _vandalize_vectors(hit)

    assert server.count(provider) == asked


def _vandalize_dict(response: Any) -> None:
    """Change every mutable part of a response dict (a read-only mapping may refuse)."""
    for change in (
        lambda: response["usage"].__setitem__("input_tokens", 999_999),
        lambda: response["tool_calls"][0]["arguments"]["units"]["temp"].append("K"),
        lambda: response["tool_calls"][0]["arguments"].__setitem__("city", "HACKED"),
        lambda: response["tool_calls"].append({"id": "x", "name": "evil", "arguments": {}}),
        lambda: response.__setitem__("text", "HACKED"),
        lambda: response.__setitem__("injected", True),
    ):
        with contextlib.suppress(TypeError):
            change()


async def test_get_or_call_responses_are_the_callers_own(tmp_path: Path) -> None:
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "cache")
    manager = CacheManager(config.resolved_dir, config)
    request = manager.bind(config).chat_request("openai", GPT, "a question")
    answer = stored_answer(0)
    provider = ProviderStub(answer)

    miss = await manager.get_or_call(request, provider, config)
    _vandalize_dict(miss.response)
    for _ in range(2):  # the memory tier
        hit = await manager.get_or_call(request, ProviderStub(None), config)
        assert (hit.cached, dict(hit.response)) == (True, answer)
        _vandalize_dict(hit.response)

    cold = CacheManager(config.resolved_dir, config)  # the disk
    for _ in range(2):
        hit = await cold.get_or_call(request, ProviderStub(None), config)
        assert (hit.cached, dict(hit.response)) == (True, answer)
        _vandalize_dict(hit.response)

    assert provider.calls == 1


async def test_the_providers_own_answer_is_not_the_stored_one(tmp_path: Path) -> None:
    """The caller of a miss gets the provider's answer; changing it (or the provider changing
    its object later) changes no hit."""
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "cache")
    manager = CacheManager(config.resolved_dir, config)
    request = manager.bind(config).chat_request("openai", GPT, "a question")
    shared = stored_answer(1)

    async def provider() -> dict[str, Any]:
        return shared  # the very same object, kept by the provider

    await manager.get_or_call(request, provider, config)
    _vandalize_dict(shared)
    hit = await manager.get_or_call(request, ProviderStub(None), config)

    assert dict(hit.response) == stored_answer(1)


async def test_single_flight_followers_get_copies_of_their_own(tmp_path: Path) -> None:
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "cache")
    manager = CacheManager(config.resolved_dir, config)
    request = manager.bind(config).chat_request("openai", GPT, "asked five times at once")
    release = asyncio.Event()
    calls = 0

    async def slow_provider() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await release.wait()
        return stored_answer(2)

    tasks = [
        asyncio.ensure_future(manager.get_or_call(request, slow_provider, config)) for _ in range(5)
    ]
    await asyncio.sleep(0.05)
    release.set()
    results = await asyncio.gather(*tasks)
    _vandalize_dict(results[0].response)
    _vandalize_dict(results[1].response)

    assert calls == 1
    for result in results[2:]:
        assert dict(result.response) == stored_answer(2)
    later = await manager.get_or_call(request, ProviderStub(None), config)
    assert dict(later.response) == stored_answer(2)


async def test_a_leaders_caller_changing_its_answer_at_once_changes_no_followers(
    tmp_path: Path,
) -> None:
    """The leader's caller runs first when the answer comes: its edits must not reach the
    followers that wake after it, nor a later hit."""
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "cache")
    manager = CacheManager(config.resolved_dir, config)
    request = manager.bind(config).chat_request("openai", GPT, "asked three times at once")
    release = asyncio.Event()

    async def slow_provider() -> dict[str, Any]:
        await release.wait()
        return stored_answer(3)

    async def leader() -> None:
        result = await manager.get_or_call(request, slow_provider, config)
        _vandalize_dict(result.response)  # (before any follower has woken)

    first = asyncio.ensure_future(leader())
    await asyncio.sleep(0.01)
    followers = [
        asyncio.ensure_future(manager.get_or_call(request, slow_provider, config)) for _ in range(2)
    ]
    await asyncio.sleep(0.01)
    release.set()
    await first
    for result in await asyncio.gather(*followers):
        assert dict(result.response) == stored_answer(3)
    later = await manager.get_or_call(request, ProviderStub(None), config)
    assert dict(later.response) == stored_answer(3)
