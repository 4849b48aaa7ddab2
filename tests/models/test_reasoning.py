"""A model's reasoning is part of its answer, in the provider's own shape, signatures included:
Bedrock's ``reasoningContent`` blocks, Gemini's thought parts and the Responses API's
``reasoning`` items come back as ``response.reasoning``, plain and streamed, on the miss, the hit
and from disk, never in the text, and go back on the wire unchanged in a later turn
(docs/models.md, "Reasoning")."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from spark.models._bedrock_answers import parse_converse
from spark.testing import ProviderServer

QUESTION = "Which is larger, 9.11 or 9.9?"
# provider, model id, model options, call keywords: each a request that asks the model to think.
THINKING: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "bedrock": ("bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0", {}, {"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}),
    "gemini": ("gemini", "gemini-2.5-flash", {}, {"thinking_config": {"include_thoughts": True}}),
    "responses": ("openai", "o4-mini", {"api": "responses"}, {"reasoning": {"effort": "low", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}),
}  # fmt: skip
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def thought_and_signature(case: str, reasoning: list[dict[str, Any]]) -> tuple[str, str]:
    """The one thought of an answer and its signature, read in the provider's own shape."""
    (item,) = reasoning
    if case == "bedrock":
        thought = item["reasoningContent"]["reasoningText"]
        return thought["text"], thought["signature"]
    if case == "gemini":
        assert item["thought"] is True
        return item["text"], base64.b64decode(item["thought_signature"]).decode()
    assert (item["type"], item["id"][:3]) == ("reasoning", "rs_")
    return item["summary"][0]["text"], item["encrypted_content"]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("case", sorted(THINKING))
async def test_reasoning_comes_back_on_the_miss_the_hit_and_from_disk(
    three_answers: Callable[..., Any], server: ProviderServer, case: str, streamed: bool
) -> None:
    provider, model_id, options, keywords = THINKING[case]

    miss, hit, from_disk = await three_answers(
        provider, model_id, QUESTION, streamed=streamed, options=options, **keywords
    )

    thought, signature = thought_and_signature(case, miss.reasoning)
    assert thought.startswith("Thinking it over")
    assert signature
    assert miss.text
    assert "Thinking" not in miss.text  # the answer, apart from the reasoning
    assert hit.reasoning == miss.reasoning == from_disk.reasoning
    assert miss.choices[0].reasoning == miss.reasoning
    assert server.count(provider=provider) == 1


@pytest.mark.parametrize("case", sorted(THINKING))
async def test_a_streamed_thought_is_never_yielded_as_answer_text(
    models: Callable[..., Any], case: str
) -> None:
    provider, model_id, options, keywords = THINKING[case]
    model = models(provider, model_id, **options)

    pieces = [piece async for piece in model.stream_text(QUESTION, **keywords)]

    assert pieces
    assert not any("Thinking" in piece for piece in pieces)


async def test_an_answer_without_reasoning_asked_for_has_none(
    models: Callable[..., Any],
) -> None:
    for provider, model_id, options, _ in THINKING.values():
        answer = await models(provider, model_id, **options).generate(QUESTION)
        assert answer.reasoning is None
        assert "reasoning" not in answer.to_dict()


@pytest.mark.parametrize("case", ["bedrock", "gemini"])
async def test_reasoning_goes_back_unchanged_at_the_start_of_the_assistant_turn(
    models: Callable[..., Any], server: ProviderServer, case: str
) -> None:
    provider, model_id, options, keywords = THINKING[case]
    model = models(provider, model_id, **options)
    first = await model.generate(QUESTION, **keywords)
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [*first.reasoning, {"text": first.text}]},
        {"role": "user", "content": "Why?"},
    ]

    await model.generate(history, **keywords)

    if case == "bedrock":
        assert server.requests[-1].body["messages"][1]["content"] == history[1]["content"]
        return
    thought, answer = server.requests[-1].body["contents"][1]["parts"]
    assert thought == {  # the SDK's wire spelling of the same part
        "text": first.reasoning[0]["text"],
        "thought": True,
        "thoughtSignature": first.reasoning[0]["thought_signature"],
    }
    assert answer == {"text": first.text}


async def test_a_gemini_signature_as_base64_text_or_as_bytes_is_one_request(
    models: Callable[..., Any],
) -> None:
    provider, model_id, _, keywords = THINKING["gemini"]
    model = models(provider, model_id)
    first = await model.generate(QUESTION, **keywords)
    as_text = first.reasoning[0]
    as_bytes = {**as_text, "thought_signature": base64.b64decode(as_text["thought_signature"])}

    def history(thought: dict[str, Any]) -> list[dict[str, Any]]:
        turn = {"role": "assistant", "content": [thought, {"text": first.text}]}
        return [{"role": "user", "content": QUESTION}, turn, {"role": "user", "content": "Why?"}]

    assert (await model.generate(history(as_text), **keywords)).cached is False
    assert (await model.generate(history(as_bytes), **keywords)).cached is True


