"""OpenAIModel(api="responses") with the real SDK against the local server: cached text,
responses and streams, the wire rule of ``responses.create``, tools both ways, usage and cost,
provider-held state passed through uncached, and spark.toml's ``api = "responses"``."""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest
from openai.resources.responses import AsyncResponses

import spark.models
from spark.cache import CacheConfig
from spark.errors import ConfigError, ProviderServerError
from spark.models import _controls
from spark.models import _openai_responses as responses
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer
from spark.types import Price, ToolSpec

MODEL = "gpt-4o-mini"
HI = [{"role": "user", "content": "Hi"}]
# Written here, not imported: the test states which fields never change the answer.
UNKEYED = {
    "user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
    "prompt_cache_retention", "prompt_cache_options", "background", "background_options",
    "stream", "stream_options",
}  # fmt: skip
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
NEUTRAL_TOOL = {"name": "get_weather", "description": "Weather of a city", "parameters": PARAMETERS}
FLAT_TOOL = {"type": "function", **NEUTRAL_TOOL, "strict": False}
SCHEMA = {"title": "City", "type": "object", "properties": {"name": {"type": "string"}}}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode("ascii")
LOOK_BYTES = [{"role": "user", "content": [{"text": "Look"}, {"type": "image_url", "image_url": {"url": PNG}}]}]  # fmt: skip
LOOK_NATIVE = [{"role": "user", "content": [{"type": "input_text", "text": "Look"}, {"type": "input_image", "image_url": PNG_URL, "detail": "auto"}]}]  # fmt: skip
CLOSED = {**SCHEMA, "required": ["name"], "additionalProperties": False}

