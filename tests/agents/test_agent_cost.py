"""Agent cost figures, checked against hand-computed prices of the server's token counts."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from spark.agents import (
    Agent,
    AgentConfig,
    CostStats,
    reset_total_cost_stats,
    total_cost_stats,
)
from spark.models.base import Model
from spark.testing import ProviderServer
from spark.types import ModelResponse, Price, Usage

MakeModel = Callable[..., Model]
PRICE = Price(input_per_million=2.0, output_per_million=8.0)
QUESTION = "What is two plus two?"  # 21 characters


def tokens(chars: int) -> int:
    """The local server bills one token per four characters (at least one)."""
    return max(1, math.ceil(chars / 4))


@pytest.mark.parametrize("provider", ["openai", "bedrock", "gemini"])
async def test_cost_of_a_plain_answer_and_of_its_replay(
    provider: str, make_model: MakeModel, server: ProviderServer
) -> None:
    server.answer_chars = 400
    buyer = Agent(AgentConfig(model=make_model(provider, pricing=PRICE)))
    result = await buyer.run_detailed(QUESTION)

    # 21 characters in -> 6 tokens; 400 characters out -> 100 tokens.
    assert result.steps[0].response.usage == Usage(input_tokens=6, output_tokens=100)
    expected = (6 * 2.0 + 100 * 8.0) / 1_000_000  # = 0.000812 USD
    assert buyer.get_cost_stats() == CostStats(
        total_cost=pytest.approx(expected),  # type: ignore[arg-type]
        saved_cost=0.0,
        input_tokens=6,
        output_tokens=100,
        calls=1,
        cache_hits=0,
    )

    replayer = Agent(AgentConfig(model=make_model(provider, pricing=PRICE)))
    await replayer.run(QUESTION)

    stats = replayer.get_cost_stats()
    assert (stats.total_cost, stats.cache_hits, stats.calls) == (0.0, 1, 1)
    assert stats.saved_cost == pytest.approx(0.000812)
    assert stats.hit_rate == 1.0
    total = total_cost_stats()
    assert total.total_cost == pytest.approx(0.000812)
    assert total.saved_cost == pytest.approx(0.000812)
    assert (total.calls, total.cache_hits, total.cache_misses) == (2, 1, 1)


async def test_cost_of_a_tool_loop_is_the_sum_of_its_priced_steps(
    make_model: MakeModel, server: ProviderServer
) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    server.queue_tool_call("add", {"a": 2, "b": 3})
    agent = Agent(AgentConfig(model=make_model("openai", pricing=PRICE), tools=[add]))

    result = await agent.run_detailed("2 + 3?")

    asked, answered = (step.response.usage for step in result.steps)
    # The tool call's "output" is its arguments JSON: '{"a": 2, "b": 3}' is 16 characters.
    assert asked.output_tokens == tokens(len('{"a": 2, "b": 3}'))
    assert answered.output_tokens == tokens(200)
    expected = sum(u.input_tokens * 2.0 + u.output_tokens * 8.0 for u in (asked, answered)) / 1e6
    stats = agent.get_cost_stats()
    assert stats.total_cost == pytest.approx(expected)
    assert stats.input_tokens == asked.input_tokens + answered.input_tokens
    assert stats.output_tokens == asked.output_tokens + answered.output_tokens
    assert result.usage == Usage(stats.input_tokens, stats.output_tokens)
    assert result.total_cost == pytest.approx(expected)
    for step in result.steps:
        usage = step.response.usage
        assert step.response.cost_usd == pytest.approx(
            (usage.input_tokens * 2.0 + usage.output_tokens * 8.0) / 1e6
        )


async def test_agent_and_process_totals_add_up_and_reset(
    make_model: MakeModel, server: ProviderServer
) -> None:
    first = Agent(AgentConfig(model=make_model(pricing=PRICE), name="first"))
    second = Agent(AgentConfig(model=make_model(pricing=PRICE), name="second"))
    await first.run("One")
    await second.run("Two")
    await second.run("Three")

    combined = first.get_cost_stats() + second.get_cost_stats()
    assert total_cost_stats() == combined
    assert Agent.get_total_cost_stats() == combined
    assert combined.calls == 3

    first.reset()  # forgets the conversation, not the money
    assert first.get_cost_stats().calls == 1
    first.reset_cost_stats()
    assert first.get_cost_stats() == CostStats()
    assert total_cost_stats().calls == 3

    Agent.reset_total_cost_stats()
    assert total_cost_stats() == CostStats()
    await first.run("Four")
    assert total_cost_stats().calls == 1
    reset_total_cost_stats()
    assert Agent.get_total_cost_stats() == CostStats()


async def test_unpriced_model_costs_nothing_but_is_counted(
    make_model: MakeModel, server: ProviderServer
) -> None:
    agent = Agent(AgentConfig(model=make_model(model_id="house-model-1", pricing={})))
    await agent.run("Hello")

    stats = agent.get_cost_stats()
    assert (stats.total_cost, stats.unpriced_calls, stats.calls) == (0.0, 1, 1)
    assert stats.input_tokens > 0


def test_cost_stats_of_responses() -> None:
    usage = Usage(1000, 500)
    miss = ModelResponse("a", usage=usage, cost_usd=0.25, cached=False)
    hit = ModelResponse("a", usage=usage, cost_usd=0.25, cached=True)

    total = CostStats.of_response(miss) + CostStats.of_response(hit)

    assert total == CostStats(
        total_cost=0.25,
        saved_cost=0.25,
        input_tokens=1000,
        output_tokens=500,
        calls=2,
        cache_hits=1,
    )
    assert (total.cache_misses, total.hit_rate, total.total_tokens) == (1, 0.5, 1500)
    assert CostStats().hit_rate == 0.0
