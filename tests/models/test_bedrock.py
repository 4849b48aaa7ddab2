"""``BedrockModel`` with the real boto3 against the local server: text, cost, keys, streams, tools,
embeddings."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from spark.errors import ProviderServerError, RateLimitError
from spark.models.bedrock import BedrockModel
from spark.testing import ProviderServer
from spark.types import Price

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
PRICE = Price(input_per_million=3.0, output_per_million=15.0)
HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_BEDROCK = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
}

MakeModel = Callable[..., BedrockModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """BedrockModels on the local server (``tests/models/conftest.py``: ``models``)."""
    return lambda model_id=MODEL, **options: models(
        "bedrock", model_id, **{"pricing": PRICE, **options}
    )


def tokens(text: str) -> int:
    """The local server's token estimate: one per four characters."""
    return max(1, math.ceil(len(text) / 4))


async def collect(model: BedrockModel, messages: Any, **kwargs: Any) -> list[str]:
    return [chunk async for chunk in model.stream_text(messages, **kwargs)]


async def drain(stream: AsyncIterator[str], into: list[str]) -> None:
    """Read a stream to its end (or its error), keeping what arrived."""
    async for chunk in stream:
        into.append(chunk)


# -- text, cost, keys -------------------------------------------------------------------------


async def test_get_text_miss_then_hit(make_model: MakeModel, server: ProviderServer) -> None:
    model = make_model()

    first = await model.get_text(HELLO)
    second = await model.get_text(HELLO)

    assert first.startswith("Answer ")
    assert second == first
    assert server.count("bedrock", "converse") == 1
    assert server.requests[0].body["messages"] == [
        {"role": "user", "content": [{"text": "Hello there"}]}
    ]


async def test_generate_reports_usage_cost_and_cached(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    first = await model.generate(HELLO, system_prompt="Be brief.")
    second = await model.generate(HELLO, system_prompt="Be brief.")

    usage = (first.usage.input_tokens, first.usage.output_tokens)
    assert usage == (tokens("Be brief.Hello there"), tokens(first.text))
    expected_cost = (usage[0] * 3.0 + usage[1] * 15.0) / 1_000_000
    assert first.cost_usd == pytest.approx(expected_cost)
    assert (first.finish_reason, first.cached, second.cached) == ("stop", False, True)
    assert (second.text, second.usage, second.cost_usd) == (first.text, first.usage, first.cost_usd)
    assert (first.provider, first.model_id) == ("bedrock", MODEL)
    stats = model.cache_manager.get_stats()
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert stats["saved_cost_usd"] == pytest.approx(expected_cost)
    assert server.count("bedrock") == 1


async def test_unpriced_model_costs_none_with_one_warning(
    make_model: MakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model("anthropic.claude-unpriced-test-v1:0", pricing={})

    with caplog.at_level(logging.WARNING, logger="spark"):
        first = await model.generate("one")
        second = await model.generate("two")

    assert (first.cost_usd, second.cost_usd) == (None, None)
    warnings = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warnings) == 1


async def test_cache_key_matches_manager_and_entry_exists(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    kwargs: dict[str, Any] = {"temperature": 0.2, "max_tokens": 50, "system_prompt": "Be brief."}

    key = model.cache_manager.generate_cache_key("bedrock", MODEL, HELLO, **kwargs)
    assert key == model.cache_key(HELLO, **kwargs)
    assert not model.cache_manager.has_entry(key)
    await model.get_text(HELLO, **kwargs)

    assert model.cache_manager.has_entry(key)
    body = server.requests[-1].body
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2}
    assert body["system"] == [{"text": "Be brief."}]


async def test_equivalent_spellings_share_one_entry(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    spellings: list[tuple[Any, dict[str, Any]]] = [
        ([{"role": "user", "content": "Hi"}], {"system_prompt": "Be brief."}),
        ([{"role": "user", "content": [{"text": "Hi"}]}], {"system_prompt": "Be brief."}),
        (
            [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            {"system_prompt": "Be brief."},
        ),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], {}),
    ]

    answers = {await model.get_text(messages, **kw) for messages, kw in spellings}

    assert len(answers) == 1
    assert len({model.cache_key(messages, **kw) for messages, kw in spellings}) == 1
    assert server.count("bedrock") == 1


async def test_params_reach_converse_in_its_own_names(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}

    await model.get_text(
        "Hi", top_p=0.9, top_k=5, stop="END", response_format=schema, reasoning_effort="low"
    )

    body = server.requests[-1].body
    assert body["inferenceConfig"] == {"topP": 0.9, "stopSequences": ["END"]}
    assert body["additionalModelRequestFields"] == {"top_k": 5}
    assert body["outputConfig"]["effort"] == "low"
    structure = body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert structure["name"] == "response"


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        BedrockModel(MODEL, api_key="sk-nope")  # type: ignore[call-arg]


# -- streaming -------------------------------------------------------------------------------


async def test_stream_is_stored_and_replayed(make_model: MakeModel, server: ProviderServer) -> None:
    model = make_model()

    chunks = await collect(model, HELLO)
    replay = await collect(model, HELLO)
    plain = await model.get_text(HELLO)

    assert len(chunks) >= 3
    assert replay == chunks
    assert plain == "".join(chunks)
    assert server.count("bedrock") == 1
    assert server.count("bedrock", "converse_stream") == 1


async def test_plain_call_then_stream_share_one_entry(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    text = await model.get_text(HELLO)
    chunks = await collect(model, HELLO)

    assert "".join(chunks) == text
    assert server.count("bedrock") == 1


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ({"status": 500}, ProviderServerError),
        ({"status": 429}, RateLimitError),
        ({"disconnect": True}, ProviderServerError),
    ],
)
async def test_broken_stream_raises_and_stores_nothing(
    make_model: MakeModel, server: ProviderServer, failure: dict[str, Any], error: type[Exception]
) -> None:
    model = make_model()
    server.fail_stream_after(chunks=2, provider="bedrock", **failure)
    received: list[str] = []

    with pytest.raises(error) as caught:
        await drain(model.stream_text(HELLO), received)

    assert len(received) == 2
    assert caught.value.__cause__ is not None
    assert not model.cache_manager.has_entry(model.cache_key(HELLO))
    chunks = await collect(model, HELLO)
    assert "".join(chunks).startswith("".join(received))
    assert server.count("bedrock", "converse_stream") == 2


