"""The original framework's everyday names, used the way its docs use them (docs/models.md,
"Compatibility names"): ``tool_specs=``, ``params=``, ``CacheManager.get_instance(config)``,
``CacheManager.reset_instance()`` and the ``get_cost_stats()`` spellings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spark.agents import Agent, AgentConfig
from spark.cache import CacheConfig
from spark.errors import ConfigError
from spark.models.cache import CacheManager
from spark.testing import ProviderServer
from spark.types import Price

Models = Callable[..., Any]
WEATHER_SPEC = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "json": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }
    },
}


@pytest.mark.parametrize(
    ("provider", "model_id"),
    [
        ("openai", "gpt-4o-mini"),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("gemini", "gemini-2.5-flash"),
    ],
)
async def test_tool_specs_is_tools(
    models: Models, server: ProviderServer, provider: str, model_id: str
) -> None:
    model = models(provider, model_id)
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    response = await model.generate("Weather in Oslo?", tool_specs=[WEATHER_SPEC])
    assert response.tool_calls[0].name == "get_weather"
    assert response.tool_calls[0].arguments == {"city": "Oslo"}
    unwrapped = {**WEATHER_SPEC, "parameters": WEATHER_SPEC["parameters"]["json"]}
    assert model.cache_key("Weather in Oslo?", tool_specs=[WEATHER_SPEC]) == model.cache_key(
        "Weather in Oslo?", tools=[unwrapped]
    )


async def test_params_are_the_default_parameters(models: Models, server: ProviderServer) -> None:
    model = models("openai", "gpt-4o-mini", params={"temperature": 0.1, "max_tokens": 50})
    await model.get_text("Hi")
    body = server.requests[-1].body
    assert body["temperature"] == 0.1
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 50
    await model.get_text("Hi", temperature=0.9)  # a call's own value wins
    assert server.requests[-1].body["temperature"] == 0.9
    with pytest.raises(ConfigError, match="not both"):
        models("openai", "gpt-4o-mini", params={"temperature": 0.1}, default_params={"n": 2})


def test_get_instance_of_a_config(tmp_path: Path) -> None:
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "shared", ttl_seconds=60)
    manager = CacheManager.get_instance(config)
    assert manager.cache_dir == (tmp_path / "shared").absolute()
    assert CacheManager.get_instance(config) is manager
    assert CacheManager.get_instance(tmp_path / "shared") is manager
    with pytest.raises(ConfigError, match="one CacheConfig"):
        CacheManager.get_instance(config, config)


def test_reset_instance_forgets_the_managers(tmp_path: Path) -> None:
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "c")
    before = CacheManager.get_instance(config)
    CacheManager.reset_instance()
    after = CacheManager.get_instance(config)
    assert after is not before
    assert after.cache_dir == before.cache_dir


async def test_cost_stats_spellings(server: ProviderServer, cache_config: CacheConfig) -> None:
    model = server.model(
        "openai",
        "gpt-4o-mini",
        api_key="sk-x",
        cache_config=cache_config,
        pricing=Price(input_per_million=2.0, output_per_million=8.0),
    )
    agent = Agent(config=AgentConfig(model=model, name="compat"))
    await agent.run("Hello there")
    await agent.run("Hello there")  # a hit
    stats = agent.get_cost_stats()
    assert stats.total_calls == stats.calls == 2
    assert stats.total_input_tokens == stats.input_tokens > 0
    assert stats.total_output_tokens == stats.output_tokens > 0
    await model.aclose()
