"""An agent's tool loop with a thinking model hands the model's reasoning back as its provider
asks: Bedrock's reasoning blocks and Gemini's thought parts open the remembered assistant turn
(Bedrock refuses a tool loop with thinking whose last assistant turn does not start with its
thinking), and the Responses API's reasoning items go back as items before the call
(docs/agents.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spark.agents import Agent, AgentConfig
from spark.models.base import Model
from spark.testing import ProviderServer

MakeModel = Callable[..., Model]
THINKING: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "bedrock": ("bedrock", {"model_id": "anthropic.claude-3-7-sonnet-20250219-v1:0"}, {"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}}),
    "gemini": ("gemini", {"model_id": "gemini-2.5-flash"}, {"thinking_config": {"include_thoughts": True}}),
    "responses": ("openai", {"model_id": "o4-mini", "api": "responses"}, {"reasoning": {"effort": "low", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}),
}  # fmt: skip


def lookup_stock(sku: str) -> dict[str, Any]:
    """Units in stock of one product.

    Args:
        sku: The product code.
    """
    return {"sku": sku, "units": 17}


def assistant_turn_sent(case: str, body: dict[str, Any]) -> list[Any]:
    """What the second request sent for the first answer, in the provider's own spelling."""
    if case == "bedrock":
        return list(body["messages"][1]["content"])
    if case == "gemini":
        return list(body["contents"][1]["parts"])
    return list(body["input"][1:3])  # the reasoning item, then the function call


@pytest.mark.parametrize("case", sorted(THINKING))
async def test_the_tool_loop_hands_the_reasoning_back(
    make_model: MakeModel, server: ProviderServer, case: str
) -> None:
    provider, options, thinking = THINKING[case]
    server.queue_tool_call("lookup_stock", {"sku": "A-1"}, provider=provider)
    agent = Agent(
        AgentConfig(model=make_model(provider, **options), tools=[lookup_stock], params=thinking)
    )

    result = await agent.run_detailed("How many A-1?")

    first = result.steps[0].response
    assert first.reasoning
    sent = assistant_turn_sent(case, server.requests[-1].body)
    if case == "bedrock":
        assert sent[0] == first.reasoning[0]
        assert "toolUse" in sent[-1]
    elif case == "gemini":
        assert sent[0]["thought"] is True
        assert sent[0]["thoughtSignature"] == first.reasoning[0]["thought_signature"]
        assert "functionCall" in sent[-1]
    else:
        assert sent[0] == first.reasoning[0]
        assert sent[1]["type"] == "function_call"
    assert result.stop_reason == "answer"
    assert "17" in result.text


async def test_an_agent_without_thinking_remembers_turns_as_before(
    make_model: MakeModel, server: ProviderServer
) -> None:
    server.queue_tool_call("lookup_stock", {"sku": "A-1"}, provider="bedrock")
    agent = Agent(AgentConfig(model=make_model("bedrock"), tools=[lookup_stock]))

    await agent.run_detailed("How many A-1?")

    (block,) = server.requests[-1].body["messages"][1]["content"]
    assert set(block) == {"toolUse"}  # no reasoning, no empty text block
