"""OpenAIModel fidelity with the real SDK: media bytes reach the wire exactly and the cache holds
digests; strict and custom tools pass unchanged; every choice and the logprobs of ``n > 1`` come
back on miss and hit, plain and streamed; ``None`` values the caller sends are sent."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessage

from spark.cache import CacheConfig
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer

MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
HI = [{"role": "user", "content": "Hi"}]
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
FUNCTION = {"name": "get_weather", "description": "Weather of a city", "parameters": PARAMETERS}
STRICT_TOOL = {"type": "function", "function": {**FUNCTION, "strict": True}}
CUSTOM_TOOL = {
    "type": "custom",
    "custom": {
        "name": "sql",
        "description": "Run a query",
        "format": {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: /.+/"}},
    },
}
FIVE_MB = 5 * 1024 * 1024
MAGIC = {"image": b"\x89PNG\r\n\x1a\n", "audio": b"RIFF", "file": b"%PDF-1.7\n"}

MakeModel = Callable[..., OpenAIModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """OpenAIModels on the local server (``tests/models/conftest.py``: ``models``)."""
    return lambda model_id=MODEL, **options: models("openai", model_id, **options)


async def collect(model: OpenAIModel, messages: Any, **kwargs: Any) -> list[str]:
    return [chunk async for chunk in model.stream_text(messages, **kwargs)]


def chats(server: ProviderServer) -> int:
    return server.count(provider="openai")


# -- media ------------------------------------------------------------------------------------


def media_part(kind: str, raw: bytes, as_bytes: bool) -> dict[str, Any]:
    """A part in OpenAI's native spelling (base64 text), or with the bytes themselves."""
    text = base64.b64encode(raw).decode("ascii")
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": raw if as_bytes else f"data:image/png;base64,{text}"}}  # fmt: skip
    if kind == "audio":
        return {"type": "input_audio", "input_audio": {"data": raw if as_bytes else text, "format": "wav"}}  # fmt: skip
    data = raw if as_bytes else f"data:application/pdf;base64,{text}"
    return {"type": "file", "file": {"file_data": data, "filename": "report.pdf"}}


def wire_bytes(kind: str, part: dict[str, Any]) -> bytes:
    """The bytes a part carries on the wire, decoded as the API decodes them."""
    if kind == "image":
        prefix, _, data = part["image_url"]["url"].partition(",")
        assert prefix == "data:image/png;base64"
    elif kind == "audio":
        data = part["input_audio"]["data"]
    else:
        prefix, _, data = part["file"]["file_data"].partition(",")
        assert prefix == "data:application/pdf;base64"
    return base64.b64decode(data, validate=True)


@pytest.mark.parametrize("enabled", [True, False], ids=["cache-on", "cache-off"])
@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "base64"])
@pytest.mark.parametrize("kind", ["image", "audio", "file"])
async def test_media_reach_the_wire_exactly_and_entries_hold_a_digest(
    kind: str,
    as_bytes: bool,
    enabled: bool,
    make_model: MakeModel,
    server: ProviderServer,
    cache_config: CacheConfig,
) -> None:
    raw = MAGIC[kind] + random.Random(kind).randbytes(FIVE_MB)
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe"}, media_part(kind, raw, as_bytes)]}]  # fmt: skip
    model = make_model(enable_cache=enabled)

    first = await model.get_text(messages)
    again = await model.get_text(messages)

    assert again == first
    sent = server.requests[0].body["messages"][0]["content"][1]
    assert wire_bytes(kind, sent) == raw  # exactly the bytes given: no double base64
    entries = list(Path(cache_config.resolved_dir).rglob("*.json"))
    if not enabled:
        assert chats(server) == 2
        assert entries == []
        return
    assert chats(server) == 1
    (entry,) = entries
    assert entry.stat().st_size < 10_000  # a digest, not 7 MB of base64
    assert base64.b64encode(raw[:300]).decode()[:200] not in entry.read_text()


async def test_bytes_and_base64_spellings_share_one_entry(
    make_model: MakeModel, server: ProviderServer
) -> None:
    raw = MAGIC["image"] + bytes(range(256)) * 16
    model = make_model()
    spellings = [media_part("image", raw, as_bytes) for as_bytes in (True, False)]

    answers = {await model.get_text([{"role": "user", "content": [part]}]) for part in spellings}

    assert len(answers) == 1
    assert chats(server) == 1


# -- tools ------------------------------------------------------------------------------------