MakeModel = Callable[..., OpenAIModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """Responses-API OpenAIModels on the local server (``tests/models/conftest.py``)."""
    return lambda model_id=MODEL, **options: models(
        "openai", model_id, **{"api": "responses", **options}
    )


@pytest.fixture
async def raw_client(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The SDK itself, for what ``responses.create`` puts on the wire without Spark."""
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield client
    await client.close()


async def collect(model: OpenAIModel, messages: Any, **kwargs: Any) -> list[str]:
    return [chunk async for chunk in model.stream_text(messages, **kwargs)]


def count(server: ProviderServer) -> int:
    return server.count(provider="openai", operation="responses") + server.count(
        provider="openai", operation="responses_stream"
    )


def stored_files(cache_config: CacheConfig) -> list[Path]:
    return sorted(Path(cache_config.resolved_dir).rglob("*.json"))


# -- cached calls -----------------------------------------------------------------------------


async def test_get_text_and_generate_miss_then_hit(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    first = await model.get_text("What is the capital of France?")
    second = await model.get_text("What is the capital of France?")
    response = await model.generate("What is the capital of France?")

    assert first == second == response.text
    assert first.startswith("Answer ")
    assert response.cached is True
    assert count(server) == 1
    assert server.requests[0].path == "/v1/responses"


async def test_a_stream_is_stored_and_replayed_as_the_same_chunks(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    first = await collect(model, HI, temperature=0.3)
    replay = await collect(model, HI, temperature=0.3)
    plain = await model.generate(HI, temperature=0.3)

    assert len(first) >= 3
    assert replay == first
    assert plain.cached is True
    assert plain.text == "".join(first)
    assert [r.operation for r in server.requests] == ["responses_stream"]


async def test_a_plain_call_then_a_stream_share_one_entry(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    text = await model.get_text(HI)
    chunks = await collect(model, HI)

    assert "".join(chunks) == text
    assert count(server) == 1


LOGPROBS = {"include": ["message.output_text.logprobs"], "top_logprobs": 2}


def raw_logprobs(raw: Any) -> list[Any]:
    """The token logprobs of the raw SDK's ``Response``, as plain JSON."""
    return [p.model_dump(mode="json") for p in raw.output[0].content[0].logprobs]


async def test_logprobs_are_returned_and_cached(
    make_model: MakeModel, server: ProviderServer, raw_client: openai.AsyncOpenAI
) -> None:
    model = make_model()

    miss = await model.generate(HI, **LOGPROBS)
    hit = await model.generate(HI, **LOGPROBS)
    raw = await raw_client.responses.create(model=MODEL, input=HI, **LOGPROBS)  # type: ignore[arg-type]

    assert miss.logprobs == raw_logprobs(raw)
    assert "".join(token["token"] for token in miss.logprobs) == miss.text == raw.output_text
    assert all(len(token["top_logprobs"]) == 2 for token in miss.logprobs)
    assert (hit.cached, hit.text, hit.logprobs) == (True, miss.text, miss.logprobs)
    assert (await model.generate(HI)).logprobs is None  # (not asked for: another request)
    assert count(server) == 3  # Spark's miss, the raw call, the call without logprobs


async def test_a_streamed_answer_keeps_its_logprobs(
    make_model: MakeModel, server: ProviderServer, raw_client: openai.AsyncOpenAI
) -> None:
    model = make_model()

    chunks = await collect(model, HI, **LOGPROBS)
    replay = await collect(model, HI, **LOGPROBS)
    hit = await model.generate(HI, **LOGPROBS)
    raw = await raw_client.responses.create(model=MODEL, input=HI, **LOGPROBS)  # type: ignore[arg-type]

    assert len(chunks) >= 3
    assert replay == chunks
    assert (hit.cached, hit.text) == (True, "".join(chunks))
    assert hit.logprobs == raw_logprobs(raw)
    assert [r.operation for r in server.requests] == ["responses_stream", "responses"]


async def test_a_stream_that_breaks_stores_nothing(
    make_model: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = make_model()
    server.fail_stream_after(chunks=1)

    with pytest.raises(ProviderServerError, match="stream broke off"):
        await collect(model, HI)

    assert stored_files(cache_config) == []
    assert len(await collect(model, HI)) >= 3
    assert count(server) == 2


async def test_cache_off_calls_the_api_every_time(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text(HI)
    chunks = await collect(model, HI)

    assert chunks
    assert count(server) == 2


# -- the wire rule ----------------------------------------------------------------------------

# (Spark's call: messages and keywords) -> the same request made with the SDK's own arguments.
SAME_AS_RAW: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = [
    ("string", "Hi", {}, {"input": HI}),
    ("system-prompt", HI, {"system_prompt": "Be brief."}, {"input": HI, "instructions": "Be brief."}),
    ("max-tokens", HI, {"max_tokens": 64}, {"input": HI, "max_output_tokens": 64}),
    ("temperature-int", HI, {"temperature": 1}, {"input": HI, "temperature": 1.0}),
    ("neutral-tool", HI, {"tools": [NEUTRAL_TOOL]}, {"input": HI, "tools": [FLAT_TOOL]}),
    (
        "tool-spec-and-choice",
        HI,
        {"tools": [ToolSpec("get_weather", "Weather of a city", PARAMETERS)], "tool_choice": "get_weather"},
        {"input": HI, "tools": [FLAT_TOOL], "tool_choice": {"type": "function", "name": "get_weather"}},
    ),
    (
        "output-schema",
        HI,
        {"output_schema": SCHEMA},
        {"input": HI, "text": {"format": {"type": "json_schema", "name": "City", "schema": SCHEMA}}},
    ),
    (
        "strict-output-schema",
        HI,
        {"output_schema": CLOSED},
        {"input": HI, "text": {"format": {"type": "json_schema", "name": "City", "schema": CLOSED, "strict": True}}},
    ),
    (
        "chat-response-format",
        HI,
        {"response_format": {"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA, "strict": True}}},
        {"input": HI, "text": {"format": {"type": "json_schema", "name": "City", "schema": SCHEMA, "strict": True}}},
    ),
    (
        "reasoning-effort-and-verbosity",
        HI,
        {"reasoning_effort": "low", "verbosity": "low", "text": {}},
        {"input": HI, "reasoning": {"effort": "low"}, "text": {"verbosity": "low"}},
    ),
    (
        "native-fields",
        HI,
        {"include": ["message.output_text.logprobs"], "top_logprobs": 2, "truncation": "auto", "user": "u-1", "store": False},
        {"input": HI, "include": ["message.output_text.logprobs"], "top_logprobs": 2, "truncation": "auto", "user": "u-1", "store": False},
    ),
    ("extra-body", HI, {"extra_body": {"top_k": 3}}, {"input": HI, "extra_body": {"top_k": 3}}),
    ("image-bytes", LOOK_BYTES, {}, {"input": LOOK_NATIVE}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "messages", "spark_kwargs", "raw_kwargs"), SAME_AS_RAW)
async def test_the_body_on_the_wire_is_what_the_sdk_sends(
    case: str,
    messages: Any,
    spark_kwargs: dict[str, Any],
    raw_kwargs: dict[str, Any],
    make_model: MakeModel,
    raw_client: openai.AsyncOpenAI,
    server: ProviderServer,
) -> None:
    await make_model(enable_cache=False).generate(messages, **spark_kwargs)
    await raw_client.responses.create(model=MODEL, **raw_kwargs)

    spark_body, raw_body = (request.body for request in server.requests)
    assert spark_body == raw_body


async def test_the_stored_request_is_the_keyed_body_with_the_api_marker(
    make_model: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = make_model()

    await model.get_text(HI, system_prompt="Be brief.", user="u-1", metadata={"team": "a"})

    (path,) = stored_files(cache_config)
    stored = json.loads(path.read_text())["payload"]["request"]
    assert stored["body"] == {"$api": "responses", "input": HI, "instructions": "Be brief."}
    assert (stored["model"], stored["kind"]) == (MODEL, "chat")
    assert server.requests[-1].body["user"] == "u-1"


HISTORY_NEUTRAL = [
    *HI,
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "22 C"},
]  # fmt: skip
HISTORY_CHAT = [
    *HI,
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "22 C"}]},
]  # fmt: skip
HISTORY_NATIVE = [
    *HI,
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "22 C"},
]  # fmt: skip

# (case id, messages, keywords). Cases meant to put one request on the wire sit together.
CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("plain", HI, {}),
    ("string", "Hi", {}),
    ("text-parts", [{"role": "user", "content": [{"text": "Hi"}]}], {}),
    ("input-text-part", [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}], {}),
    ("user", HI, {"user": "u-42", "metadata": {"team": "search"}, "store": False}),
    ("routing", HI, {"service_tier": "flex", "safety_identifier": "s", "prompt_cache_key": "k"}),
    ("transport", HI, {"timeout": 30, "extra_headers": {"x-team": "a"}, "stream": True}),
    ("temperature", HI, {"temperature": 0.5}),
    ("temperature-extra-body", HI, {"extra_body": {"temperature": 0.5}}),
    ("max-tokens", HI, {"max_tokens": 64}),
    ("max-output-tokens", HI, {"max_output_tokens": 64}),
    ("system-prompt", HI, {"system_prompt": "Be brief."}),
    ("instructions", HI, {"instructions": "Be brief."}),
    ("system-message", [{"role": "system", "content": "Be brief."}, *HI], {}),
    ("tool-neutral", HI, {"tools": [NEUTRAL_TOOL]}),
    ("tool-chat", HI, {"tools": [{"type": "function", "function": NEUTRAL_TOOL}]}),
    ("tool-flat", HI, {"tools": [FLAT_TOOL]}),
    ("tool-strict", HI, {"tools": [{**FLAT_TOOL, "strict": True}]}),
    ("choice-required", HI, {"tools": [NEUTRAL_TOOL], "tool_choice": "required"}),
    ("choice-any", HI, {"tools": [NEUTRAL_TOOL], "tool_choice": "any"}),
    ("output-schema", HI, {"output_schema": SCHEMA}),
    ("text-format", HI, {"text": {"format": {"type": "json_schema", "name": "City", "schema": SCHEMA}}}),
    ("reasoning", HI, {"reasoning": {"effort": "high"}}),
    ("reasoning-effort", HI, {"reasoning_effort": "high"}),
    ("history-neutral", HISTORY_NEUTRAL, {}),
    ("history-chat", HISTORY_CHAT, {}),
    ("history-native", HISTORY_NATIVE, {}),
    ("include", HI, {"include": ["message.output_text.logprobs"]}),
    ("truncation", HI, {"truncation": "auto"}),
]  # fmt: skip


