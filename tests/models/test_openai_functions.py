"""An answer to legacy ``functions=`` is a tool call: chat completions' ``message.function_call``
(and its streamed deltas) comes back as ``response.tool_calls`` (id ``""``: that API gives none),
on the miss, the hit and from disk; the legacy history goes back on the wire as given
(docs/models.md, OpenAI). It was dropped: finish reason ``tool_calls`` with no call, never
cached."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from spark.testing import ProviderServer

MODEL = "gpt-4o-mini"
QUESTION = "What is the weather in Oslo?"
FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_function_call_comes_back_on_the_miss_the_hit_and_from_disk(
    three_answers: Callable[..., Any], server: ProviderServer, streamed: bool
) -> None:
    server.queue_tool_call("get_weather", {"city": "Oslo"})

    miss, hit, from_disk = await three_answers(
        "openai", MODEL, QUESTION, streamed=streamed, functions=FUNCTIONS
    )

    (call,) = miss.tool_calls
    assert (call.id, call.name, call.arguments) == ("", "get_weather", {"city": "Oslo"})
    assert miss.finish_reason == "tool_calls"
    assert hit.tool_calls == miss.tool_calls == from_disk.tool_calls
    assert server.count(provider="openai") == 1


async def test_the_legacy_history_goes_back_as_given(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    model = models("openai", MODEL)
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    asked = await model.generate(QUESTION, functions=FUNCTIONS)
    (call,) = asked.tool_calls
    called = {"name": call.name, "arguments": json.dumps(call.arguments)}
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "function_call": called},
        {"role": "function", "name": call.name, "content": "12 C"},
    ]

    answered = await model.generate(history, functions=FUNCTIONS)

    sent = server.requests[-1].body["messages"]
    assert sent[1]["function_call"] == called
    assert sent[2] == {"role": "function", "name": "get_weather", "content": "12 C"}
    assert "12 C" in answered.text
