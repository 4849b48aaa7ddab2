"""JSON schema from a function's signature and type hints; checks of the values a model sends.

Pure functions: ``parameters_schema`` describes a function's arguments, ``schema_of`` one
annotation; ``conform`` checks a decoded JSON value against such a schema (and repairs the one
harmless difference providers introduce: ``3.0`` for an integer). A full JSON-schema validator
was rejected: tool schemas only ever use the few shapes ``schema_of`` writes.
"""

from __future__ import annotations

import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "ArgumentError",
    "conform",
    "nullable_part",
    "parameters_schema",
    "schema_of",
    "to_python",
    "type_hints",
]

_SCALARS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARRAYS = (list, tuple, set, frozenset, Sequence, typing.Sequence)
_OBJECTS = (dict, Mapping, typing.Mapping)
_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


class ArgumentError(ValueError):
    """A tool argument does not fit the tool's signature; the message says which and why."""


def parameters_schema(
    function: Callable[..., Any], arg_docs: Mapping[str, str], tool_name: str
) -> dict[str, Any]:
    """The JSON schema of ``function``'s arguments; parameters with defaults are optional."""
    hints = type_hints(function, tool_name)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in _SKIPPED_KINDS:
            continue
        try:
            schema = schema_of(hints.get(param.name, Any))
        except TypeError as exc:
            raise TypeError(f"tool {tool_name!r}, parameter {param.name!r}: {exc}") from None
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        else:
            schema = _with_default(schema, param.default)
        if arg_docs.get(param.name):
            schema["description"] = arg_docs[param.name]
        properties[param.name] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def _with_default(schema: dict[str, Any], default: Any) -> dict[str, Any]:
    if default is None:
        # The model simply leaves an optional `X | None = None` out, so describe it as X.
        return nullable_part(schema) or schema
    if isinstance(default, enum.Enum):
        default = default.value
    if isinstance(default, str | int | float | bool):
        return {**schema, "default": default}
    return schema


def type_hints(function: Callable[..., Any], tool_name: str) -> dict[str, Any]:
    """The resolved type hints of a function, a ``functools.partial`` or a callable object."""
    target: Any = function
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = type(target).__call__  # a callable object: its method
    try:
        return typing.get_type_hints(target)
    except NameError as exc:
        raise TypeError(f"tool {tool_name!r}: cannot resolve a type hint ({exc})") from exc
    except TypeError:
        return {}


def schema_of(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint (``{}`` accepts anything).

    Supported: ``str``, ``int``, ``float``, ``bool``, ``None``, ``list[...]``/``tuple``/``set``,
    ``dict[str, ...]``, ``Optional``/``X | None``, unions, ``Literal`` and ``Enum`` classes.
    Anything else raises ``TypeError`` when the tool is defined, not when the model calls it.
    """
    if hint is Any or hint is typing.Any:
        return {}
    if hint is None or hint is type(None):
        return {"type": "null"}
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return schema_of(typing.get_args(hint)[0])
    if origin is typing.Literal:
        return _literal_schema(typing.get_args(hint))
    if origin is typing.Union or origin is types.UnionType:
        return _union_schema(typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _literal_schema(tuple(member.value for member in hint))
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    return _container_schema(hint, origin)


def _container_schema(hint: Any, origin: Any) -> dict[str, Any]:
    base = origin or hint
    args = typing.get_args(hint)
    if base in _ARRAYS:
        schema: dict[str, Any] = {"type": "array"}
        items = [arg for arg in args if arg is not Ellipsis]
        if items and all(item == items[0] for item in items):  # list[X], tuple[X, ...]
            schema["items"] = schema_of(items[0])
        return schema
    if base in _OBJECTS:
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = schema_of(args[1])
        return schema
    raise TypeError(
        f"cannot describe {hint!r} to a model; use str, int, float, bool, list, dict, "
        "Literal, an Enum, Optional or a union of these"
    )


def _literal_schema(values: tuple[Any, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = {"enum": list(values)}
    kinds = {_json_type(value) for value in values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), **schema}
    return schema


def _union_schema(args: tuple[Any, ...]) -> dict[str, Any]:
    options = [schema_of(arg) for arg in args]
    if any(option == {} for option in options):
        return {}
    return {"anyOf": options}


def _json_type(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "null", "array"):
        if isinstance(value, _JSON_TYPES[name]):
            return name
    return "object"


def nullable_part(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The non-null option of an ``X | None`` schema (None when it is not one)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or {"type": "null"} not in options:
        return None
    rest = [option for option in options if option != {"type": "null"}]
    return dict(rest[0]) if len(rest) == 1 else {"anyOf": rest}


def conform(value: Any, schema: Mapping[str, Any], where: str) -> Any:
    """``value`` checked against ``schema``; integral floats become ints for integer fields.

    Raises ``ArgumentError`` naming ``where`` (the argument path) when the value does not fit.
    """
    if "enum" in schema:
        if value not in schema["enum"]:
            raise ArgumentError(f"{where} must be one of {schema['enum']!r}, got {value!r}")
        return value
    if "anyOf" in schema:
        return _conform_any(value, schema["anyOf"], where)
    kind = schema.get("type")
    if kind is None:
        return value
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)  # JSON numbers decoded through protobuf Structs arrive as floats
    if not _is_json_type(value, str(kind)):
        raise ArgumentError(f"{where} must be of type {kind}, got {_json_type(value)} {value!r}")
    if kind == "array" and "items" in schema:
        return [conform(item, schema["items"], f"{where}[{i}]") for i, item in enumerate(value)]
    if kind == "object" and "additionalProperties" in schema:
        inner = schema["additionalProperties"]
        return {k: conform(v, inner, f"{where}[{k!r}]") for k, v in value.items()}
    return value


def _conform_any(value: Any, options: list[Any], where: str) -> Any:
    problems = []
    for option in options:
        try:
            return conform(value, option, where)
        except ArgumentError as exc:
            problems.append(str(exc))
    raise ArgumentError(" or ".join(problems))


def _is_json_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES.get(kind, (object,)))


def to_python(value: Any, hint: Any) -> Any:
    """A checked JSON value as the annotated type wants it: Enum members, tuples and sets.

    Lists, dicts and scalars are already what the function expects, so they pass unchanged.
    """
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return value if value is None or len(options) != 1 else to_python(value, options[0])
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if isinstance(value, list) and (origin or hint) in (tuple, set, frozenset):
        return (origin or hint)(value)
    return value
