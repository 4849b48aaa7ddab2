"""Tools: plain Python functions described to a model, and the safe way to run its calls.

A tool's JSON schema comes from the function's signature and type hints, its descriptions from the
docstring (``spark.agents._docstrings``). ``run_tool_call`` never raises for a bad call: an
unknown tool, arguments that do not fit, or an exception inside the tool all become an
``"error: ..."`` text the model reads and can recover from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from spark.agents._docstrings import parse_docstring
from spark.agents._schema import (
    ArgumentError,
    conform,
    parameters_schema,
    to_python,
    type_hints,
)
from spark.types import ToolCall, ToolSpec

__all__ = [
    "ArgumentError",
    "Tool",
    "ToolResult",
    "as_tool",
    "result_text",
    "run_tool_call",
    "run_tool_calls",
    "tool",
]

# What OpenAI, Bedrock and Gemini all accept as a function name.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, description and JSON-schema parameters.

    Build one with ``Tool.from_function`` or the ``@tool`` decorator; calling the ``Tool``
    calls the function, so a decorated function stays usable as before.
    """

    function: Callable[..., Any]
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    is_async: bool = field(init=False, repr=False, compare=False)
    signature: inspect.Signature = field(init=False, repr=False, compare=False)
    hints: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"tool name {self.name!r} is not accepted by every provider: use 1-64 letters, "
                "digits, '_' or '-' (give one with @tool(name=...))"
            )
        object.__setattr__(self, "is_async", _is_async(self.function))
        object.__setattr__(self, "signature", inspect.signature(self.function))
        object.__setattr__(self, "hints", type_hints(self.function, self.name))

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """Describe ``function``: schema from its signature, text from its docstring."""
        summary, arg_docs = parse_docstring(inspect.getdoc(function))
        tool_name = name or str(getattr(function, "__name__", type(function).__name__))
        return cls(
            function=function,
            name=tool_name,
            description=summary if description is None else description,
            parameters=parameters_schema(function, arg_docs, tool_name),
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly."""
        return self.function(*args, **kwargs)

    @property
    def spec(self) -> ToolSpec:
        """What the model is told about this tool."""
        return ToolSpec(self.name, self.description, self.parameters)

    def bind(self, arguments: Any) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for the function, from a model's JSON arguments.

        Raises ``ArgumentError`` for unknown or missing names and values of the wrong type.
        """
        if not isinstance(arguments, Mapping):
            raise ArgumentError(f"arguments must be a JSON object, got {arguments!r}")
        params = self.signature.parameters
        properties: Mapping[str, Any] = self.parameters.get("properties") or {}
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [name for name in arguments if name not in properties]
        if unknown and not takes_any:
            known = ", ".join(properties) or "no arguments"
            raise ArgumentError(f"unexpected argument(s) {', '.join(unknown)} (takes {known})")
        missing = [n for n in self.parameters.get("required") or () if n not in arguments]
        if missing:
            raise ArgumentError(f"missing required argument(s) {', '.join(missing)}")
        values = {name: self._checked(name, value, properties) for name, value in arguments.items()}
        positional_only = inspect.Parameter.POSITIONAL_ONLY
        args = [values.pop(p.name) for p in params.values() if p.kind is positional_only]
        try:
            self.signature.bind(*args, **values)
        except TypeError as exc:
            raise ArgumentError(str(exc)) from exc
        return args, values

    def _checked(self, name: str, value: Any, properties: Mapping[str, Any]) -> Any:
        param = self.signature.parameters.get(name)
        if value is None and param is not None and param.default is None:
            return None  # `x: int | None = None` is described as `integer`, yet null is fine
        schema = properties.get(name)
        checked = value if schema is None else conform(value, schema, name)
        return to_python(checked, self.hints.get(name, Any))

    async def invoke(self, arguments: Any) -> Any:
        """Run the tool with a model's arguments; sync functions run in a worker thread."""
        args, kwargs = self.bind(arguments)
        if self.is_async:
            return await self.function(*args, **kwargs)
        result = await asyncio.to_thread(self.function, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Mark a function as a tool, optionally renaming or re-describing it.

    ``@tool`` and ``@tool(name="search", description="...")`` both work; plain functions passed
    to ``AgentConfig(tools=[...])`` need no decorator at all.
    """
    if function is not None:
        return Tool.from_function(function, name=name, description=description)

    def decorate(target: Callable[..., Any]) -> Tool:
        return Tool.from_function(target, name=name, description=description)

    return decorate


def as_tool(value: Tool | Callable[..., Any]) -> Tool:
    """A ``Tool`` as is, or a plain function described as one."""
    if isinstance(value, Tool):
        return value
    if not callable(value):
        raise TypeError(f"a tool must be a function or a Tool, got {value!r}")
    return Tool.from_function(value)


def _is_async(function: Callable[..., Any]) -> bool:
    call = type(function).__call__  # a callable object's method (looked up as Python does)
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


@dataclass(frozen=True)
class ToolResult:
    """One tool call the agent ran: the call, the text sent back, and whether it failed."""

    call: ToolCall
    content: str
    is_error: bool = False

    def to_message(self) -> dict[str, Any]:
        """The ``role: "tool"`` message that carries this result to the model."""
        return {
            "role": "tool",
            "tool_call_id": self.call.id,
            "name": self.call.name,
            "content": self.content,
        }


async def run_tool_call(call: ToolCall, tools: Mapping[str, Tool]) -> ToolResult:
    """Run one call; every failure becomes an ``error: ...`` result instead of an exception."""
    found = tools.get(call.name)
    if found is None:
        known = ", ".join(sorted(tools)) or "none"
        return ToolResult(call, f"error: unknown tool {call.name!r} (tools: {known})", True)
    raw = call.arguments.get("_raw") if len(call.arguments) == 1 else None
    if isinstance(raw, str):  # (arguments the model wrote that are not JSON: docs/models.md)
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        return ToolResult(
            call, f"error: invalid arguments for {call.name}: not JSON: {shown}", True
        )
    try:
        value = await found.invoke(call.arguments)
    except ArgumentError as exc:
        return ToolResult(call, f"error: invalid arguments for {call.name}: {exc}", True)
    except Exception as exc:  # the model reads the failure and may try again
        return ToolResult(call, f"error: {type(exc).__name__}: {exc}", True)
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # the run (or this call) was cancelled
        # the tool's own: it awaited something that was cancelled elsewhere
        return ToolResult(
            call, f"error: CancelledError: {str(exc) or 'a task it awaited was cancelled'}", True
        )
    return ToolResult(call, result_text(value))


async def run_tool_calls(calls: Sequence[ToolCall], tools: Mapping[str, Tool]) -> list[ToolResult]:
    """Run the calls of one model answer concurrently; results keep the calls' order."""
    return list(await asyncio.gather(*(run_tool_call(call, tools) for call in calls)))


def result_text(value: Any) -> str:
    """A tool's return value as the text the model reads: strings as is, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)  # a set's order changes between processes
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return str(value)
