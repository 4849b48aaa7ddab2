"""``Agent.run_json``: a tool loop whose final answer is structured data, checked before it is
stored (like ``model.get_json``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from spark.agents import Agent, AgentConfig
from spark.cache import CacheConfig
from spark.errors import StructuredOutputError
from spark.testing import ProviderServer

PROVIDERS = ["openai", "bedrock", "gemini"]
MakeModel = Callable[..., Any]


class Forecast(BaseModel):
    city: str
    celsius: int


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"{city}: 21 C"


def entry_count(root: Path) -> int:
    return sum(1 for p in root.rglob("*.json") if p.parent.parent.parent == root)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_run_json_after_a_tool_call(
    make_model: MakeModel, server: ProviderServer, provider: str
) -> None:
    agent = Agent(config=AgentConfig(model=make_model(provider), tools=[get_weather]))
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    server.queue_text('{"city": "Oslo", "celsius": 21}')
    forecast = await agent.run_json(Forecast, "Weather in Oslo?")
    assert forecast == Forecast(city="Oslo", celsius=21)
    assert server.count(provider) == 2
    again = Agent(config=AgentConfig(model=make_model(provider), tools=[get_weather]))
    assert await again.run_json(Forecast, "Weather in Oslo?") == forecast  # both steps hit
    assert server.count(provider) == 2


async def test_an_invalid_final_answer_is_not_stored(
    make_model: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    agent = Agent(config=AgentConfig(model=make_model("openai")))
    server.queue_text("It is sunny.")
    with pytest.raises(StructuredOutputError) as caught:
        await agent.run_json(Forecast, "Weather in Lima?")
    assert caught.value.raw_text == "It is sunny."
    assert entry_count(cache_config.resolved_dir) == 0
    assert agent.messages == []  # a failed run leaves the conversation as it was
    forecast = await agent.run_json(Forecast, "Weather in Lima?")  # asks again
    assert isinstance(forecast, Forecast)
    assert server.count("openai") == 2


async def test_run_json_in_replay(
    make_model: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    recorded = await Agent(config=AgentConfig(model=make_model("gemini"))).run_json(
        Forecast, "Weather in Quito?"
    )
    replaying = CacheConfig(enabled=True, cache_dir=cache_config.resolved_dir, mode="replay")
    agent = Agent(config=AgentConfig(model=make_model("gemini", cache_config=replaying)))
    assert await agent.run_json(Forecast, "Weather in Quito?") == recorded
    assert server.count("gemini") == 1
