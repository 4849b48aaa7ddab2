"""The pure Gemini translation (``spark.models._gemini_convert`` and its parts) and the answer
reading of ``spark.models._gemini_answers``, without a server.

Calls are prepared as a model prepares them; every built config is validated by the SDK's own
types, and answers are real ``google.genai.types`` objects.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from google.genai import types

from spark.errors import ConfigError, ProviderServerError
from spark.models import _gemini_convert as convert
from spark.models._gemini_answers import ResponseAssembler, embedding_response, finish_reason
from spark.models._gemini_contents import SKIP_THOUGHT_SIGNATURE, contents, keyed_contents
from spark.models._gemini_keyed import keyed
from spark.types import ToolCall, Usage

WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def prepared(messages: Any = "Hi", **params: Any) -> tuple[list[Any], dict[str, Any]]:
    arguments = convert.prepare_chat("gemini-2.0-flash", messages, params).arguments
    types.GenerateContentConfig.model_validate(arguments["config"])  # the SDK accepts it
    return arguments["contents"], arguments["config"]


def config_of(**params: Any) -> dict[str, Any]:
    return prepared("Hi", **params)[1]


def test_translation_never_imports_the_sdk() -> None:
    code = (
        "import sys; from spark.models import _gemini_convert as c; "
        "c.prepare_chat('m', 'Hi', {'temperature': 1, 'tools': [{'google_search': {}}]}); "
        "c.prepare_embedding('m', ['a'], {'dimensions': 8}); "
        "assert 'google.genai' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cache_model_id_drops_the_models_prefix() -> None:
    assert convert.cache_model_id("models/gemini-2.0-flash") == "gemini-2.0-flash"
    assert convert.cache_model_id("tunedModels/mine") == "tunedModels/mine"


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

    contents, _ = prepared(messages)

    assert [turn["role"] for turn in contents] == ["user", "model", "user"]
    first, second = contents[1]["parts"]
    # A made-up id is not sent back; one Gemini issued is.
    assert first == {
        "function_call": {"name": "get_weather", "args": {"city": "Oslo"}},
        "thought_signature": SKIP_THOUGHT_SIGNATURE,
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
        # Structured results are sent as data (``None``s included), not as JSON text.
        {"function_response": {"name": "get_weather", "response": {"result": {"temp": 3}}}},
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

    contents, _ = prepared([{"role": "user", "content": "go"}, *turn("x"), *turn("x")])

    assert [turn["role"] for turn in contents] == ["user", "model", "user", "model", "user"]


def test_tool_result_without_a_matching_call_is_refused() -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        prepared([{"role": "tool", "tool_call_id": "nowhere", "content": "22 C"}])


def test_system_text_in_the_middle_is_refused() -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Now be rude"}]

    with pytest.raises(ConfigError, match="system"):
        prepared(messages)


def test_system_prompt_comes_before_leading_system_messages() -> None:
    _, config = prepared(
        [{"role": "system", "content": "Two"}, {"role": "user", "content": "Hi"}],
        system_prompt="One",
    )

    assert config["system_instruction"] == {"parts": [{"text": "One"}, {"text": "Two"}]}


def test_images_and_empty_text() -> None:
    part = types.Part.from_bytes(data=b"pdf", mime_type="application/pdf")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": ""},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"inline_data": {"mime_type": "audio/wav", "data": "d2F2"}},
                part,
            ],
        }
    ]

    (turn,), _ = prepared(messages)

    assert turn["parts"] == [
        {"inline_data": {"mime_type": "image/png", "data": b"hello"}},
        {"file_data": {"file_uri": "https://example.com/cat.jpg", "mime_type": "image/jpeg"}},
        {"inline_data": {"mime_type": "audio/wav", "data": b"wav"}},
        part,
    ]
    types.Content.model_validate(turn)


def test_unknown_content_part_is_refused() -> None:
    with pytest.raises(ConfigError, match="content part"):
        prepared([{"role": "user", "content": [{"type": "video", "src": "x"}]}])


# -- config -------------------------------------------------------------------------------


def test_spark_names_take_gemini_fields_and_native_fields_stay_as_given() -> None:
    config = config_of(
        system_prompt="Be brief.",
        temperature=1,
        max_tokens=10,
        stop="END",
        n=1,
        seed=7,
        topP=0.9,
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        timeout=2.5,
    )

    assert config == {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "temperature": 1.0,
        "max_output_tokens": 10,
        "stop_sequences": ["END"],
        "seed": 7,
        "top_p": 0.9,
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "http_options": {"timeout": 2500},
    }


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"response_format": {"type": "text"}}, {}),
        ({"response_format": {"type": "json_object"}}, {"response_mime_type": "application/json"}),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
            {"response_mime_type": "application/json", "response_json_schema": SCHEMA},
        ),
        (
            {"response_format": SCHEMA},
            {"response_mime_type": "application/json", "response_json_schema": SCHEMA},
        ),
        (
            {"output_schema": SCHEMA},
            {"response_mime_type": "application/json", "response_json_schema": SCHEMA},
        ),
        ({"response_schema": SCHEMA}, {"response_schema": SCHEMA}),
        (
            {"output_schema": SCHEMA, "response_mime_type": "text/x.enum"},
            {"response_mime_type": "text/x.enum", "response_json_schema": SCHEMA},
        ),
    ],
)
def test_structured_output_spellings(params: dict[str, Any], expected: dict[str, Any]) -> None:
    assert config_of(**params) == expected


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [("low", {"thinking_level": "LOW"}), ("none", {"thinking_budget": 0})],
)
def test_reasoning_effort_is_a_thinking_config(effort: str, thinking: dict[str, Any]) -> None:
    assert config_of(reasoning_effort=effort) == {"thinking_config": thinking}


def test_tools_are_declarations_in_place_and_the_sdk_never_runs_them() -> None:
    config = config_of(
        tools=[{"code_execution": {}}, {**WEATHER, "description": "Weather"}, WEATHER],
        tool_choice="any",
    )

    declaration = {"name": "get_weather", "parameters_json_schema": WEATHER["parameters"]}
    assert config["tools"] == [
        {"code_execution": {}},
        {"function_declarations": [{**declaration, "description": "Weather"}, declaration]},
    ]
    assert config["automatic_function_calling"] == {"disable": True}
    assert config["tool_config"] == {"function_calling_config": {"mode": "ANY"}}


def test_tool_specs_with_a_json_wrapped_schema_are_tools() -> None:
    spec = {"name": "f", "parameters": {"json": SCHEMA}}

    assert (
        config_of(tool_specs=[spec])["tools"]
        == config_of(tools=[{**spec, "parameters": SCHEMA}])["tools"]
    )


def test_keyed_form_unifies_what_the_sdk_sends_alike() -> None:
    assert keyed({"thinkingBudget": 1, "includeThoughts": None}) == {"thinking_budget": 1}
    assert keyed({"mode": "any"}) == {"mode": "ANY"}
    assert keyed({"args": {"cityName": None}}) == {"args": {"cityName": None}}
    assert keyed({"properties": {"cityName": {"type": "string", "nullable": None}}}) == {
        "properties": {"cityName": {"type": "STRING"}}
    }
    assert keyed(b"ab") == {"$media": {"sha256": keyed(b"ab")["$media"]["sha256"], "bytes": 2}}


@pytest.mark.parametrize(
    "messages",
    [
        "Hi",
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ["a", {"text": "b"}]}],
        [{"role": "user", "parts": [{"text": "x", "thought": None}, {"text": None}, {"text": 3}]}],
        [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": b"\x89"}}]}],
        [
            {
                "role": "user",
                "parts": [{"videoMetadata": {"fps": None}, "fileData": {"fileUri": "u"}}],
            }
        ],
        [types.Content(role="user", parts=[types.Part(text="Hi"), types.Part(text="there")])],
    ],
)
def test_keyed_contents_is_the_generic_keyed_form(messages: Any) -> None:
    # The shape-aware walk of the cache-hit path must key exactly as the generic one.
    turns = contents(messages)[1]
    assert keyed_contents(turns) == keyed(turns)


@pytest.mark.parametrize(
    ("call_id", "sent"),
    [
        ("call_0_get", False),
        ("call_12_get", False),
        ("call_x_get", True),
        ("call__get", True),
        ("call_1_2_get", True),
        ("call_1_get_get", True),
        ("xcall_1_get", True),
        ("call_1_get2", True),
    ],
)
def test_only_ids_spark_made_up_are_held_back(call_id: str, sent: bool) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": call_id, "name": "get", "arguments": {}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "ok"},
    ]
    turns, _ = prepared(messages)

    assert ("id" in turns[1]["parts"][0]["function_call"]) is sent
    assert ("id" in turns[2]["parts"][0]["function_response"]) is sent


def test_embedding_call() -> None:
    call = convert.prepare_embedding(
        "m", ["a", "b"], {"dimensions": 8, "taskType": "X", "timeout": 1}
    )

    assert call.arguments == {
        "model": "m",
        "contents": [{"parts": [{"text": "a"}]}, {"parts": [{"text": "b"}]}],
        "config": {"output_dimensionality": 8, "task_type": "X", "http_options": {"timeout": 1000}},
    }
    assert call.body == {"input": ["a", "b"], "outputDimensionality": 8, "taskType": "X"}
    types.EmbedContentConfig.model_validate(call.arguments["config"])


# -- answers ------------------------------------------------------------------------------


def answer(parts: list[dict[str, Any]], finish: str | None = "STOP", **usage: int) -> Any:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finish_reason"] = finish
    return types.GenerateContentResponse.model_validate(
        {"candidates": [candidate], "usage_metadata": usage or None}
    )


def test_answer_skips_thoughts_and_counts_thinking_as_output() -> None:
    assembler = ResponseAssembler()
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
    assert result.usage == Usage(input_tokens=5, output_tokens=9, reasoning_tokens=7)


def test_candidates_are_kept_apart_by_index() -> None:
    assembler = ResponseAssembler()
    chunks = [
        [
            {"content": {"parts": [{"text": "A1"}]}},
            {"index": 1, "content": {"parts": [{"text": "B1"}]}},
        ],
        [{"index": 0, "content": {"parts": [{"text": "A2"}]}, "finish_reason": "STOP"}],
        [{"index": 1, "content": {"parts": [{"text": "B2"}]}, "finish_reason": "MAX_TOKENS"}],
    ]
    pieces = []
    for candidates in chunks:
        response = types.GenerateContentResponse.model_validate({"candidates": candidates})
        pieces.append(assembler.feed(response))
        if len(pieces) < 3:
            assert not assembler.finished

    result = assembler.result()
    # A candidate without an index (proto3 leaves out 0) is known by its place in the list.
    assert pieces == [["A1"], ["A2"], []]
    assert [(c.text, c.finish_reason) for c in result.choices] == [
        ("A1A2", "stop"),
        ("B1B2", "length"),
    ]
    assert assembler.finished


def test_function_calls_with_and_without_ids() -> None:
    assembler = ResponseAssembler()
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
    assert finish_reason(raw, calls) == expected


def test_a_stream_is_finished_only_by_a_finish_reason_or_a_block() -> None:
    assembler = ResponseAssembler()
    assembler.feed(answer([{"text": "Hel"}], finish=None))
    assert not assembler.finished

    assembler.feed(answer([{"text": "lo"}], prompt_token_count=1, candidates_token_count=1))
    assert assembler.finished
    assert assembler.result().text == "Hello"

    blocked = ResponseAssembler()
    blocked.feed(
        types.GenerateContentResponse.model_validate(
            {"prompt_feedback": {"block_reason": "SAFETY"}}
        )
    )
    assert blocked.finished
    assert (blocked.result().text, blocked.result().finish_reason) == ("", "content_filter")


def test_embedding_count_must_match_the_batch() -> None:
    response = types.EmbedContentResponse.model_validate({"embeddings": [{"values": [0.5, 0.5]}]})

    assert embedding_response(response, 1).embeddings == [[0.5, 0.5]]
    assert embedding_response(response, 1).usage == Usage()
    with pytest.raises(ProviderServerError, match="1 embeddings for 2 texts"):
        embedding_response(response, 2)