# -- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", [WEATHER, WEATHER_OPENAI, WEATHER_BEDROCK])
async def test_tool_spellings_reach_bedrock_as_tool_specs(
    make_model: MakeModel, server: ProviderServer, tool: dict[str, Any]
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text("Weather?", tools=[tool], tool_choice="required")

    assert server.requests[-1].body["toolConfig"] == {
        "tools": [WEATHER_BEDROCK],
        "toolChoice": {"any": {}},
    }


async def test_tool_spellings_share_one_key(make_model: MakeModel, server: ProviderServer) -> None:
    model = make_model()
    spellings = [WEATHER, WEATHER_OPENAI, WEATHER_BEDROCK]

    answers = {await model.get_text("Weather?", tools=[tool]) for tool in spellings}

    assert len(answers) == 1
    assert len({model.cache_key("Weather?", tools=[tool]) for tool in spellings}) == 1
    assert server.count("bedrock") == 1


async def run_tool_loop(model: BedrockModel) -> tuple[Any, Any]:
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first = await model.generate(question, tools=[WEATHER])
    call = first.tool_calls[0]
    follow_up = [
        *question,
        {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
        {"role": "tool", "tool_call_id": call.id, "content": "22 C"},
    ]
    return first, await model.generate(follow_up, tools=[WEATHER])


async def test_tool_loop_round_trip_then_replay(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Paris"}, provider="bedrock")

    first, final = await run_tool_loop(model)

    (call,) = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id.startswith("tooluse_")
    assert first.finish_reason == "tool_calls"
    assert "22 C" in final.text
    assert final.finish_reason == "stop"
    sent = server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"toolUse": {"toolUseId": call.id, "name": "get_weather", "input": {"city": "Paris"}}}
    ]
    assert sent[2]["content"] == [
        {"toolResult": {"toolUseId": call.id, "content": [{"text": "22 C"}]}}
    ]
    assert server.count("bedrock") == 2

    again_first, again_final = await run_tool_loop(model)

    assert (again_first.tool_calls, again_final.text) == (first.tool_calls, final.text)
    assert again_first.cached
    assert again_final.cached
    assert server.count("bedrock") == 2


async def test_streamed_tool_call_is_assembled_and_cached(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Oslo", "unit": "C"}, provider="bedrock")

    chunks = await collect(model, "Weather in Oslo?", tools=[WEATHER])
    replay = await collect(model, "Weather in Oslo?", tools=[WEATHER])
    response = await model.generate("Weather in Oslo?", tools=[WEATHER])

    assert (chunks, replay) == ([], [])
    assert response.cached
    assert response.finish_reason == "tool_calls"
    assert dict(response.tool_calls[0].arguments) == {"city": "Oslo", "unit": "C"}
    assert server.count("bedrock") == 1


# -- embeddings --------------------------------------------------------------------------------


async def test_titan_embeddings_miss_then_hit(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(TITAN)

    first = await model.embed("hello world")
    second = await model.embed("hello world")

    assert (first.cached, second.cached) == (False, True)
    assert second.embeddings == first.embeddings
    assert [len(vector) for vector in first.embeddings] == [1024]
    assert first.usage.input_tokens == tokens("hello world")
    assert server.count("bedrock", "invoke") == 1


@pytest.mark.parametrize("kinds", [["binary"], ["binary", "float"], ["float", "binary"]])
async def test_titan_returns_the_vector_type_asked_for(
    make_model: MakeModel, server: ProviderServer, kinds: list[str]
) -> None:
    """Titan sends its float ``embedding`` with every answer; ``embeddingTypes`` asks for the
    vectors of ``embeddingsByType``: the first type asked for is what comes back."""
    model = make_model(TITAN)
    first = await model.embed("hello world", embeddingTypes=kinds)
    again = await model.embed("hello world", embeddingTypes=kinds)
    [request] = server.requests
    assert request.body["embeddingTypes"] == kinds
    vector = first.embeddings[0]
    if kinds[0] == "binary":
        assert set(vector) <= {0.0, 1.0}
    else:
        assert not set(vector) <= {0.0, 1.0}
    assert again.cached
    assert again.embeddings == first.embeddings


async def test_titan_batch_and_dimensions(make_model: MakeModel, server: ProviderServer) -> None:
    model = make_model(TITAN)
    texts = ["alpha", "beta gamma", "delta"]

    full = await model.embed(texts)
    small = await model.embed(texts, dimensions=256, normalize=True)

    assert [len(v) for v in full.embeddings] == [1024, 1024, 1024]
    assert [len(v) for v in small.embeddings] == [256, 256, 256]
    assert full.usage.input_tokens == sum(tokens(t) for t in texts)
    assert model.embedding_cache_key(texts) != model.embedding_cache_key(texts, dimensions=256)
    assert server.count("bedrock", "invoke") == 6
    sent = sorted(r.body["inputText"] for r in server.requests if r.body.get("dimensions"))
    assert sent == sorted(texts)
    assert all(r.body.get("normalize") is True for r in server.requests[3:])
