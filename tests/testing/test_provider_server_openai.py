"""The `openai` SDK against the local server: chat, streaming, tools, embeddings, faults."""

from __future__ import annotations

import base64
import json
import math
import struct

import openai
import pytest

from spark.testing import ProviderServer

MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _stream_text(client: openai.OpenAI, **kwargs: object) -> str:
    stream = client.chat.completions.create(model=MODEL, stream=True, **kwargs)
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_chat_answers_text_with_realistic_usage(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    response = openai_client.chat.completions.create(model=MODEL, messages=HELLO)

    text = response.choices[0].message.content
    assert text is not None
    assert text.startswith("Answer ")
    assert len(text) == server.answer_chars
    assert response.choices[0].finish_reason == "stop"
    assert response.model == f"{MODEL}-2024-07-18"  # the snapshot that answered
    assert response.usage is not None
    assert response.usage.prompt_tokens == math.ceil(len("Hello there") / 4)
    assert response.usage.completion_tokens == math.ceil(len(text) / 4)
    assert server.count(provider="openai", operation="chat") == 1


def test_same_request_same_text_other_request_other_text(openai_client: openai.OpenAI) -> None:
    def ask(content: str, **kwargs: object) -> str | None:
        messages = [{"role": "user", "content": content}]
        response = openai_client.chat.completions.create(model=MODEL, messages=messages, **kwargs)
        return response.choices[0].message.content

    assert ask("one") == ask("one")
    assert ask("one") != ask("two")
    assert ask("one") != ask("one", temperature=0.5)


def test_answer_chars_sets_the_answer_length(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.answer_chars = 1024
    response = openai_client.chat.completions.create(model=MODEL, messages=HELLO)

    assert len(response.choices[0].message.content or "") == 1024


def test_stream_has_the_same_text_and_a_usage_chunk(openai_client: openai.OpenAI) -> None:
    plain = openai_client.chat.completions.create(model=MODEL, messages=HELLO)
    stream = openai_client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) >= 3
    assert "".join(deltas) == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_stream_without_include_usage_has_no_usage_chunk(openai_client: openai.OpenAI) -> None:
    chunks = list(openai_client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))

    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


def test_queued_tool_call_then_tool_result_ends_the_loop(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.queue_tool_call("get_weather", {"city": "Paris"})
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]

    first = openai_client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL]
    )

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})

    second = openai_client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL]
    )

    assert second.choices[0].finish_reason == "stop"
    assert "sunny, 21 C" in (second.choices[0].message.content or "")


def test_streamed_tool_call_arrives_in_pieces(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.queue_tool_call("get_weather", {"city": "Oslo", "unit": "celsius"})
    stream = openai_client.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        tools=[WEATHER_TOOL],
        stream=True,
    )
    chunks = list(stream)

    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id
    assert calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert json.loads(arguments) == {"city": "Oslo", "unit": "celsius"}
    assert len(calls) >= 3
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_call_waits_for_a_request_that_offers_tools(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.queue_tool_call("get_weather", {"city": "Rome"})

    plain = openai_client.chat.completions.create(model=MODEL, messages=HELLO)
    with_tools = openai_client.chat.completions.create(
        model=MODEL, messages=HELLO, tools=[WEATHER_TOOL]
    )

    assert plain.choices[0].finish_reason == "stop"
    assert with_tools.choices[0].finish_reason == "tool_calls"


def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_embeddings_default_base64_and_float_agree(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    decoded = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    floats = openai_client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )

    assert server.requests[0].body["encoding_format"] == "base64"
    assert [len(item.embedding) for item in decoded.data] == [1536, 1536]
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert decoded.data[0].embedding != decoded.data[1].embedding
    assert math.fsum(x * x for x in floats.data[1].embedding) == pytest.approx(1.0)
    assert floats.usage.prompt_tokens == 2


def test_embeddings_honour_dimensions(openai_client: openai.OpenAI) -> None:
    response = openai_client.embeddings.create(
        model="text-embedding-3-small", input="hello", dimensions=256
    )

    assert len(response.data[0].embedding) == 256


def test_raw_base64_embedding_is_little_endian_float32(
    openai_client: openai.OpenAI,
) -> None:
    raw = openai_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hello", encoding_format="base64", dimensions=8
    )
    encoded = json.loads(raw.http_response.text)["data"][0]["embedding"]

    assert len(_floats(encoded)) == 8


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (400, openai.BadRequestError),
    ],
)
def test_injected_errors_raise_the_sdk_exception(
    openai_client: openai.OpenAI,
    server: ProviderServer,
    status: int,
    exception: type[openai.APIStatusError],
) -> None:
    server.fail_next(status)

    with pytest.raises(exception) as caught:
        openai_client.chat.completions.create(model=MODEL, messages=HELLO)

    assert caught.value.status_code == status
    assert openai_client.chat.completions.create(model=MODEL, messages=HELLO).choices


def test_fail_next_count_and_provider_filter(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.fail_next(429, count=2, provider="openai")
    server.fail_next(500, provider="gemini")

    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            openai_client.chat.completions.create(model=MODEL, messages=HELLO)
    openai_client.chat.completions.create(model=MODEL, messages=HELLO)

    assert server.count(provider="openai") == 3


def test_mid_stream_error_event_raises_api_error(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.fail_stream_after(chunks=2)
    received: list[str] = []

    stream = openai_client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)

    with pytest.raises(openai.APIError, match="internal error"):
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)

    assert len([piece for piece in received if piece]) == 2


def test_mid_stream_disconnect_raises_connection_error(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.fail_stream_after(chunks=1, disconnect=True)

    with pytest.raises(openai.APIConnectionError):
        _stream_text(openai_client, messages=HELLO)

    assert _stream_text(openai_client, messages=HELLO)


async def test_async_client_chat_and_stream(
    async_openai_client: openai.AsyncOpenAI,
) -> None:
    plain = await async_openai_client.chat.completions.create(model=MODEL, messages=HELLO)
    stream = await async_openai_client.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]

    assert "".join(pieces) == plain.choices[0].message.content
