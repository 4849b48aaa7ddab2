"""The `openai` SDK's Responses API against the local server: JSON, SSE events, function calls,
usage details, structured output and faults."""

from __future__ import annotations

import json

import openai
import pytest

from spark.testing import ProviderServer

MODEL = "gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def test_a_response_carries_text_and_usage(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    response = openai_client.responses.create(model=MODEL, input="Hello there")

    assert response.status == "completed"
    assert response.output_text.startswith("Answer ")
    assert len(response.output_text) == server.answer_chars
    assert response.output[0].type == "message"
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.output_tokens == -(-server.answer_chars // 4)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    (recorded,) = server.requests
    assert (recorded.operation, recorded.path, recorded.model) == (
        "responses",
        "/v1/responses",
        MODEL,
    )
    assert recorded.body == {"model": MODEL, "input": "Hello there"}


def test_one_request_gets_one_answer_streamed_or_not(openai_client: openai.OpenAI) -> None:
    plain = openai_client.responses.create(model=MODEL, input="Same words")
    again = openai_client.responses.create(model=MODEL, input="Same words")
    other = openai_client.responses.create(model=MODEL, input="Other words")
    with openai_client.responses.create(model=MODEL, input="Same words", stream=True) as stream:
        streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")

    assert plain.output_text == again.output_text == streamed != other.output_text


def test_the_stream_is_the_apis_event_sequence(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    with openai_client.responses.create(model=MODEL, input="Hello", stream=True) as stream:
        events = list(stream)

    kinds = [event.type for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 3
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert completed.response.output_text == text
    assert completed.response.usage is not None
    assert server.requests[-1].operation == "responses_stream"


def test_a_queued_call_is_a_function_call_item_json_and_streamed(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.queue_tool_call("get_weather", {"city": "Lisbon"})
    server.queue_tool_call("get_weather", {"city": "Porto"})

    response = openai_client.responses.create(model=MODEL, input="Weather?", tools=[WEATHER_TOOL])
    with openai_client.responses.create(
        model=MODEL, input="Weather?", tools=[WEATHER_TOOL], stream=True
    ) as stream:
        events = list(stream)

    (call,) = response.output
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Lisbon"})
    assert call.call_id.startswith("call_")
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(pieces) >= 2
    assert json.loads("".join(pieces)) == {"city": "Porto"}
    assert "response.output_text.delta" not in [event.type for event in events]
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output[0].type == "function_call"


def test_a_function_call_output_is_quoted_back(openai_client: openai.OpenAI) -> None:
    history = [
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "21 C and sunny"},
    ]

    response = openai_client.responses.create(model=MODEL, input=history, tools=[WEATHER_TOOL])

    assert "the tool returned 21 C and sunny" in response.output_text


def test_no_call_when_tools_are_off(openai_client: openai.OpenAI, server: ProviderServer) -> None:
    server.queue_tool_call("get_weather", {"city": "Lisbon"})

    response = openai_client.responses.create(
        model=MODEL, input="Weather?", tools=[WEATHER_TOOL], tool_choice="none"
    )

    assert response.output[0].type == "message"


def test_usage_reports_cached_and_reasoning_tokens(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(
        model=MODEL,
        input="Hello",
        instructions="You are a terse assistant who answers in one line. " * 4,
        prompt_cache_key="team-a",
        reasoning={"effort": "high"},
    )

    usage = response.usage
    assert usage is not None
    assert 0 < usage.input_tokens_details.cached_tokens < usage.input_tokens
    assert usage.output_tokens_details.reasoning_tokens == 64
    assert usage.output_tokens > 64


def test_a_json_schema_format_gets_fitting_json(openai_client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "people": {"type": "integer"}},
        "required": ["city", "people"],
    }
    text = {"format": {"type": "json_schema", "name": "City", "schema": schema, "strict": True}}

    response = openai_client.responses.create(model=MODEL, input="A city?", text=text)

    answer = json.loads(response.output_text)
    assert isinstance(answer["city"], str)
    assert isinstance(answer["people"], int)


def test_a_broken_stream_ends_with_an_error_event(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.fail_stream_after(chunks=1, status=429)

    with openai_client.responses.create(model=MODEL, input="Hello", stream=True) as stream:
        events = list(stream)

    assert [e.type for e in events][-2:] == ["response.output_text.delta", "error"]
    error = events[-1]
    assert error.type == "error"
    assert error.code == "rate_limit_exceeded"


def test_an_injected_failure_is_the_sdks_error(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.fail_next(status=429)

    with pytest.raises(openai.RateLimitError):
        openai_client.responses.create(model=MODEL, input="Hello")