async def test_strict_and_custom_tools_pass_unchanged_and_are_keyed(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    loose = {"type": "function", "function": FUNCTION}

    await model.get_text(HI, tools=[STRICT_TOOL, CUSTOM_TOOL], tool_choice="required")
    await model.get_text(HI, tools=[STRICT_TOOL, CUSTOM_TOOL], tool_choice="required")

    assert server.requests[0].body["tools"] == [STRICT_TOOL, CUSTOM_TOOL]
    assert chats(server) == 1
    keys = {
        model.cache_key(HI, tools=[STRICT_TOOL, CUSTOM_TOOL]),
        model.cache_key(HI, tools=[loose, CUSTOM_TOOL]),
        model.cache_key(HI, tools=[STRICT_TOOL]),
    }
    assert len(keys) == 3


async def test_none_values_in_tools_calls_results_and_schemas_are_sent(
    make_model: MakeModel, server: ProviderServer
) -> None:
    schema = {
        "type": "object",
        "properties": {"unit": {"type": ["string", "null"], "default": None}},
    }
    tool = {"name": "get_weather", "description": "Weather", "parameters": schema}
    messages = [
        *HI,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"unit": None}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": {"temp": 21, "wind": None}},
    ]

    await make_model().get_text(messages, tools=[tool], output_schema={**schema, "title": "W"})

    body = server.requests[-1].body
    assert body["tools"][0]["function"]["parameters"] == schema
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"unit": null}'
    assert body["messages"][2]["content"] == '{"temp": 21, "wind": null}'
    assert body["response_format"]["json_schema"]["schema"]["properties"]["unit"]["default"] is None


async def test_sdk_message_objects_are_sent_as_the_sdk_sends_them(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    reply = ChatCompletionMessage(role="assistant", content="Hello")
    as_dicts = [*HI, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "More"}]

    await model.get_text([*HI, reply, {"role": "user", "content": "More"}])

    assert server.requests[-1].body["messages"] == as_dicts
    assert model.cache_key([*HI, reply, as_dicts[2]]) == model.cache_key(as_dicts)


# -- every choice, logprobs -------------------------------------------------------------------


async def test_every_choice_comes_back_on_miss_and_hit(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    miss = await model.generate(HI, n=3)
    hit = await model.generate(HI, n=3)
    text = await model.get_text(HI, n=3)

    assert server.requests[0].body["n"] == 3
    assert len(miss.choices) == 3
    assert len({choice.text for choice in miss.choices}) == 3
    assert miss.text == miss.choices[0].text == text
    assert (hit.cached, hit.choices) == (True, miss.choices)
    assert chats(server) == 1
    assert len((await model.generate(HI)).choices) == 1  # another request: one choice
    assert "n" not in server.requests[-1].body


async def test_logprobs_are_returned_and_cached(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    miss = await model.generate(HI, n=2, logprobs=True, top_logprobs=2)
    hit = await model.generate(HI, n=2, logprobs=True, top_logprobs=2)

    for choice in miss.choices:
        tokens = choice.logprobs["content"]
        assert "".join(token["token"] for token in tokens) == choice.text
        assert all(len(token["top_logprobs"]) == 2 for token in tokens)
    assert miss.logprobs == miss.choices[0].logprobs
    assert miss.choices[0].logprobs != miss.choices[1].logprobs
    assert (hit.cached, hit.choices, hit.logprobs) == (True, miss.choices, miss.logprobs)
    assert (await model.generate(HI)).logprobs is None
    assert chats(server) == 2


async def test_a_stream_of_several_choices_keeps_them_apart(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    plain = await make_model(enable_cache=False).generate(HI, n=2, logprobs=True)

    chunks = await collect(model, HI, n=2, logprobs=True)
    replay = await collect(model, HI, n=2, logprobs=True)
    stored = await model.generate(HI, n=2, logprobs=True)

    assert "".join(chunks) == plain.choices[0].text  # the first choice's text only
    assert replay == chunks
    assert stored.cached
    assert stored.choices == plain.choices  # streamed deltas assembled by index, logprobs too
    assert chats(server) == 2


async def test_a_streamed_tool_call_of_several_choices(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Paris", "unit": None})

    chunks = await collect(model, HI, n=2, tools=[FUNCTION])
    replay = await collect(model, HI, n=2, tools=[FUNCTION])
    stored = await model.generate(HI, n=2, tools=[FUNCTION])

    assert chunks == replay == []
    assert [choice.finish_reason for choice in stored.choices] == ["tool_calls", "tool_calls"]
    calls = [choice.tool_calls[0] for choice in stored.choices]
    assert [dict(call.arguments) for call in calls] == [{"city": "Paris", "unit": None}] * 2
    assert calls[0].id != calls[1].id
    assert chats(server) == 1


# -- embeddings -------------------------------------------------------------------------------


async def test_embedding_defaults_reach_the_wire_and_the_key_follows_it(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(EMBED_MODEL, default_params={"dimensions": 8, "user": "team-a"})
    plain = make_model(EMBED_MODEL)

    first = await model.embed(["a", "b"])
    await plain.embed(["a", "b"], dimensions=8)

    assert server.requests[0].body["dimensions"] == 8
    assert server.requests[0].body["user"] == "team-a"
    assert len(first.embeddings[0]) == 8
    assert model.embedding_cache_key(["a", "b"]) == plain.embedding_cache_key(["a", "b"], dimensions=8)  # fmt: skip
    assert chats(server) == 1, "same wire less the user: the second model hits"
