"""Agents: a model with tools in a loop, every step cached, with cost figures.

::

    from spark.agents import Agent, AgentConfig

    def get_weather(city: str) -> str:
        \"\"\"Current weather of a city.\"\"\"
        return "22 C"

    agent = Agent(AgentConfig(model=model, tools=[get_weather]))
    answer = await agent.run("Weather in Paris?")
    agent.get_cost_stats().total_cost
"""

from __future__ import annotations

from spark.agents.agent import Agent, AgentConfig, AgentResult, AgentStep, StopReason
from spark.agents.cost import CostStats, reset_total_cost_stats, total_cost_stats
from spark.agents.tools import ArgumentError, Tool, ToolResult, tool

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentResult",
    "AgentStep",
    "ArgumentError",
    "CostStats",
    "StopReason",
    "Tool",
    "ToolResult",
    "reset_total_cost_stats",
    "tool",
    "total_cost_stats",
]
