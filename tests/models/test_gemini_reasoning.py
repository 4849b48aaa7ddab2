"""A Gemini model's thoughts are part of its answer: asked for with ``include_thoughts``, the
thought parts, signature included, come back as ``response.reasoning``, plain and streamed, on
the miss, the hit and from disk, never in the text, and go back on the wire unchanged in a later
turn (docs/models.md, Gemini)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from spark.testing import ProviderServer

MODEL = "gemini-2.5-flash"
QUESTION = "Which is larger, 9.11 or 9.9?"
THINK = {"thinking_config": {"include_thoughts": True}}


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_thoughts_come_back_on_the_miss_the_hit_and_from_disk(
    three_answers: Callable[..., Any], server: ProviderServer, streamed: bool
) -> None:
    miss, hit, from_disk = await three_answers(
        "gemini", MODEL, QUESTION, streamed=streamed, **THINK
    )

    (part,) = miss.reasoning
    assert part["thought"] is True
    assert part["text"].startswith("Thinking it over")
    assert base64.b64decode(part["thought_signature"]).startswith(b"sig")
    assert "Thinking" not in miss.text
    assert miss.text
    assert hit.reasoning == miss.reasoning == from_disk.reasoning
    assert miss.choices[0].reasoning == miss.reasoning
    assert server.count(provider="gemini") == 1


async def test_a_streamed_thought_is_never_yielded_as_answer_text(
    models: Callable[..., Any],
) -> None:
    model = models("gemini", MODEL)
    pieces = [piece async for piece in model.stream_text(QUESTION, **THINK)]

    assert pieces
    assert not any("Thinking" in piece for piece in pieces)


async def test_thoughts_go_back_unchanged_in_the_next_turn(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    model = models("gemini", MODEL)
    first = await model.generate(QUESTION, **THINK)
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [*first.reasoning, {"text": first.text}]},
        {"role": "user", "content": "Why?"},
    ]

    again = await model.generate(history, **THINK)

    (thought, answer) = server.requests[-1].body["contents"][1]["parts"]
    assert thought == {
        "text": first.reasoning[0]["text"],
        "thought": True,
        "thoughtSignature": first.reasoning[0]["thought_signature"],
    }
    assert answer == {"text": first.text}
    assert again.cached is False
    # The signature as bytes (a ``types.Part``'s spelling) is the same request: a hit.
    signed = {
        **first.reasoning[0],
        "thought_signature": base64.b64decode(first.reasoning[0]["thought_signature"]),
    }
    history[1] = {"role": "assistant", "content": [signed, {"text": first.text}]}
    assert (await model.generate(history, **THINK)).cached is True


async def test_an_answer_without_thoughts_asked_for_has_none(
    models: Callable[..., Any],
) -> None:
    response = await models("gemini", MODEL).generate(QUESTION)

    assert response.reasoning is None
    assert "reasoning" not in response.to_dict()
