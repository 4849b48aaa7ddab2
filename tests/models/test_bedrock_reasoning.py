"""A Bedrock model's reasoning (extended thinking) is part of its answer: the Converse
``reasoningContent`` blocks, signature included, come back as ``response.reasoning``, plain and
streamed, on the miss, the hit and from disk, and go back on the wire unchanged in a later turn
(docs/models.md, Bedrock)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from spark.models._bedrock_answers import parse_converse
from spark.testing import ProviderServer

MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
QUESTION = "Which is larger, 9.11 or 9.9?"
THINK = {"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_reasoning_comes_back_on_the_miss_the_hit_and_from_disk(
    three_answers: Callable[..., Any], server: ProviderServer, streamed: bool
) -> None:
    miss, hit, from_disk = await three_answers(
        "bedrock", MODEL, QUESTION, streamed=streamed, **THINK
    )

    (block,) = miss.reasoning
    thought = block["reasoningContent"]["reasoningText"]
    assert thought["text"].startswith("Thinking it over")
    assert thought["signature"].startswith("sig")
    assert miss.text.startswith("Answer ")  # the answer, apart from the reasoning
    assert hit.reasoning == miss.reasoning == from_disk.reasoning
    assert miss.choices[0].reasoning == miss.reasoning
    assert server.count(provider="bedrock") == 1


async def test_reasoning_goes_back_unchanged_in_the_next_turn(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    model = models("bedrock", MODEL)
    first = await model.generate(QUESTION, **THINK)
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [*first.reasoning, {"text": first.text}]},
        {"role": "user", "content": "Why?"},
    ]

    await model.generate(history, **THINK)

    sent = server.requests[-1].body["messages"][1]["content"]
    assert sent == [*first.reasoning, {"text": first.text}]


def test_an_answer_without_reasoning_has_none_and_redacted_reasoning_is_base64() -> None:
    plain = parse_converse({"output": {"message": {"content": [{"text": "9.9"}]}}})
    assert plain.reasoning is None
    assert "reasoning" not in plain.to_dict()
    redacted = parse_converse(
        {
            "output": {
                "message": {"content": [{"reasoningContent": {"redactedContent": b"\x00\xff"}}]}
            }
        }
    )
    (block,) = redacted.reasoning
    assert block == {
        "reasoningContent": {"redactedContent": base64.b64encode(b"\x00\xff").decode()}
    }