def on_the_wire(body: dict[str, Any]) -> Any:
    return {name: value for name, value in body.items() if name not in UNKEYED}


async def test_keys_are_equal_exactly_when_the_wire_bodies_are(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    keys: dict[str, str] = {}
    wires: dict[str, Any] = {}
    for name, messages, kwargs in CASES:
        keys[name] = model.cache_key(messages, **kwargs)
        await model.generate(messages, **kwargs)
        wires[name] = on_the_wire(server.requests[-1].body)

    wrong = [
        (a, b)
        for a, b in itertools.combinations(keys, 2)
        if (keys[a] == keys[b]) != (wires[a] == wires[b])
    ]
    assert wrong == []
    groups = {key: [n for n in keys if keys[n] == key] for key in keys.values()}
    shared = sorted(group for group in groups.values() if len(group) > 1)
    assert shared == sorted(
        [
            ["plain", "string", "text-parts", "input-text-part", "user", "routing", "transport"],
            ["temperature", "temperature-extra-body"],
            ["max-tokens", "max-output-tokens"],
            ["system-prompt", "instructions"],
            ["tool-neutral", "tool-chat", "tool-flat"],
            ["choice-required", "choice-any"],
            ["output-schema", "text-format"],
            ["reasoning", "reasoning-effort"],
            ["history-neutral", "history-chat", "history-native"],
        ]
    )


async def test_a_chat_call_and_a_responses_call_never_share_a_key(
    models: Callable[..., Any], make_model: MakeModel
) -> None:
    chat = models("openai", MODEL)
    model = make_model()

    assert chat.cache_key(HI) != model.cache_key(HI)
    manager = model.cache_manager
    assert manager.generate_cache_key("openai", MODEL, HI, api="responses") == model.cache_key(HI)
    assert manager.generate_cache_key("openai", MODEL, HI) == chat.cache_key(HI)
    assert manager.generate_cache_key("openai", MODEL, HI, api="chat") == chat.cache_key(HI)
    with pytest.raises(ConfigError, match=r"unknown api 'assistants'.*'chat' or 'responses'"):
        manager.generate_cache_key("openai", MODEL, HI, api="assistants")


# -- every field of responses.create ----------------------------------------------------------

# keyword -> (value given, keyed?). Each goes to the body field of its name, as the SDK sends it.
NATIVE: dict[str, tuple[Any, bool]] = {
    "access_programs": ({"cyber": "standard"}, True),
    "background": (False, False),
    "background_options": ({"completion_window": "soonest"}, False),
    "context_management": ([{"type": "compaction", "compact_threshold": 1000}], True),
    "image": ({"context_compression": "auto"}, True),
    "include": (["reasoning.encrypted_content"], True),
    "instructions": ("Be brief.", True),
    "max_output_tokens": (32, True),
    "max_tool_calls": (3, True),
    "metadata": ({"team": "a"}, False),
    "moderation": ({"model": "omni-moderation-latest"}, True),
    "parallel_tool_calls": (False, True),
    "prompt": ({"id": "pmpt_1", "version": "2", "variables": {"city": "Paris"}}, True),
    "prompt_cache_key": ("k", False),
    "prompt_cache_options": ({"ttl": "30m"}, False),
    "prompt_cache_retention": ("24h", False),
    "reasoning": ({"effort": "low", "summary": "auto"}, True),
    "safety_identifier": ("s", False),
    "service_tier": ("priority", False),
    "store": (False, False),
    "temperature": (0.3, True),
    "text": ({"verbosity": "low"}, True),
    "tool_choice": ("none", True),
    "tools": ([FLAT_TOOL, {"type": "web_search"}], True),
    "top_logprobs": (3, True),
    "top_p": (0.9, True),
    "truncation": ("auto", True),
    "user": ("u", False),
}
# Not a body field of their own, or not cached (they are tested below).
NOT_BODY_FIELDS = {"input", "model", "stream", "stream_options", "extra_headers", "extra_query", "extra_body", "timeout"}  # fmt: skip
STATEFUL = {"previous_response_id", "conversation"}


def test_the_keyword_set_is_the_installed_sdks() -> None:
    sdk = set(inspect.signature(AsyncResponses.create).parameters) - {"self"}

    assert sdk == responses.RESPONSES_CREATE_KEYWORDS, "the SDK changed: update the table and docs"
    assert set(NATIVE) | NOT_BODY_FIELDS | STATEFUL == sdk, "every keyword is covered here"
    assert set(responses.STATEFUL_FIELDS) == STATEFUL


@pytest.mark.parametrize("keyword", sorted(NATIVE))
async def test_each_keyword_goes_where_the_sdk_sends_it(
    keyword: str, make_model: MakeModel, raw_client: openai.AsyncOpenAI, server: ProviderServer
) -> None:
    given, keyed = NATIVE[keyword]
    model = make_model(enable_cache=False)

    await model.get_text(HI, **{keyword: given})
    await raw_client.responses.create(model=MODEL, input=HI, **{keyword: given})

    spark_body, raw_body = (request.body for request in server.requests)
    assert spark_body == raw_body
    assert spark_body[keyword] == given
    assert (model.cache_key(HI, **{keyword: given}) != model.cache_key(HI)) is keyed


async def test_transport_options_reach_the_request_not_the_body(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text(HI, extra_headers={"X-Team": "a"}, extra_query={"q": "1"}, timeout=9)
    await model.get_text(HI, headers={"X-Team": "b"}, request_timeout=5)

    first, second = server.requests
    assert (first.headers["x-team"], second.headers["x-team"]) == ("a", "b")
    assert first.body == second.body == {"model": MODEL, "input": HI}


@pytest.mark.parametrize(
    ("keyword", "message"),
    [
        ("max_output_token", "'max_output_tokens'"),
        ("instruction", "'instructions'"),
        ("temprature", "'temperature'"),
        ("n", "is a chat completions field"),
        ("stop", "is a chat completions field"),
    ],
)
async def test_an_unknown_keyword_is_a_config_error_with_close_matches(
    keyword: str, message: str, make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    with pytest.raises(ConfigError, match=f"'{keyword}'") as caught:
        await model.get_text(HI, **{keyword: 1})

    assert message in str(caught.value)
    assert "extra_body" in str(caught.value)
    assert count(server) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "gpt-4o"}, "model id belongs to the constructor"),
        ({"api": "chat"}, "belongs to the OpenAIModel constructor"),
        ({"api_key": "sk-x"}, "belongs to the OpenAIModel constructor"),
        ({"background": True}, "background=True returns before the answer exists"),
        ({"max_tokens": 10, "max_output_tokens": 20}, "give one"),
        ({"system_prompt": "A", "instructions": "B"}, "give one"),
        ({"output_schema": SCHEMA, "text": {"format": {"type": "text"}}}, "both set text.format"),
        ({"reasoning_effort": "low", "reasoning": {"effort": "high"}}, "both set reasoning.effort"),
        ({"extra_body": {"stream": True}}, "extra_body may not set stream"),
        ({"tools": [{"name": "f", "parameter": {}}]}, "unknown tool field"),
        ({"system_prompt": [1]}, "system_prompt must be a string"),
    ],
)
def test_contradictions_and_malformed_values_are_config_errors(
    kwargs: dict[str, Any], message: str, make_model: MakeModel
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_model().cache_key(HI, **kwargs)


@pytest.mark.parametrize("api", ["assistants", "Responses", ""])
def test_an_unknown_api_is_a_config_error(api: str) -> None:
    with pytest.raises(ConfigError, match=r"api must be 'chat' or 'responses'"):
        OpenAIModel(MODEL, api=api)


# -- tools ------------------------------------------------------------------------------------


async def test_tool_calls_come_back_neutral_and_results_go_back(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Paris"})

    asked = await model.generate("Weather in Paris?", tools=[NEUTRAL_TOOL])
    (call,) = asked.tool_calls
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
        {"role": "tool", "tool_call_id": call.id, "content": "22 C"},
    ]
    answered = await model.generate(history, tools=[NEUTRAL_TOOL])
    again = await model.generate("Weather in Paris?", tools=[NEUTRAL_TOOL])

    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id.startswith("call_")
    assert asked.finish_reason == "tool_calls"
    assert "the tool returned 22 C" in answered.text
    assert answered.finish_reason == "stop"
    assert again.cached is True
    assert again.tool_calls == asked.tool_calls
    sent = server.requests[1].body
    assert sent["input"][1:] == [
        {"type": "function_call", "call_id": call.id, "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": call.id, "output": "22 C"},
    ]  # fmt: skip
    assert sent["tools"] == [FLAT_TOOL]
    assert count(server) == 2


async def test_a_streamed_tool_call_yields_no_chunks_and_is_stored(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Lisbon"})

    chunks = await collect(model, "Weather?", tools=[NEUTRAL_TOOL])
    response = await model.generate("Weather?", tools=[NEUTRAL_TOOL])

    assert chunks == []
    assert response.cached is True
    assert [(c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Lisbon"})
    ]
    assert count(server) == 1


# -- usage and cost ---------------------------------------------------------------------------


async def test_usage_with_cached_and_reasoning_tokens_and_cost(
    make_model: MakeModel, server: ProviderServer
) -> None:
    price = Price(input_per_million=2.0, output_per_million=8.0)
    model = make_model(pricing=price)
    kwargs = {
        "system_prompt": "You answer in one short line. " * 8,
        "prompt_cache_key": "team-a",
        "reasoning": {"effort": "low"},
    }

    miss = await model.generate(HI, **kwargs)
    hit = await model.generate(HI, **kwargs)

    wire = server.requests[0]
    assert wire.body["prompt_cache_key"] == "team-a"
    usage = miss.usage
    assert usage.input_tokens > usage.cache_read_tokens > 0
    assert usage.reasoning_tokens == 16
    assert usage.output_tokens == 16 + -(-len(miss.text) // 4)
    assert miss.cost_usd == pytest.approx(price.cost(usage))
    assert miss.cost_usd > 0
    assert hit.cached is True
    assert hit.usage == usage
    assert count(server) == 1


# -- structured output ------------------------------------------------------------------------


class City(pydantic.BaseModel):
    name: str
    people: int


async def test_get_json_asks_for_text_format_and_is_cached(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    city = await model.get_json(City, "A big city?")
    again = await model.get_json(City, "A big city?")
    plain = await model.get_json(SCHEMA, "A city?")

    assert isinstance(city, City)
    assert again == city
    assert isinstance(plain, dict)
    assert isinstance(plain["name"], str)
    formats = [request.body["text"]["format"] for request in server.requests]
    assert [f["type"] for f in formats] == ["json_schema", "json_schema"]
    assert formats[0]["schema"]["properties"].keys() == {"name", "people"}
    assert formats[1]["schema"] == SCHEMA
    assert count(server) == 2


# -- provider-held state ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"conversation": "conv_123"}, "conversation"),
        ({"extra_body": {"previous_response_id": "resp_123"}}, "previous_response_id"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ],
)
async def test_provider_held_state_is_passed_through_uncached(
    kwargs: dict[str, Any],
    field: str,
    make_model: MakeModel,
    server: ProviderServer,
    cache_config: CacheConfig,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_controls, "_warned_fields", set())  # a fresh process's memory
    model = make_model()
    before = model.cache_manager.counters.bypasses

    with caplog.at_level(logging.WARNING, logger="spark"):
        first = await model.generate("And now?", **kwargs)
        second = await model.generate("And now?", **kwargs)
        chunks = await collect(model, "And now?", **kwargs)

    assert count(server) == 3
    assert (first.cached, second.cached) == (False, False)
    assert chunks
    assert stored_files(cache_config) == []
    assert model.cache_manager.counters.bypasses - before == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert field in warnings[0]
    assert all(field in json.dumps(r.body) for r in server.requests)


# -- spark.toml -------------------------------------------------------------------------------


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spark.toml"
    path.write_text(text)
    return path


async def test_spark_toml_api_responses(
    tmp_path: Path, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = write_toml(
        tmp_path,
        f"""
[cache]
enabled = true
dir = "{(tmp_path / "cache").as_posix()}"

[models.fast]
provider = "openai"
model_id = "{MODEL}"
api = "responses"
base_url = "{server.openai_base_url}"
max_retries = 0
""",
    )
    model = spark.models.from_profile("fast", config_path=path)

    try:
        first = await model.get_text(HI)
        second = await model.get_text(HI)
    finally:
        await model.aclose()

    assert isinstance(model, OpenAIModel)
    assert model.api == "responses"
    assert first == second
    assert [r.path for r in server.requests] == ["/v1/responses"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('provider = "openai"\nmodel_id = "m"\napi = "respones"', 'api: must be one of chat, responses'),
        ('provider = "bedrock"\nmodel_id = "m"\napi = "responses"', "api: not an option of provider 'bedrock'"),
    ],
)  # fmt: skip
def test_spark_toml_api_is_checked(tmp_path: Path, table: str, message: str) -> None:
    path = write_toml(tmp_path, f"[models.fast]\n{table}\n")

    with pytest.raises(ConfigError, match=message):
        spark.models.from_profile("fast", config_path=path)


async def test_media_is_keyed_and_stored_as_a_digest(
    make_model: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = make_model()

    await model.get_text(LOOK_BYTES)
    again = await model.generate(LOOK_NATIVE)

    assert again.cached is True
    assert model.cache_key(LOOK_BYTES) == model.cache_key(LOOK_NATIVE)
    (path,) = stored_files(cache_config)
    stored = path.read_text()
    assert base64.b64encode(PNG).decode("ascii")[:64] not in stored
    assert "sha256" in stored
    assert count(server) == 1


def test_a_hit_in_a_fresh_process_does_not_import_the_sdk(
    make_model: MakeModel, cache_config: CacheConfig, tmp_path: Path
) -> None:
    asyncio.run(make_model().get_text(HI))
    code = (
        "import asyncio, sys\n"
        "from spark.cache import CacheConfig\n"
        "from spark.models.openai import OpenAIModel\n"
        f"config = CacheConfig(enabled=True, cache_dir={str(cache_config.resolved_dir)!r})\n"
        "model = OpenAIModel('gpt-4o-mini', api='responses', base_url='http://127.0.0.1:9',"
        " api_key='x', cache_config=config)\n"
        "print(asyncio.run(model.get_text([{'role': 'user', 'content': 'Hi'}]))[:7])\n"
        "print('openai' in sys.modules)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Answer ", "False"]


# -- the docs ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_the_responses_example_of_docs_models_runs_as_printed(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    section = text[text.index("## Responses API") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True 1", "get_weather True", "function_call"]
