"""The pure OpenAI translations the local server cannot exercise: finish reasons it never sends,
structured-output formats, odd tool arguments. Built on the SDK's own response types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spark.cache.keys import normalize_request
from spark.models import _openai_convert as convert


def completion(message: dict[str, Any], finish_reason: str) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
    )


def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> Any:
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
        }
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("length", "length"), ("stop", "stop"), ("content_filter", "content_filter")],
)
def test_finish_reasons_are_normalized(reason: str, expected: str) -> None:
    response = convert.response_from_completion(
        completion({"role": "assistant", "content": "Partial answ"}, reason)
    )

    assert response.finish_reason == expected
    assert response.text == "Partial answ"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)


def test_tool_calls_win_the_finish_reason_and_odd_arguments_are_kept() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "b", "arguments": ""}},
        {"id": "c3", "type": "function", "function": {"name": "c", "arguments": "{not json"}},
    ]
    message = {"role": "assistant", "content": None, "tool_calls": calls}

    response = convert.response_from_completion(completion(message, "stop"))

    assert response.finish_reason == "tool_calls"
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("c1", "a", {"x": 1}),
        ("c2", "b", {}),
        ("c3", "c", {"_raw": "{not json"}),
    ]


def test_stream_assembler_keeps_the_first_choice_and_parallel_calls_in_order() -> None:
    assembler = convert.StreamAssembler()
    first = {"index": 0, "id": "c1", "type": "function", "function": {"name": "a"}}
    second = {"index": 1, "id": "c2", "type": "function", "function": {"name": "b"}}
    pieces = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me check."}),
        chunk({"content": "other choice"}, index=1),
        chunk({"tool_calls": [first, second]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"y": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "2}"}}]}),
        chunk({}, "tool_calls"),
    ]

    texts = [assembler.feed(piece) for piece in pieces]

    assert [t for t in texts if t] == ["Let me check."]
    assert assembler.finished
    response = assembler.result()
    assert response.text == "Let me check."
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("c1", "a", {}),
        ("c2", "b", {"y": 2}),
    ]


def test_a_bare_json_schema_becomes_a_json_schema_response_format() -> None:
    schema = {"title": "City facts", "type": "object", "properties": {"name": {"type": "string"}}}
    request = normalize_request("openai", "gpt-4o-mini", "Hi", output_schema=schema)

    arguments = convert.chat_arguments("gpt-4o-mini", request)

    assert arguments["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City_facts", "schema": schema},
    }


def test_openai_response_formats_pass_unchanged() -> None:
    given = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    request = normalize_request("openai", "gpt-4o-mini", "Hi", response_format=given)

    assert convert.chat_arguments("gpt-4o-mini", request)["response_format"] == given


def test_embedding_arguments_drop_the_wire_encoding() -> None:
    arguments = convert.embedding_arguments(
        "text-embedding-3-small", ["a"], {"dimensions": 8, "encoding_format": "base64"}
    )

    assert arguments == {"model": "text-embedding-3-small", "input": ["a"], "dimensions": 8}
