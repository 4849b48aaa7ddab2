"""Requests built from what users hand Spark go on the wire as the raw SDK sends them, and two
different requests never share a key (docs/models.md, "Request fields"): found by comparing the
raw SDKs' requests with Spark's on the local server."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from spark.errors import ConfigError
from spark.models._bedrock_answers import parse_converse
from spark.testing import ProviderServer

Models = Callable[..., Any]
PNG = base64.b64encode(
    b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2
).decode()  # (long: keyed as a digest)
BEDROCK = "anthropic.claude-3-7-sonnet-20250219-v1:0"


def image_message(url: str) -> list[dict[str, Any]]:
    part = {"type": "image_url", "image_url": {"url": url}}
    return [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, part]}]


def test_data_urls_that_differ_in_a_media_type_parameter_have_different_keys(
    models: Models,
) -> None:
    model = models("openai", "gpt-4o-mini")
    cat = image_message(f"data:image/png;name=cat.png;base64,{PNG}")
    dog = image_message(f"data:image/png;name=dog.png;base64,{PNG}")
    plain = image_message(f"data:image/png;base64,{PNG}")

    assert len({model.cache_key(cat), model.cache_key(dog), model.cache_key(plain)}) == 3
    note = "data:text/plain;charset=utf-8;base64," + "QUJD" * 80  # a long text message too
    assert model.cache_key(note) != model.cache_key(note.replace("utf-8", "utf-16"))


@pytest.mark.parametrize(("provider", "options"), [("openai", {}), ("openai", {"api": "responses"}), ("bedrock", {})])  # fmt: skip
async def test_text_that_only_starts_like_a_data_url_is_sent(
    models: Models, server: ProviderServer, provider: str, options: dict[str, Any]
) -> None:
    text = "data:image/png;base64,iVBOR " + "x" * 300 + " — qu'est-ce que c'est ? 😀"
    model_id = "gpt-4o-mini" if provider == "openai" else BEDROCK

    answer = await models(provider, model_id, **options).generate(text)

    assert answer.text
    assert text in json.dumps(server.requests[-1].body, ensure_ascii=False)


@pytest.mark.parametrize(
    ("content", "sent"),
    [
        ([{"id": 1, "total": 9.5}], [{"id": 1, "total": 9.5}]),
        ([1, 2, 3], [1, 2, 3]),
        (42, 42),
        ([{"type": "text", "text": "12 "}, "C"], "12 C"),
        ("12 C", "12 C"),
    ],
)
async def test_a_gemini_tool_result_is_sent_as_the_data_or_text_it_is(
    models: Models, server: ProviderServer, content: Any, sent: Any
) -> None:
    call = {"id": "c1", "name": "totals", "arguments": {}}
    history = [
        {"role": "user", "content": "Totals?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": content},
    ]

    await models("gemini", "gemini-2.0-flash").generate(history)

    (part,) = server.requests[-1].body["contents"][-1]["parts"]
    assert part["functionResponse"]["response"] == {"result": sent}


def test_gemini_tool_results_of_different_data_have_different_keys(models: Models) -> None:
    model = models("gemini", "gemini-2.0-flash")

    def history(content: Any) -> list[dict[str, Any]]:
        call = {"id": "c1", "name": "totals", "arguments": {}}
        return [
            {"role": "user", "content": "Totals?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": content},
        ]

    assert model.cache_key(history([12])) != model.cache_key(history([1, 2]))


async def test_bedrock_redacted_reasoning_goes_back_as_the_bytes_it_was(
    models: Models, server: ProviderServer
) -> None:
    secret = b"\x00\x01opaque-redacted-blob\xff"
    native = {"reasoningContent": {"redactedContent": secret}}
    answer = parse_converse({"output": {"message": {"content": [native, {"text": "4"}]}}})
    model = models("bedrock", BEDROCK)
    spark_turn = {"role": "assistant", "content": [*answer.reasoning, {"text": "4"}]}
    native_turn = {"role": "assistant", "content": [native, {"text": "4"}]}

    await model.generate([{"role": "user", "content": "2+2?"}, spark_turn, {"role": "user", "content": "3+3?"}])  # fmt: skip

    block = server.requests[-1].body["messages"][1]["content"][0]["reasoningContent"]
    assert base64.b64decode(block["redactedContent"]) == secret  # encoded once, as boto3 does
    ask = [{"role": "user", "content": "2+2?"}]
    assert model.cache_key([*ask, spark_turn]) == model.cache_key([*ask, native_turn])


async def test_openai_content_stays_null_next_to_audio(
    models: Models, server: ProviderServer
) -> None:
    spoken = {"role": "assistant", "content": None, "audio": {"id": "audio_1"}}

    await models("openai", "gpt-4o-audio-preview").generate(
        [{"role": "user", "content": "Hi"}, spoken, {"role": "user", "content": "Again"}]
    )

    assert server.requests[-1].body["messages"][1] == spoken


async def test_gemini_response_schema_as_a_pydantic_class(
    models: Models, server: ProviderServer
) -> None:
    class City(BaseModel):
        name: str
        population: int

    await models("gemini", "gemini-2.5-flash").generate(
        "Largest city of Peru?", response_mime_type="application/json", response_schema=City
    )

    schema = server.requests[-1].body["generationConfig"]["responseSchema"]
    assert set(schema["properties"]) == {"name", "population"}


async def test_a_responses_output_message_goes_back_as_given(
    models: Models, server: ProviderServer
) -> None:
    earlier = {
        "type": "message",
        "id": "msg_2",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Lisbon.", "annotations": []}],
    }

    await models("openai", "gpt-4o-mini", api="responses").generate(
        [
            {"role": "user", "content": "Capital of Portugal?"},
            earlier,
            {"role": "user", "content": "Why?"},
        ]
    )

    assert server.requests[-1].body["input"][1] == earlier


async def test_gemini_takes_config_as_the_sdk_does(models: Models, server: ProviderServer) -> None:
    from google.genai import types

    model = models("gemini", "gemini-2.0-flash")
    config = types.GenerateContentConfig(
        temperature=0.2,
        max_output_tokens=50,
        tools=[types.Tool(google_search=types.GoogleSearch())],
    )

    await model.generate("Harbour news?", config=config)

    body = server.requests[-1].body
    assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50}
    assert body["tools"] == [{"googleSearch": {}}]
    by_name = {"temperature": 0.2, "max_output_tokens": 50, "tools": [{"google_search": {}}]}
    assert model.cache_key("Harbour news?", config=config) == model.cache_key(
        "Harbour news?", **by_name
    )
    assert model.cache_key("Harbour news?", config=dict(by_name)) == model.cache_key(
        "Harbour news?", **by_name
    )
    with pytest.raises(ConfigError, match="temperature given both"):
        model.cache_key("Harbour news?", config=config, temperature=0.3)


def test_a_gemini_system_instruction_as_one_part_is_the_same_request(models: Models) -> None:
    from google.genai import types

    model = models("gemini", "gemini-2.0-flash")
    keys = {
        model.cache_key("Hi", system_instruction=given)
        for given in (
            "Be brief.",
            ["Be brief."],
            types.Part(text="Be brief."),
            {"text": "Be brief."},
        )
    }

    assert len(keys) == 1  # the SDK sends each as one user turn of that text


def test_an_sdk_object_given_as_a_parameter_is_keyed_as_the_sdk_sends_it(models: Models) -> None:
    """The SDK sends a pydantic parameter's fields as set (a ``None`` set is sent as null), so
    ``Reasoning(effort="low", summary=None)`` and ``Reasoning(effort="low")`` are two requests;
    the latter is the same request as its dict."""
    from openai.types.shared import Reasoning

    model = models("openai", "o4-mini", api="responses")

    def key(value: Any) -> str:
        return str(model.cache_key("Hi", reasoning=value))

    assert key(Reasoning(effort="low", summary=None)) != key(Reasoning(effort="low"))
    assert key(Reasoning(effort="low")) == key({"effort": "low"})


async def test_a_whole_number_given_as_a_float_in_a_gemini_config_is_the_same_request(
    models: Models, server: ProviderServer
) -> None:
    model = models("gemini", "gemini-2.5-flash")

    await model.generate("Hi", thinking_config={"thinking_budget": 1024.0})

    assert server.requests[-1].body["generationConfig"]["thinkingConfig"]["thinking_budget"] == 1024
    as_float = model.cache_key("Hi", thinking_config={"thinking_budget": 1024.0})
    assert as_float == model.cache_key("Hi", thinking_config={"thinking_budget": 1024})
    assert as_float != model.cache_key("Hi", thinking_config={"thinking_budget": 1025})