async def test_responses_reasoning_items_go_back_unchanged_in_a_tool_loop(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    provider, model_id, options, keywords = THINKING["responses"]
    model = models(provider, model_id, **options)
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    asked = await model.generate(QUESTION, tools=[WEATHER], **keywords)
    (call,) = asked.tool_calls
    history = [
        {"role": "user", "content": QUESTION},
        *asked.reasoning,
        {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 C"},
    ]

    await model.generate(history, tools=[WEATHER], **keywords)

    sent = server.requests[-1].body["input"]
    assert sent[1] == asked.reasoning[0]
    assert [item.get("type") for item in sent[2:]] == ["function_call", "function_call_output"]


def test_bedrock_redacted_reasoning_is_base64() -> None:
    blocks = [{"reasoningContent": {"redactedContent": b"\x00\xff"}}]
    redacted = parse_converse({"output": {"message": {"content": blocks}}})

    (block,) = redacted.reasoning
    assert block == {
        "reasoningContent": {"redactedContent": base64.b64encode(b"\x00\xff").decode()}
    }
    assert json.loads(json.dumps(redacted.to_dict()))["reasoning"] == [block]


def _gemini(parts: list[dict[str, Any]]) -> Any:
    from google.genai import types

    return types.GenerateContentResponse.model_validate(
        {"candidates": [{"index": 0, "content": {"role": "model", "parts": parts}}]}
    )


def test_gemini_thoughts_of_one_answer_stay_apart_and_a_streams_pieces_join() -> None:
    pytest.importorskip("google.genai")
    from spark.models._gemini_answers import ResponseAssembler

    image = {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}, "thought": True}
    plain = ResponseAssembler()
    plain.feed(_gemini([{"text": "Think A.", "thought": True}, image, {"text": "Think B.", "thought": True}]))  # fmt: skip
    assert [part.get("text") for part in plain.result().reasoning] == ["Think A.", None, "Think B."]

    streamed = ResponseAssembler()
    for piece in ({"text": "Think ", "thought": True}, {"text": "A.", "thought": True}):
        streamed.feed(_gemini([piece]))
    streamed.feed(_gemini([image]))
    (joined, picture) = streamed.result().reasoning
    assert joined == {"text": "Think A.", "thought": True}
    assert picture["inline_data"]["mime_type"] == "image/png"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_gemini_calls_signature_goes_back_with_the_call(
    models: Callable[..., Any], server: ProviderServer, streamed: bool
) -> None:
    """Gemini signs the calls of a model that thinks; the signature is ``ToolCall.signature``
    (on the hit and from disk too) and goes back with the call, not Google's skip-the-validator
    stand-in, so the model keeps its reasoning through the loop."""
    provider, model_id, _, keywords = THINKING["gemini"]
    model = models(provider, model_id)
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    if streamed:
        [piece async for piece in model.stream_text(QUESTION, tools=[WEATHER], **keywords)]
    asked = await model.generate(QUESTION, tools=[WEATHER], **keywords)
    (call,) = asked.tool_calls
    assert call.signature
    assert base64.b64decode(call.signature).startswith(b"call-sig")
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 C"},
    ]

    await model.generate(history, tools=[WEATHER], **keywords)

    (part,) = server.requests[-1].body["contents"][1]["parts"]
    assert part["thoughtSignature"] == call.signature
    assert set(part["functionCall"]) >= {"name", "args"}


async def test_a_call_without_a_signature_carries_the_stand_in_and_others_never_see_one(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    signed = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}
    signed["signature"] = base64.b64encode(b"from gemini").decode()
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "", "tool_calls": [signed]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
    ]
    unsigned = {k: v for k, v in signed.items() if k != "signature"}

    gemini = models("gemini", "gemini-2.5-flash")
    await gemini.generate(
        [history[0], {**history[1], "tool_calls": [unsigned]}, history[2]], tools=[WEATHER]
    )
    (part,) = server.requests[-1].body["contents"][1]["parts"]
    assert base64.b64decode(part["thoughtSignature"]) == b"skip_thought_signature_validator"
    await models("openai", "gpt-4o-mini").generate(history, tools=[WEATHER])
    sent = server.requests[-1].body["messages"][1]["tool_calls"][0]
    assert "signature" not in json.dumps(sent)
    await models("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0").generate(
        history, tools=[WEATHER]
    )
    assert "signature" not in json.dumps(server.requests[-1].body["messages"][1])
