"""Every call kind takes one cache path, on all three providers with their real SDKs.

Streams share the get-or-call of plain calls (concurrent identical streams make one provider
call; a replayed stream yields exactly the original chunks), ``default_params`` apply to every
call kind, and the key a call uses is ``model.cache_key(...)`` — and, for a model with no
namespace and no defaults, ``CacheManager.generate_cache_key(...)``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig
from spark.errors import ConfigError
from spark.models.base import Model
from spark.testing import ProviderServer
from spark.types import ToolSpec

PROVIDERS = ("openai", "bedrock", "gemini")
CHAT = {
    "openai": "gpt-4o",
    "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
    "gemini": "gemini-2.0-flash",
}
EMBEDDING = {
    "openai": "text-embedding-3-small",
    "bedrock": "amazon.titan-embed-text-v2:0",
    "gemini": "text-embedding-004",
}
QUESTION = [{"role": "user", "content": "Who keeps the lighthouse?"}]
WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)

Build = Callable[..., Model]


@pytest.fixture
async def build(server: ProviderServer, tmp_path: Path) -> AsyncIterator[Build]:
    """Models of each provider on the local server, caching under tmp_path by default."""
    built: list[Model] = []

    def make(provider: str, model_id: str | None = None, **options: Any) -> Model:
        options.setdefault("cache_config", CacheConfig(enabled=True, cache_dir=tmp_path / "c"))
        built.append(server.model(provider, model_id or CHAT[provider], **options))
        return built[-1]

    yield make
    for model in built:
        await model.aclose()


def entry_keys(root: Path) -> set[str]:
    return {path.stem for path in root.rglob("*.json") if not path.name.startswith(".")}


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [chunk async for chunk in stream]


def temperature_on_the_wire(provider: str, body: dict[str, Any]) -> Any:
    if provider == "openai":
        return body.get("temperature")
    if provider == "bedrock":
        return body.get("inferenceConfig", {}).get("temperature")
    return body.get("generationConfig", {}).get("temperature")


# -- streams: one path with plain calls ---------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_concurrent_identical_streams_make_one_provider_call(
    provider: str, build: Build, server: ProviderServer
) -> None:
    model = build(provider)
    server.latency = 0.2  # the leader's call is still in flight when the others come
    streams = await asyncio.gather(*(collect(model.stream_text(QUESTION)) for _ in range(5)))
    assert server.count(provider) == 1
    assert all(chunks == streams[0] for chunks in streams)
    assert len(streams[0]) > 1, "the leader streamed several chunks; followers replay them"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_and_a_plain_call_in_flight_together_make_one_call(
    provider: str, build: Build, server: ProviderServer
) -> None:
    model = build(provider)
    server.latency = 0.2
    chunks, text = await asyncio.gather(
        collect(model.stream_text(QUESTION)), model.get_text(QUESTION)
    )
    assert server.count(provider) == 1
    assert "".join(chunks) == text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_replayed_stream_yields_exactly_the_original_chunks(
    provider: str, build: Build, server: ProviderServer, tmp_path: Path
) -> None:
    first = await collect(build(provider).stream_text(QUESTION))
    fresh = build(provider, cache_config=CacheConfig(enabled=True, cache_dir=tmp_path / "c"))
    fresh.cache_manager.memory.clear()
    again = await collect(fresh.stream_text(QUESTION))
    assert again == first
    assert server.count(provider) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_streamed_tool_call_replays_no_extra_chunk(
    provider: str, build: Build, server: ProviderServer
) -> None:
    model = build(provider)
    server.queue_tool_call("get_weather", {"city": "Paris"}, provider=provider)
    first = await collect(model.stream_text(QUESTION, tools=[WEATHER]))
    again = await collect(model.stream_text(QUESTION, tools=[WEATHER]))
    assert again == first == [], "a tool call has no text: neither stream yields a chunk"
    answer = await model.generate(QUESTION, tools=[WEATHER])
    assert answer.cached
    assert [call.name for call in answer.tool_calls] == ["get_weather"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_abandoned_stream_stores_nothing_and_a_waiting_stream_takes_over(
    provider: str, build: Build, server: ProviderServer
) -> None:
    model = build(provider)
    server.latency = 0.2

    async def abandon() -> None:
        stream = model.stream_text(QUESTION)
        async for _chunk in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]

    _, follower = await asyncio.gather(abandon(), collect(model.stream_text(QUESTION)))
    assert follower
    assert server.count(provider) == 2, "the follower made the call itself"
    assert await collect(model.stream_text(QUESTION)) == follower
    assert server.count(provider) == 2


# -- default_params on every call kind ---------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_default_params_apply_to_text_generate_and_streams(
    provider: str, build: Build, server: ProviderServer
) -> None:
    model = build(provider, enable_cache=False, default_params={"temperature": 0.25})
    await model.get_text(QUESTION)  # (get_text passes temperature=None: the default stays)
    await model.generate(QUESTION)
    await collect(model.stream_text(QUESTION))
    await model.get_text(QUESTION, temperature=0.75)
    wire = [temperature_on_the_wire(provider, r.body) for r in server.requests]
    assert wire == [0.25, 0.25, 0.25, 0.75]
    assert model.cache_key(QUESTION) == model.cache_key(QUESTION, temperature=0.25)
    assert model.cache_key(QUESTION) != model.cache_key(QUESTION, temperature=0.75)


EMBEDDING_DEFAULTS = {
    "openai": ({"dimensions": 8}, lambda body: body.get("dimensions")),
    "bedrock": ({"dimensions": 256}, lambda body: body.get("dimensions")),
    "gemini": (
        {"output_dimensionality": 8},
        lambda body: body["requests"][0].get("outputDimensionality"),
    ),
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_default_params_apply_to_embeddings(
    provider: str, build: Build, server: ProviderServer
) -> None:
    defaults, on_the_wire = EMBEDDING_DEFAULTS[provider]
    model = build(provider, EMBEDDING[provider], default_params=defaults)
    await model.embed(["a lighthouse"])
    (value,) = defaults.values()
    assert on_the_wire(server.requests[-1].body) == value
    plain = build(provider, EMBEDDING[provider])
    assert model.embedding_cache_key(["a lighthouse"]) == plain.embedding_cache_key(
        ["a lighthouse"], **defaults
    )
    assert model.embedding_cache_key(["a lighthouse"]) != plain.embedding_cache_key(
        ["a lighthouse"]
    )


# -- the key a call uses ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_key_of_every_call_kind_is_the_one_stored(
    provider: str, build: Build, tmp_path: Path
) -> None:
    model = build(provider)
    root = tmp_path / "c"
    await model.get_text(QUESTION, temperature=0.5)
    assert entry_keys(root) == {model.cache_key(QUESTION, temperature=0.5)}
    await collect(model.stream_text(QUESTION, max_tokens=50))
    assert model.cache_key(QUESTION, max_tokens=50) in entry_keys(root)
    embedder = build(provider, EMBEDDING[provider])
    await embedder.embed(["one", "two"])
    assert embedder.embedding_cache_key(["one", "two"]) in entry_keys(root)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_generate_cache_key_equals_the_model_key_tool_specs_included(
    provider: str, build: Build
) -> None:
    model = build(provider)
    arguments: dict[str, Any] = {
        "system_prompt": "Be brief.",
        "tools": [WEATHER],
        "tool_choice": "auto",
        "temperature": 0.2,
    }
    key = model.cache_manager.generate_cache_key(provider, CHAT[provider], QUESTION, **arguments)
    assert key == model.cache_key(QUESTION, **arguments)
    await model.get_text(QUESTION, **arguments)
    assert model.cache_manager.has_entry(key)
    as_dict = {**arguments, "tools": [WEATHER.to_dict()]}
    assert (
        model.cache_manager.generate_cache_key(provider, CHAT[provider], QUESTION, **as_dict) == key
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_specs_is_the_original_frameworks_name_for_tools(
    provider: str, build: Build, server: ProviderServer
) -> None:
    model = build(provider, enable_cache=False)
    spec = {**WEATHER.to_dict(), "parameters": {"json": WEATHER.parameters}}
    await model.get_text(QUESTION, tool_specs=[spec])
    await model.get_text(QUESTION, tools=[WEATHER])
    first, second = (request.body for request in server.requests)
    assert first == second, "the same tools reach the wire"
    assert model.cache_key(QUESTION, tool_specs=[spec]) == model.cache_key(
        QUESTION, tools=[WEATHER]
    )
    with pytest.raises(ConfigError, match="not both"):
        model.cache_key(QUESTION, tools=[WEATHER], tool_specs=[spec])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_namespace_and_defaults_are_in_the_model_key(provider: str, build: Build) -> None:
    plain = build(provider).cache_key(QUESTION)
    spaced = build(provider, cache_config=CacheConfig(enabled=True, namespace="team-a")).cache_key(
        QUESTION
    )
    defaults = build(provider, default_params={"temperature": 0.1}).cache_key(QUESTION)
    assert len({plain, spaced, defaults}) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_stored_request_is_the_keyed_wire_body(
    provider: str, build: Build, tmp_path: Path
) -> None:
    model = build(provider)
    await model.get_text(QUESTION, temperature=0.5)
    (path,) = (tmp_path / "c").rglob("*.json")
    stored = json.loads(path.read_text())["payload"]["request"]
    assert stored["v"] == 3
    assert stored["provider"] == provider
    assert temperature_on_the_wire(provider, stored["body"]) == 0.5
