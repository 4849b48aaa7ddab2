"""A Responses API model's reasoning is part of its answer: the ``reasoning`` output items
(summary and ``encrypted_content`` when asked for) come back as ``response.reasoning``, plain
and streamed, on the miss, the hit and from disk, never in the text, and go back on the wire
unchanged as input items of the next turn of a tool loop (docs/models.md, Responses API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spark.testing import ProviderServer

MODEL = "o4-mini"
QUESTION = "Which is larger, 9.11 or 9.9?"
THINK = {
    "reasoning": {"effort": "low", "summary": "auto"},
    "include": ["reasoning.encrypted_content"],
}
RESPONSES = {"api": "responses"}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_reasoning_items_come_back_on_the_miss_the_hit_and_from_disk(
    three_answers: Callable[..., Any], server: ProviderServer, streamed: bool
) -> None:
    miss, hit, from_disk = await three_answers(
        "openai", MODEL, QUESTION, streamed=streamed, options=RESPONSES, **THINK
    )

    (item,) = miss.reasoning
    assert item["type"] == "reasoning"
    assert item["id"].startswith("rs_")
    assert item["summary"][0]["text"].startswith("Thinking it over")
    assert item["encrypted_content"]
    assert "Thinking" not in miss.text
    assert miss.text
    assert hit.reasoning == miss.reasoning == from_disk.reasoning
    assert miss.choices[0].reasoning == miss.reasoning
    assert server.count(provider="openai") == 1


async def test_reasoning_items_go_back_unchanged_in_a_tool_loop(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    model = models("openai", MODEL, **RESPONSES)
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    first = await model.generate(QUESTION, tools=[WEATHER], **THINK)
    (call,) = first.tool_calls
    history = [
        {"role": "user", "content": QUESTION},
        *first.reasoning,
        {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
        {"role": "tool", "tool_call_id": call.id, "content": "12 C"},
    ]

    await model.generate(history, tools=[WEATHER], **THINK)

    sent = server.requests[-1].body["input"]
    assert sent[1] == first.reasoning[0]
    assert [item.get("type") for item in sent[2:]] == ["function_call", "function_call_output"]


async def test_an_answer_without_reasoning_asked_for_has_none(
    models: Callable[..., Any],
) -> None:
    response = await models("openai", MODEL, **RESPONSES).generate(QUESTION)

    assert response.reasoning is None
    assert "reasoning" not in response.to_dict()
