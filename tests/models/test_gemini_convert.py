"""The pure Gemini translation (``spark.models._gemini_convert``), without a server.

Requests start from ``normalize_request`` (what a model really receives); answers are real
``google.genai.types`` objects; every built config is validated by the SDK's own types.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from spark.cache.keys import normalize_request
from spark.errors import ConfigError, ProviderServerError
from spark.models import _gemini_convert as convert
from spark.types import ToolCall, Usage

WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def request(messages: Any, **kwargs: Any) -> dict[str, Any]:
    return normalize_request("gemini", "gemini-2.0-flash", messages, **kwargs)


def config_of(**kwargs: Any) -> dict[str, Any]:
    config = convert.generate_config(request("Hi", **kwargs))
    types.GenerateContentConfig.model_validate(config)  # the SDK accepts what we build
    return config


# -- contents -----------------------------------------------------------------------------


def test_parallel_tool_results_form_one_user_turn_named_by_call_id() -> None:
    calls = [
        {"id": "call_0_get_weather", "name": "get_weather", "arguments": {"city": "Oslo"}},
        {"id": "gemini-issued-7", "name": "get_time", "arguments": {}},
    ]
    messages = [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "gemini-issued-7", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_0_get_weather", "content": {"temp": 3}},
    ]

    contents = convert.to_gemini_contents(request(messages)["messages"])

    assert [turn["role"] for turn in contents] == ["user", "model", "user"]
    first, second = contents[1]["parts"]
    # A made-up id is not sent back; one Gemini issued is.
    assert first == {
        "function_call": {"name": "get_weather", "args": {"city": "Oslo"}},
        "thought_signature": convert.SKIP_THOUGHT_SIGNATURE,
    }
    assert second == {"function_call": {"name": "get_time", "args": {}, "id": "gemini-issued-7"}}
    assert contents[2]["parts"] == [
        {
            "function_response": {
                "name": "get_time",
                "response": {"result": "12:00"},
                "id": "gemini-issued-7",
            }
        },
        {"function_response": {"name": "get_weather", "response": {"result": '{"temp": 3}'}}},
    ]
    types.Content.model_validate(contents[1])
    types.Content.model_validate(contents[2])


def test_a_tool_result_answers_the_latest_call_with_its_id() -> None:
    def turn(name: str) -> list[dict[str, Any]]:
        call = {"id": "call_0_x", "name": name, "arguments": {}}
        return [
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_0_x", "content": "ok"},
        ]

    messages = [{"role": "user", "content": "go"}, *turn("x"), *turn("x")]
    contents = convert.to_gemini_contents(request(messages)["messages"])

    assert [turn["role"] for turn in contents] == ["user", "model", "user", "model", "user"]


def test_tool_result_without_a_matching_call_is_refused() -> None:
    messages = [{"role": "tool", "tool_call_id": "nowhere", "content": "22 C"}]

    with pytest.raises(ConfigError, match="nowhere"):
        convert.to_gemini_contents(request(messages)["messages"])


def test_system_text_in_the_middle_is_refused() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Now be rude"},
    ]

    with pytest.raises(ConfigError, match="system"):
        convert.to_gemini_contents(request(messages)["messages"])


def test_images_and_empty_text() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": ""},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"inline_data": {"mime_type": "audio/wav", "data": "d2F2"}},
            ],
        }
    ]

    (turn,) = convert.to_gemini_contents(request(messages)["messages"])

    assert turn["parts"] == [
        {"inline_data": {"mime_type": "image/png", "data": b"hello"}},
        {"file_data": {"file_uri": "https://example.com/cat.jpg", "mime_type": "image/jpeg"}},
        {"inline_data": {"mime_type": "audio/wav", "data": b"wav"}},
    ]
    types.Content.model_validate(turn)


def test_unknown_content_part_is_refused() -> None:
    messages = [{"role": "user", "content": [{"type": "video", "src": "x"}]}]

    with pytest.raises(ConfigError, match="content part"):
        convert.to_gemini_contents(request(messages)["messages"])


# -- config -------------------------------------------------------------------------------


def test_parameters_take_gemini_names_and_unknown_ones_pass_through() -> None:
    config = config_of(
        system_prompt="Be brief.",
        temperature=1,
        max_tokens=10,
        stop="END",
        n=1,
        seed=7,
        top_p=0.9,
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    )

    assert config == {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "temperature": 1.0,
        "max_output_tokens": 10,
        "stop_sequences": ["END"],
        "candidate_count": 1,
        "seed": 7,
        "top_p": 0.9,
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, {}),
        ({"type": "json_object"}, {"response_mime_type": "application/json"}),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
            {"response_mime_type": "application/json", "response_json_schema": SCHEMA},
        ),
        (SCHEMA, {"response_mime_type": "application/json", "response_json_schema": SCHEMA}),
    ],
)
def test_response_format_spellings(response_format: Any, expected: dict[str, Any]) -> None:
    assert config_of(response_format=response_format) == expected


def test_response_schema_alias_and_explicit_mime_type_win() -> None:
    config = config_of(response_schema=SCHEMA, response_mime_type="text/x.enum")

    assert config == {"response_mime_type": "text/x.enum", "response_json_schema": SCHEMA}


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [("low", {"thinking_level": "LOW"}), ("none", {"thinking_budget": 0})],
)
def test_reasoning_effort_is_a_thinking_config(effort: str, thinking: dict[str, Any]) -> None:
    assert config_of(reasoning_effort=effort) == {"thinking_config": thinking}


def test_tools_are_declarations_and_the_sdk_never_runs_them() -> None:
    config = config_of(tools=[{**WEATHER, "description": "Weather"}], tool_choice="any")

    assert config["tools"] == [
        {
            "function_declarations": [
                {
                    "name": "get_weather",
                    "parameters_json_schema": {"type": "object", "properties": {}},
                    "description": "Weather",
                }
            ]
        }
    ]
    assert config["automatic_function_calling"] == {"disable": True}
    assert config["tool_config"] == {"function_calling_config": {"mode": "ANY"}}


def test_embed_config_renames_dimensions() -> None:
    config = convert.embed_config({"dimensions": 8, "task_type": "RETRIEVAL_QUERY"})

    assert config == {"output_dimensionality": 8, "task_type": "RETRIEVAL_QUERY"}
    types.EmbedContentConfig.model_validate(config)


# -- answers ------------------------------------------------------------------------------


def answer(parts: list[dict[str, Any]], finish: str | None = "STOP", **usage: int) -> Any:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finish_reason"] = finish
    return types.GenerateContentResponse.model_validate(
        {"candidates": [candidate], "usage_metadata": usage or None}
    )


def test_answer_skips_thoughts_and_counts_thinking_as_output() -> None:
    assembler = convert.ResponseAssembler()
    pieces = assembler.feed(
        answer(
            [{"text": "pondering", "thought": True}, {"text": "Hello"}],
            prompt_token_count=5,
            candidates_token_count=2,
            thoughts_token_count=7,
        )
    )

    result = assembler.result()
    assert pieces == ["Hello"]
    assert (result.text, result.finish_reason) == ("Hello", "stop")
    assert result.usage == Usage(input_tokens=5, output_tokens=9)


def test_function_calls_with_and_without_ids() -> None:
    assembler = convert.ResponseAssembler()
    assembler.feed(
        answer(
            [
                {"function_call": {"name": "a", "args": {"x": 1}}},
                {"function_call": {"name": "b", "id": "issued", "args": None}},
            ]
        )
    )

    result = assembler.result()
    assert result.finish_reason == "tool_calls"  # Gemini said STOP
    assert result.tool_calls == (ToolCall("call_0_a", "a", {"x": 1}), ToolCall("issued", "b", {}))


@pytest.mark.parametrize(
    ("raw", "calls", "expected"),
    [
        ("STOP", (), "stop"),
        ("MAX_TOKENS", (), "length"),
        ("MAX_TOKENS", (ToolCall("i", "n", {}),), "length"),
        ("SAFETY", (), "content_filter"),
        ("MALFORMED_FUNCTION_CALL", (), "malformed_function_call"),
        (None, (), "stop"),
    ],
)
def test_finish_reasons(raw: str | None, calls: tuple[ToolCall, ...], expected: str) -> None:
    assert convert.finish_reason(raw, calls) == expected


def test_a_stream_is_finished_only_by_a_finish_reason_or_a_block() -> None:
    assembler = convert.ResponseAssembler()
    assembler.feed(answer([{"text": "Hel"}], finish=None))
    assert not assembler.finished

    assembler.feed(answer([{"text": "lo"}], prompt_token_count=1, candidates_token_count=1))
    assert assembler.finished
    assert assembler.result().text == "Hello"

    blocked = convert.ResponseAssembler()
    blocked.feed(
        types.GenerateContentResponse.model_validate(
            {"prompt_feedback": {"block_reason": "SAFETY"}}
        )
    )
    assert blocked.finished
    assert (blocked.result().text, blocked.result().finish_reason) == ("", "content_filter")


def test_embedding_count_must_match_the_batch() -> None:
    response = types.EmbedContentResponse.model_validate({"embeddings": [{"values": [0.5, 0.5]}]})

    assert convert.embedding_response(response, 1).embeddings == [[0.5, 0.5]]
    assert convert.embedding_response(response, 1).usage == Usage()
    with pytest.raises(ProviderServerError, match="1 embeddings for 2 texts"):
        convert.embedding_response(response, 2)
