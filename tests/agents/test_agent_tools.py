"""Tool schemas from signatures and docstrings, argument checks, and running calls (no server)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import re
import threading
from pathlib import Path
from typing import Any, Literal, Optional

import pytest

import spark.agents
from spark.agents import ArgumentError, Tool, tool
from spark.agents.tools import as_tool, result_text, run_tool_call
from spark.types import ToolCall, ToolSpec


class Unit(enum.Enum):
    """Temperature units."""

    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def get_weather(
    city: str,
    days: int = 1,
    unit: Unit = Unit.CELSIUS,
    detail: Literal["short", "long"] = "short",
    include_wind: bool = False,
    country: str | None = None,
) -> str:
    """Get the weather forecast
    for a city.

    The forecast comes from a made-up service.

    Args:
        city: The city name,
            e.g. "Paris".
        days (int): How many days ahead.
        unit: Temperature unit.

    Returns:
        The forecast text.
    """
    return f"{city} {days} {unit.value} {detail} {include_wind} {country}"


def test_schema_from_a_documented_signature() -> None:
    spec = Tool.from_function(get_weather).spec

    assert spec.name == "get_weather"
    assert spec.description == "Get the weather forecast for a city."
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": 'The city name, e.g. "Paris".'},
            "days": {"type": "integer", "default": 1, "description": "How many days ahead."},
            "unit": {
                "type": "string",
                "enum": ["celsius", "fahrenheit"],
                "default": "celsius",
                "description": "Temperature unit.",
            },
            "detail": {"type": "string", "enum": ["short", "long"], "default": "short"},
            "include_wind": {"type": "boolean", "default": False},
            "country": {"type": "string"},
        },
        "required": ["city"],
    }


def test_container_union_and_any_shapes() -> None:
    def shapes(
        tags: list[str],
        scores: dict[str, float],
        matrix: list[list[int]],
        pair: tuple[int, ...],
        anything: Any,
        either: int | str,
        maybe_required: Optional[int],  # noqa: UP045 - the old spelling must work too
        loose: dict,  # type: ignore[type-arg]
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Shapes."""

    props = Tool.from_function(shapes).parameters["properties"]

    assert props == {
        "tags": {"type": "array", "items": {"type": "string"}},
        "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
        "pair": {"type": "array", "items": {"type": "integer"}},
        "anything": {},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "maybe_required": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "loose": {"type": "object"},
    }
    assert Tool.from_function(shapes).parameters["required"] == list(props)


def test_no_arguments_and_no_docstring() -> None:
    def ping() -> str:
        return "pong"

    made = Tool.from_function(ping)

    assert made.parameters == {"type": "object", "properties": {}}
    assert made.description == ""
    assert made.spec.to_dict() == {
        "name": "ping",
        "parameters": {"type": "object", "properties": {}},
    }


def test_sphinx_style_parameter_descriptions() -> None:
    def search(query: str, limit: int = 5) -> list[str]:
        """Search the catalogue.

        :param query: Words to look for.
        :param int limit: At most this many
            results.
        :returns: Titles.
        """
        return []

    props = Tool.from_function(search).parameters["properties"]

    assert props["query"]["description"] == "Words to look for."
    assert props["limit"]["description"] == "At most this many results."


