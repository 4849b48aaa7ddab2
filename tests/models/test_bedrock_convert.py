"""The pure Bedrock translation rules (no SDK, no server): messages, tools, answers, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spark.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
)
from spark.models._bedrock_answers import StreamAssembler, finish_reason, parse_converse
from spark.models._bedrock_convert import prepare_chat, prepare_embedding
from spark.models.bedrock import _classify_error
from spark.models.wire import call_params
from spark.types import ToolCall, Usage

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TOOL = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}


def converse(messages: Any, **kwargs: Any) -> dict[str, Any]:
    return prepare_chat(MODEL, messages, call_params({}, kwargs)).arguments


def test_parallel_tool_results_merge_into_one_user_message() -> None:
    calls = [{"id": "a", "name": "lookup", "arguments": {"q": 1}}, {"id": "b", "name": "lookup"}]
    sent = converse(
        [
            {"role": "user", "content": "Look up both"},
            {"role": "assistant", "content": "", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "a", "content": "one"},
            {"role": "tool", "tool_call_id": "b", "content": {"value": 2}},
            {"role": "user", "content": "and now?"},
        ],
        tools=[TOOL],
    )["messages"]

    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"toolUse": {"toolUseId": "a", "name": "lookup", "input": {"q": 1}}},
        {"toolUse": {"toolUseId": "b", "name": "lookup", "input": {}}},
    ]
    assert sent[2]["content"] == [
        {"toolResult": {"toolUseId": "a", "content": [{"text": "one"}]}},
        {"toolResult": {"toolUseId": "b", "content": [{"text": '{"value": 2}'}]}},
        {"text": "and now?"},
    ]


def test_an_empty_text_block_next_to_others_is_left_out_and_kept_alone() -> None:
    """Converse refuses ``{"text": ""}`` beside other blocks (docs/models.md, Bedrock)."""
    use = {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}
    sent = converse(
        [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": ""}, use]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": []}}]},
            {"role": "assistant", "content": [{"text": ""}]},
            {"role": "user", "content": "go on"},
        ],
        tools=[TOOL],
    )["messages"]

    assert sent[1]["content"] == [use]
    assert sent[3]["content"] == [{"text": ""}]


def test_openai_style_tool_calls_in_history_are_translated() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":3}'}}
    sent = converse(
        [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [call]}],
        tools=[TOOL],
    )["messages"]

    assert sent[1]["content"] == [
        {"toolUse": {"toolUseId": "c1", "name": "lookup", "input": {"q": 3}}}
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ("any", {"any": {}}),
        ("lookup", {"tool": {"name": "lookup"}}),
        ({"type": "function", "function": {"name": "lookup"}}, {"tool": {"name": "lookup"}}),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    config = converse("q", tools=[TOOL], tool_choice=choice)["toolConfig"]

    assert config.get("toolChoice") == expected
    assert config["tools"] == [
        {"toolSpec": {"name": "lookup", "inputSchema": {"json": TOOL["parameters"]}}}
    ]


def test_tool_choice_none_sends_no_tools_unless_history_holds_tool_blocks() -> None:
    assert "toolConfig" not in converse("q", tools=[TOOL], tool_choice="none")
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [{"id": "a", "name": "lookup", "arguments": {}}]},
        {"role": "tool", "tool_call_id": "a", "content": "r"},
    ]
    config = converse(history, tools=[TOOL], tool_choice="none")["toolConfig"]
    assert "toolChoice" not in config


def test_params_split_between_inference_config_and_model_fields() -> None:
    kwargs = converse(
        "q",
        system_prompt=["one", "two"],
        max_tokens=10,
        temperature=0,
        stop=["x"],
        top_k=3,
        n=1,
        additionalModelRequestFields={"anthropic_beta": ["b"]},
        guardrailConfig={"guardrailIdentifier": "g", "guardrailVersion": "1"},
    )

    assert kwargs["system"] == [{"text": "one"}, {"text": "two"}]
    assert kwargs["inferenceConfig"] == {
        "maxTokens": 10,
        "temperature": 0.0,
        "stopSequences": ["x"],
    }
    assert kwargs["additionalModelRequestFields"] == {"anthropic_beta": ["b"], "top_k": 3}
    assert "n" not in kwargs
    assert kwargs["guardrailConfig"]["guardrailIdentifier"] == "g"


def test_openai_json_schema_becomes_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}}

    text_format = converse("q", response_format=response_format)["outputConfig"]["textFormat"]

    definition = text_format["structure"]["jsonSchema"]
    assert (text_format["type"], definition["name"]) == ("json_schema", "thing")
    assert json.loads(definition["schema"]) == schema


def test_json_object_and_text_response_formats() -> None:
    text_format = converse("q", response_format={"type": "json_object"})["outputConfig"][
        "textFormat"
    ]

    assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == {"type": "object"}
    plain = converse("q", response_format={"type": "text"})
    assert "outputConfig" not in plain
    assert "additionalModelRequestFields" not in plain


def test_parse_converse_text_tool_calls_and_usage() -> None:
    response = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"q": "x"}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10},
    }

    parsed = parse_converse(response)

    assert parsed.text == "Let me check."
    assert parsed.tool_calls == (ToolCall("t1", "lookup", {"q": "x"}),)
    assert (parsed.finish_reason, parsed.usage) == ("tool_calls", Usage(7, 3))


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("malformed_tool_use", "malformed_tool_use"),
    ],
)
def test_finish_reasons(stop: str, reason: str) -> None:
    assert finish_reason(stop) == reason


def test_stream_that_ends_without_message_stop_is_broken() -> None:
    assembler = StreamAssembler(MODEL)
    assembler.add({"contentBlockDelta": {"delta": {"text": "half"}, "contentBlockIndex": 0}})

    with pytest.raises(ProviderServerError, match="messageStop"):
        assembler.response()


def test_stream_with_bad_tool_json_is_broken() -> None:
    assembler = StreamAssembler(MODEL)
    start = {"toolUse": {"toolUseId": "t", "name": "lookup"}}
    assembler.add({"contentBlockStart": {"start": start, "contentBlockIndex": 1}})
    assembler.add(
        {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"q":'}}, "contentBlockIndex": 1}}
    )
    assembler.add({"messageStop": {"stopReason": "tool_use"}})

    with pytest.raises(ProviderServerError, match="not JSON"):
        assembler.response()


@pytest.mark.parametrize(
    ("status", "code", "streaming", "error", "reported"),
    [
        (403, "AccessDeniedException", False, AuthenticationError, 403),
        (400, "ExpiredTokenException", False, AuthenticationError, 400),
        (429, "ThrottlingException", False, RateLimitError, 429),
        (400, "ValidationException", False, BadRequestError, 400),
        (404, "ResourceNotFoundException", False, BadRequestError, 404),
        (408, "ModelTimeoutException", False, ProviderConnectionError, 408),
        (424, "ModelErrorException", False, ProviderServerError, 424),
        (500, "InternalServerException", False, ProviderServerError, 500),
        (409, "ConflictException", False, ProviderError, 409),
        (None, "throttlingException", True, RateLimitError, 429),
        (None, "validationException", True, BadRequestError, 400),
        (None, "internalServerException", True, ProviderServerError, 500),
        (None, "modelStreamErrorException", True, ProviderServerError, 424),
        (None, "somethingNewException", True, ProviderServerError, None),
    ],
)
def test_classify_error(
    status: int | None, code: str, streaming: bool, error: type[ProviderError], reported: int | None
) -> None:
    assert _classify_error(status, code, streaming=streaming) == (error, reported)


def test_titan_bodies_carry_the_parameters_and_refuse_transport_options() -> None:
    call = prepare_embedding("amazon.titan-embed-text-v2:0", ["hi"], {"dimensions": 256})

    assert [json.loads(body) for body in call.arguments["bodies"]] == [
        {"inputText": "hi", "dimensions": 256}
    ]
    assert call.body == {"requests": [{"inputText": "hi", "dimensions": 256}]}
    with pytest.raises(ConfigError, match="timeout is not a per-call option of bedrock"):
        prepare_embedding("amazon.titan-embed-text-v2:0", ["hi"], {"timeout": 3})
