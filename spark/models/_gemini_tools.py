"""Tools and tool choice of a Gemini call as google-genai takes them (docs/models.md, "Gemini"):
Gemini's own tools as given, function specs in every spelling as declarations. Pure code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spark.errors import ConfigError
from spark.models._gemini_fields import TOOL_FIELDS
from spark.models._gemini_keyed import snake

__all__ = ["tool_mode", "tools"]

_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}


def tools(given: Sequence[Any]) -> list[Any]:
    """Gemini ``Tool``s: Gemini's own tools (dicts in either case, or ``types.Tool``) as they
    are; neutral, OpenAI and Bedrock function specs gathered in one ``function_declarations``
    tool, at the place of the first of them."""
    out: list[Any] = []
    declarations: list[dict[str, Any]] = []
    for item in given:
        to_dict = getattr(item, "to_dict", None)  # a ``ToolSpec`` given as ``tool_specs=``
        tool = to_dict() if callable(to_dict) else item
        if _is_native_tool(tool):
            out.append(tool)
            continue
        if not declarations:
            out.append({"function_declarations": declarations})
        declarations.append(_declaration(tool))
    return out


def _is_native_tool(tool: Any) -> bool:
    if not isinstance(tool, Mapping):
        return hasattr(tool, "model_dump")  # a ``types.Tool``
    return bool(tool) and all(snake(str(name)) in TOOL_FIELDS for name in tool)


def _declaration(tool: Any) -> dict[str, Any]:
    """A function spec as a declaration: ``parameters_json_schema`` takes the JSON Schema as it
    is (``None``s included); ``parameters`` would need a lossy conversion to Gemini's Schema."""
    if not isinstance(tool, Mapping):
        raise ConfigError(f"a tool must be a dict, a ToolSpec or a google.genai Tool: {tool!r}")
    spec: Mapping[str, Any] = tool
    if isinstance(tool.get("function"), Mapping):
        spec = tool["function"]
    elif isinstance(tool.get("toolSpec"), Mapping):
        spec = tool["toolSpec"]
    if "name" not in spec:
        raise ConfigError(f"a tool needs a name (neutral, OpenAI, Bedrock or Gemini): {tool!r}")
    schema = spec.get("parameters", spec.get("inputSchema", spec.get("input_schema")))
    if isinstance(schema, Mapping) and set(schema) == {"json"}:  # Bedrock / tool_specs wrapping
        schema = schema["json"]
    declaration: dict[str, Any] = {
        "name": str(spec["name"]),
        "parameters_json_schema": schema if schema is not None else {"type": "object"},
    }
    if spec.get("description"):
        declaration["description"] = str(spec["description"])
    return declaration


def tool_mode(choice: Any) -> dict[str, Any]:
    """``tool_choice`` in any spelling as Gemini's ``function_calling_config``."""
    if isinstance(choice, str):
        word = choice.lower()
        if word in _TOOL_MODES:
            return {"mode": _TOOL_MODES[word]}
        return {"mode": "ANY", "allowed_function_names": [choice]}
    if isinstance(choice, Mapping):
        inner = choice.get("function", choice.get("tool", choice))
        if isinstance(inner, Mapping) and "name" in inner:
            return {"mode": "ANY", "allowed_function_names": [inner["name"]]}
        for word in ("auto", "any", "none"):
            if word in choice or choice.get("type") == word:
                return {"mode": _TOOL_MODES[word]}
    raise ConfigError(
        f"Gemini cannot take tool_choice {choice!r}; use auto, none, required or a tool name"
    )
