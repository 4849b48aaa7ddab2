"""OpenAIModel streaming, tool calls and embeddings against the local server with the real SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest

from spark.cache import CacheConfig
from spark.errors import ProviderError, ProviderServerError
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer
from spark.types import ModelResponse, ToolSpec

MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
NEUTRAL_TOOL = {"name": "get_weather", "description": "Weather of a city", "parameters": PARAMETERS}
OPENAI_TOOL = {"type": "function", "function": NEUTRAL_TOOL}
BEDROCK_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather of a city",
        "inputSchema": {"json": PARAMETERS},
    }
}

MakeModel = Callable[..., OpenAIModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """OpenAIModels on the local server (``tests/models/conftest.py``: ``models``)."""
    return lambda model_id=MODEL, **options: models("openai", model_id, **options)


async def collect(model: OpenAIModel, messages: Any, **kwargs: Any) -> list[str]:
    return [chunk async for chunk in model.stream_text(messages, **kwargs)]


def requests(server: ProviderServer) -> int:
    return server.count(provider="openai")


# -- streaming ------------------------------------------------------------------------------


async def test_streamed_miss_is_stored_and_replayed_chunk_by_chunk(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    first = await collect(model, ASK)
    replay = await collect(model, ASK)
    plain = await model.generate(ASK)

    assert len(first) >= 3
    assert replay == first
    assert plain.text == "".join(first)
    assert plain.cached
    assert plain.usage.output_tokens == 50  # the final usage chunk was kept
    assert server.count(provider="openai", operation="chat_stream") == 1
    assert requests(server) == 1
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


async def test_plain_call_then_stream_share_one_entry(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    text = await model.get_text(ASK)
    chunks = await collect(model, ASK)

    assert "".join(chunks) == text
    assert requests(server) == 1


@pytest.mark.parametrize("disconnect", [False, True], ids=["error-event", "dropped"])
async def test_broken_stream_raises_and_stores_nothing(
    make_model: MakeModel, server: ProviderServer, disconnect: bool
) -> None:
    model = make_model()
    server.fail_stream_after(2, disconnect=disconnect)
    received: list[str] = []

    async def consume() -> None:
        async for chunk in model.stream_text(ASK):
            received.append(chunk)

    with pytest.raises(ProviderServerError) as caught:
        await consume()

    assert len(received) == 2
    assert "stream broke off" in str(caught.value)
    assert caught.value.__cause__ is not None
    assert not model.cache_manager.has_entry(model.cache_key(ASK))
    assert len(await collect(model, ASK)) >= 3
    assert requests(server) == 2


async def test_stream_that_ends_without_a_finish_reason_is_broken(
    cache_config: CacheConfig, credentials: dict[str, str]
) -> None:
    # Fault injection: a proxy that ends the stream cleanly after one piece, no finish, no [DONE].
    piece = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    piece["choices"] = [{"index": 0, "delta": {"content": "Half an ans"}, "finish_reason": None}]
    body = f"data: {json.dumps(piece)}\n\n".encode()

    def cut_short(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(cut_short))
    client = openai.AsyncOpenAI(
        api_key=credentials["openai_api_key"], base_url="http://fault.invalid/v1", http_client=http
    )
    model = OpenAIModel(MODEL, client=client, cache_config=cache_config)

    with pytest.raises(ProviderServerError, match="ended before the answer finished"):
        await collect(model, ASK)

    assert not model.cache_manager.has_entry(model.cache_key(ASK))
    await client.close()


async def test_abandoned_stream_stores_nothing(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    stream = model.stream_text(ASK)
    assert await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]

    assert not model.cache_manager.has_entry(model.cache_key(ASK))
    await model.get_text(ASK)
    assert requests(server) == 2


# -- tools ----------------------------------------------------------------------------------


async def test_tool_spellings_reach_the_server_as_openai_tools_with_one_key(
    make_model: MakeModel, server: ProviderServer
) -> None:
    uncached = make_model(enable_cache=False)
    spellings: list[Any] = [
        NEUTRAL_TOOL,
        OPENAI_TOOL,
        BEDROCK_TOOL,
        ToolSpec("get_weather", "Weather of a city", PARAMETERS),
    ]

    keys = {uncached.cache_key(ASK, tools=[tool]) for tool in spellings}
    for tool in spellings:
        await uncached.get_text(ASK, tools=[tool], tool_choice="auto")
        assert server.requests[-1].body["tools"] == [OPENAI_TOOL]
        assert server.requests[-1].body["tool_choice"] == "auto"

    assert len(keys) == 1
    cached = make_model()
    for tool in spellings:
        await cached.get_text(ASK, tools=[tool])
    assert requests(server) == len(spellings) + 1


async def test_forced_tool_choice_is_sent_as_a_function_choice(
    make_model: MakeModel, server: ProviderServer
) -> None:
    await make_model().get_text(ASK, tools=[NEUTRAL_TOOL], tool_choice="get_weather")

    assert server.requests[-1].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


async def test_tool_round_trip_then_replays_with_no_requests(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    async def run_loop() -> tuple[ModelResponse, str]:
        first = await model.generate(ASK, tools=[NEUTRAL_TOOL])
        call = first.tool_calls[0]
        follow_up: list[dict[str, Any]] = [
            *ASK,
            {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
            {"role": "tool", "tool_call_id": call.id, "content": "22 C"},
        ]
        return first, await model.get_text(follow_up, tools=[NEUTRAL_TOOL])

    server.queue_tool_call("get_weather", {"city": "Paris"})
    first, answer = await run_loop()

    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    [call] = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id.startswith("call_")
    assert "22 C" in answer
    sent = server.requests[-1].body["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "22 C"}

    replayed_first, replayed_answer = await run_loop()

    assert (replayed_first.tool_calls, replayed_answer) == (first.tool_calls, answer)
    assert replayed_first.cached
    assert requests(server) == 2


async def test_streamed_tool_call_is_assembled_from_deltas(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    arguments = {"city": "Paris", "unit": "celsius", "days": [1, 2, 3]}
    server.queue_tool_call("get_weather", arguments)

    chunks = await collect(model, ASK, tools=[NEUTRAL_TOOL])
    stored = await model.generate(ASK, tools=[NEUTRAL_TOOL])

    assert chunks == []
    assert stored.cached
    assert stored.finish_reason == "tool_calls"
    [call] = stored.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", arguments)
    assert call.id.startswith("call_")
    assert stored.usage.input_tokens > 0
    assert requests(server) == 1


# -- embeddings -----------------------------------------------------------------------------


async def test_embeddings_miss_then_hit(make_model: MakeModel, server: ProviderServer) -> None:
    model = make_model(EMBED_MODEL)

    first = await model.embed(["alpha", "beta"])
    second = await model.embed(["alpha", "beta"])

    assert len(first.embeddings) == 2
    assert all(len(vector) == 1536 for vector in first.embeddings)
    assert all(type(x) is float for vector in first.embeddings for x in vector)
    assert first.embeddings[0] != first.embeddings[1]
    assert first.usage.input_tokens == 3  # ceil(5 / 4) + ceil(4 / 4)
    assert first.cost_usd == pytest.approx(3 * 0.02 / 1_000_000)
    assert (first.cached, second.cached) == (False, True)
    assert second.embeddings == first.embeddings
    assert server.count(provider="openai", operation="embeddings") == 1


async def test_embedding_dimensions_change_the_key_and_the_request(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(EMBED_MODEL)

    assert model.embedding_cache_key("alpha") != model.embedding_cache_key("alpha", dimensions=256)
    full = await model.embed("alpha")
    small = await model.embed("alpha", dimensions=256)

    assert len(full.embeddings[0]) == 1536
    assert len(small.embeddings[0]) == 256
    assert server.requests[-1].body["dimensions"] == 256
    assert server.count(provider="openai", operation="embeddings") == 2


async def test_embedding_errors_are_spark_errors(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(EMBED_MODEL)
    server.fail_next(status=500)

    with pytest.raises(ProviderError) as caught:
        await model.embed("alpha")

    assert caught.value.status == 500
    assert (await model.embed("alpha")).embeddings
    assert server.count(provider="openai", operation="embeddings") == 2
