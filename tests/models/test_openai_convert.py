"""The pure OpenAI translations the local server cannot exercise: finish reasons it never sends,
structured-output formats, odd tool arguments, custom tool calls. Built on the SDK's own types."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spark.models import _openai_answers as answers
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
    response = answers.response_from_completion(
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

    response = answers.response_from_completion(completion(message, "stop"))

    assert response.finish_reason == "tool_calls"
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("c1", "a", {"x": 1}),
        ("c2", "b", {}),
        ("c3", "c", {"_raw": "{not json"}),
    ]


def test_stream_assembler_keeps_choices_apart_and_parallel_calls_in_order() -> None:
    assembler = answers.StreamAssembler()
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
        chunk({}, "stop", index=1),
    ]

    texts = [assembler.feed(piece) for piece in pieces]

    assert [t for t in texts if t] == ["Let me check."]  # the first choice's text only
    assert assembler.finished
    response = assembler.result()
    assert response.text == "Let me check."
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("c1", "a", {}),
        ("c2", "b", {"y": 2}),
    ]
    assert [(c.text, c.finish_reason) for c in response.choices] == [
        ("Let me check.", "tool_calls"),
        ("other choice", "stop"),
    ]


def test_a_stream_is_finished_only_when_every_choice_finished() -> None:
    assembler = answers.StreamAssembler()
    assembler.feed(chunk({"content": "a"}, "stop"))
    assembler.feed(chunk({"content": "b"}, index=1))

    assert not assembler.finished


def test_custom_tool_calls_are_returned_with_their_free_text_input() -> None:
    call = {"id": "c1", "type": "custom", "custom": {"name": "grammar", "input": "SELECT 1"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}

    response = answers.response_from_completion(completion(message, "tool_calls"))

    [parsed] = response.tool_calls
    assert (parsed.id, parsed.name, dict(parsed.arguments)) == (
        "c1",
        "grammar",
        {"input": "SELECT 1"},
    )


def test_a_bare_json_schema_becomes_a_json_schema_response_format() -> None:
    schema = {"title": "City facts", "type": "object", "properties": {"name": {"type": "string"}}}

    call = convert.prepare_chat("gpt-4o-mini", "Hi", {"output_schema": schema})

    assert call.arguments["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City_facts", "schema": schema},
    }
    same = convert.prepare_chat(
        "gpt-4o-mini", "Hi", {"response_format": call.arguments["response_format"]}
    )
    assert same.body == call.body


def test_a_pydantic_class_stands_for_its_json_schema() -> None:
    class City(pydantic.BaseModel):
        name: str

    call = convert.prepare_chat("gpt-4o-mini", "Hi", {"output_schema": City})

    assert call.arguments["response_format"]["json_schema"] == {
        "name": "City",
        "schema": City.model_json_schema(),
    }


def test_openai_response_formats_pass_unchanged() -> None:
    given = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}

    call = convert.prepare_chat("gpt-4o-mini", "Hi", {"response_format": given})

    assert call.arguments["response_format"] == given


def test_embedding_arguments_drop_the_wire_encoding() -> None:
    call = convert.prepare_embedding(
        "text-embedding-3-small", ["a"], {"dimensions": 8, "encoding_format": "base64"}
    )

    assert call.arguments == {"model": "text-embedding-3-small", "input": ["a"], "dimensions": 8}
    assert call.body == {"input": ["a"], "dimensions": 8}
