"""Tools and tool choice in OpenAI's Chat Completions spelling, from any of the spellings Spark
takes (neutral, OpenAI's own, Bedrock's ``toolSpec``); used by ``_openai_convert`` and the
Responses API's items. Pure: no I/O, no SDK import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from spark.errors import ConfigError

__all__ = ["as_mapping", "to_openai_tool_choice", "to_openai_tools"]

_CHOICE_WORDS = {"auto": "auto", "none": "none", "required": "required", "any": "required"}
_NEUTRAL_TOOL_KEYS = frozenset({"name", "description", "parameters", "input_schema", "strict"})


def as_mapping(value: Any) -> Any:
    """A pydantic value (an SDK type) as the SDK dumps it for the wire; anything else as is."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(exclude_unset=True, mode="json")
    return value


def to_openai_tools(tools: Iterable[Any]) -> list[Any]:
    """OpenAI-spelled tools (any ``type``: strict functions, custom tools) unchanged; neutral
    ``{"name", "description"?, "parameters"}`` and Bedrock ``toolSpec`` tools as functions."""
    return [_openai_tool(as_mapping(tool)) for tool in tools]


def _openai_tool(tool: Any) -> Any:
    if not isinstance(tool, Mapping):
        raise ConfigError(f"a tool must be a dict or a ToolSpec, got {tool!r}")
    if "type" in tool:
        return dict(tool)
    if isinstance(tool.get("function"), Mapping):
        return {"type": "function", **tool}
    if isinstance(tool.get("toolSpec"), Mapping):
        spec = tool["toolSpec"]
        return _function_tool(spec, (spec.get("inputSchema") or {}).get("json"))
    if "name" in tool:
        extra = sorted(set(tool) - _NEUTRAL_TOOL_KEYS)
        if extra:
            raise ConfigError(f"unknown tool field(s) {', '.join(extra)} in tool {tool['name']!r}")
        return _function_tool(tool, tool.get("parameters", tool.get("input_schema")))
    raise ConfigError(f"a tool needs a name (neutral, OpenAI or Bedrock spelling): {tool!r}")


def _function_tool(spec: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    function: dict[str, Any] = {"name": str(spec["name"])}
    if spec.get("description"):
        function["description"] = str(spec["description"])
    function["parameters"] = parameters or {"type": "object", "properties": {}}
    if "strict" in spec:
        function["strict"] = spec["strict"]
    return {"type": "function", "function": function}


def to_openai_tool_choice(choice: Any) -> Any:
    """``auto`` / ``none`` / ``required`` (``any``), a tool name, ``{"name": n}`` or Bedrock's
    ``{"tool": {"name": n}}`` / ``{"auto": {}}`` in OpenAI's form; OpenAI's own form unchanged."""
    choice = as_mapping(choice)
    if isinstance(choice, str):
        return _CHOICE_WORDS.get(choice.lower()) or _forced(choice)
    if not isinstance(choice, Mapping):
        return choice
    if choice.get("type") in _CHOICE_WORDS:
        return _CHOICE_WORDS[choice["type"]]
    if "type" in choice:
        return choice
    if "name" in choice:
        return _forced(choice["name"])
    if isinstance(choice.get("tool"), Mapping):
        return _forced(choice["tool"]["name"])
    words = [word for word in ("auto", "any", "none") if word in choice]
    return _CHOICE_WORDS[words[0]] if words else choice


def _forced(name: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": str(name)}}