def test_decorator_forms_keep_the_function_callable() -> None:
    @tool
    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    @tool(name="triple_it", description="Multiply by three.")
    def triple(x: int) -> int:
        return 3 * x

    assert isinstance(double, Tool)
    assert double(4) == 8
    assert (double.name, double.description) == ("double", "Double a number.")
    assert triple(2) == 6
    assert triple.spec == ToolSpec(
        "triple_it",
        "Multiply by three.",
        {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    )
    assert as_tool(double) is double


def test_partials_and_callable_objects() -> None:
    def scale(value: float, factor: float) -> float:
        """Scale a value."""
        return value * factor

    class Counter:
        """Count things."""

        def __call__(self, step: int = 1) -> int:
            return step

    halve = Tool.from_function(functools.partial(scale, factor=0.5), name="halve")
    counter = Tool.from_function(Counter(), name="counter")

    assert halve.parameters["required"] == ["value"]
    assert counter.parameters == {
        "type": "object",
        "properties": {"step": {"type": "integer", "default": 1}},
    }
    assert counter.description == "Count things."


class Point:
    """Not something a model can send."""


def test_bad_definitions_fail_when_the_tool_is_made() -> None:
    def draw(p: Point) -> None:
        """Draw."""

    class Local:
        pass

    def place(p: Local) -> None:
        """Place (its hint names a class this module cannot see)."""

    with pytest.raises(TypeError, match="tool 'draw', parameter 'p': cannot describe"):
        Tool.from_function(draw)
    with pytest.raises(TypeError, match="tool 'place': cannot resolve a type hint"):
        Tool.from_function(place)
    with pytest.raises(ValueError, match="not accepted by every provider"):
        Tool.from_function(lambda: None)
    with pytest.raises(TypeError, match="a tool must be a function"):
        as_tool(42)  # type: ignore[arg-type]


def test_bind_checks_and_converts_arguments() -> None:
    made = Tool.from_function(get_weather)

    args, kwargs = made.bind({"city": "Oslo", "days": 3.0, "unit": "fahrenheit", "country": None})

    assert args == []
    assert kwargs == {"city": "Oslo", "days": 3, "unit": Unit.FAHRENHEIT, "country": None}
    for bad, message in [
        ({"days": 2}, "missing required argument(s) city"),
        ({"city": "Oslo", "unit": "kelvin"}, "unit must be one of ['celsius', 'fahrenheit']"),
        ({"city": "Oslo", "days": 2.5}, "days must be of type integer, got number 2.5"),
        ({"city": ["Oslo"]}, "city must be of type string, got array"),
        ("Oslo", "arguments must be a JSON object"),
    ]:
        with pytest.raises(ArgumentError, match=re.escape(message)):
            made.bind(bad)


def test_nested_values_are_checked() -> None:
    def total(values: list[int]) -> int:
        """Sum."""
        return sum(values)

    made = Tool.from_function(total)

    assert made.bind({"values": [1, 2.0]}) == ([], {"values": [1, 2]})
    with pytest.raises(ArgumentError, match=r"values\[1\] must be of type integer"):
        made.bind({"values": [1, "2"]})


async def test_run_tool_call_never_raises() -> None:
    def boom(x: int) -> int:
        """Explode."""
        raise RuntimeError(f"boom {x}")

    tools = {"boom": Tool.from_function(boom)}

    failed = await run_tool_call(ToolCall("c1", "boom", {"x": 1}), tools)
    unknown = await run_tool_call(ToolCall("c2", "other", {}), tools)
    bad = await run_tool_call(ToolCall("c3", "boom", {"y": 1}), tools)

    assert (failed.content, failed.is_error) == ("error: RuntimeError: boom 1", True)
    assert unknown.content == "error: unknown tool 'other' (tools: boom)"
    assert bad.content.startswith("error: invalid arguments for boom: unexpected argument(s) y")
    assert failed.to_message() == {
        "role": "tool",
        "tool_call_id": "c1",
        "name": "boom",
        "content": "error: RuntimeError: boom 1",
    }


async def test_sync_tools_run_off_the_event_loop_and_async_ones_on_it() -> None:
    seen: dict[str, threading.Thread] = {}

    def sync_tool() -> str:
        """Sync."""
        seen["sync"] = threading.current_thread()
        return "s"

    async def async_tool() -> str:
        """Async."""
        seen["async"] = threading.current_thread()
        await asyncio.sleep(0)
        return "a"

    tools = {t.name: t for t in map(Tool.from_function, (sync_tool, async_tool))}
    results = [await run_tool_call(ToolCall(n, n, {}), tools) for n in ("sync_tool", "async_tool")]

    assert [r.content for r in results] == ["s", "a"]
    assert seen["async"] is threading.current_thread()
    assert seen["sync"] is not threading.current_thread()
    assert tools["async_tool"].is_async
    assert not tools["sync_tool"].is_async


def test_result_text() -> None:
    @dataclasses.dataclass
    class Reading:
        unit: Unit
        values: frozenset[int]

    assert result_text("plain") == "plain"
    assert result_text(None) == "null"
    assert result_text({"n": 1, "ok": True}) == '{"n": 1, "ok": true}'
    assert result_text(Reading(Unit.CELSIUS, frozenset({3, 1, 2}))) == (
        '{"unit": "celsius", "values": [1, 2, 3]}'
    )
    assert result_text(["é"]) == '["é"]'


def test_public_names() -> None:
    assert set(spark.agents.__all__) == {
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
    }
    for name in spark.agents.__all__:
        assert getattr(spark.agents, name) is not None


def test_docs_cover_the_public_names() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "agents.md").read_text(encoding="utf-8")
    for name in spark.agents.__all__:
        if name not in {"StopReason", "ArgumentError"}:
            assert name in docs, name
    for name in ("write_report", "render_report", "collect_report_data", "spark-data"):
        assert name in docs, name
