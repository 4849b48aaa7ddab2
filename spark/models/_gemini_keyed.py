"""The keyed form of values google-genai validates into its types (docs/models.md, "Gemini"):
one spelling for what the SDK sends alike, media bytes as digests.

Pure code: no SDK import, no I/O. This walk runs on every cache hit, so exact ``dict``, ``list``
and ``str`` values take a fast path before the general (ABC, enum, pydantic) checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from functools import lru_cache
from typing import Any

from spark.errors import ConfigError
from spark.models.wire import digest_of

__all__ = ["ENUM_FIELDS", "OPAQUE_FIELDS", "camel", "keyed", "keyed_parts", "snake"]

#: Fields of google-genai's types whose values are free-form (``Any``, ``dict[str, Any]``):
#: their keys are the user's own and ``None``s in them are sent. A test checks the SDK.
OPAQUE_FIELDS = frozenset(
    {"additional_properties", "args", "custom_configs", "default", "details", "example",
     "headers", "labels", "parameters_json_schema", "part_metadata", "response",
     "response_json_schema", "response_schema", "video_metadata"}
)  # fmt: skip
#: Fields of google-genai's types that are case-insensitive enums (``"any"`` is sent ``ANY``).
ENUM_FIELDS = frozenset(
    {"api_spec", "auth_type", "behavior", "blocking_confidence", "category", "content_layers",
     "disabled_safety_policies", "environment", "feature_selection_preference",
     "http_element_location", "language", "level", "media_processing", "media_resolution",
     "method", "mode", "outcome", "prominent_people", "scheduling", "service_tier", "source",
     "state", "thinking_level", "threshold", "tool_type", "type"}
)  # fmt: skip
#: Fields that map the user's names to SDK values (a schema's ``properties``).
_NAMED_MAPS = frozenset({"defs", "properties"})
_CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")
_SCALARS = frozenset({bool, int, float, type(None)})
# How a field's value is keyed (``_field``): as given, by name, enum case, or like any value.
_OPAQUE, _NAMED, _ENUM, _PLAIN = "opaque", "named", "enum", "plain"


@lru_cache(maxsize=4096)
def snake(name: str) -> str:
    """A field name as google-genai's types name it (``thinkingBudget`` -> ``thinking_budget``).

    Cached: the same few field names are converted on every call (the cache is bounded, so
    odd user keys cannot grow it without limit)."""
    return _CAMEL_HUMP.sub("_", name).lower() if not name.islower() else name


@lru_cache(maxsize=1024)
def camel(name: str) -> str:
    """A field name as the API spells it (``max_output_tokens`` -> ``maxOutputTokens``)."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def keyed(value: Any, *, opaque: bool = False, enum_field: str = "") -> Any:
    """The keyed form of a value the SDK validates into its types: one spelling for what the
    SDK sends alike (snake or camel case field names, ``None`` fields, which it drops, enum
    case, ``types.*`` objects or dicts, ``1024.0`` and ``1024``), bytes as a digest. ``opaque`` values (free-form JSON:
    tool arguments, JSON schemas) are keyed as given, ``None``s included, as they are sent."""
    if opaque:
        return _opaque(value)
    kind = type(value)
    if kind is str:
        return value.upper() if enum_field in ENUM_FIELDS else value
    if kind is dict:
        return _keyed_mapping(value)
    if kind is list:
        return _keyed_list(value, enum_field)
    if kind is float and value.is_integer():  # a typed field: the SDK sends 1024.0 and 1024
        return int(value)  # alike (as its int or float type makes them), so they key alike
    if kind in _SCALARS:
        return value
    return _keyed_other(value, False, enum_field)


def keyed_parts(parts: list[Any]) -> list[Any]:
    """``keyed(parts)`` of a ``Content``'s parts list, for callers that know the shape."""
    return _keyed_list(parts, "")


def _opaque(value: Any) -> Any:
    """A free-form value as it is sent: keys as strings, ``None``s kept, bytes as digests."""
    kind = type(value)
    if kind is dict:
        return {k if type(k) is str else str(k): _opaque(v) for k, v in value.items()}
    if kind is list:
        return [_opaque(item) for item in value]
    if kind is str or kind in _SCALARS:
        return value
    return _keyed_other(value, True, "")


def _keyed_other(value: Any, opaque: bool, enum_field: str) -> Any:
    """``keyed`` for everything but exact JSON types: enums, media, subclasses, SDK types."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$media": digest_of(value)}
    if isinstance(value, str):
        return value.upper() if enum_field in ENUM_FIELDS and not opaque else value
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [keyed(item, opaque=opaque, enum_field=enum_field) for item in value]
    if isinstance(value, Mapping):
        return _opaque(dict(value)) if opaque else _keyed_mapping(value)
    json_schema = getattr(value, "model_json_schema", None)
    if isinstance(value, type) and callable(json_schema):  # a pydantic class (response_schema):
        return {"$schema_of": _opaque(json_schema())}  # the SDK sends its schema
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # the SDK's own types, dumped as the SDK dumps them to send
        return keyed(dump(mode="python", exclude_none=True), opaque=opaque)
    raise ConfigError(
        f"cannot send a {type(value).__name__} in a Gemini request ({value!r}): use JSON "
        "values, bytes for media, or google.genai's types"
    )


def _keyed_list(items: list[Any], enum_field: str) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if type(item) is not dict:
            out.append(keyed(item, enum_field=enum_field))
        elif len(item) == 1 and type(item.get("text")) is str:
            out.append({"text": item["text"]})  # a text part, the bulk of a request: as it is
        else:
            out.append(_keyed_mapping(item))
    return out


def _keyed_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw, item in value.items():
        if item is None:
            continue  # the SDK drops None fields of its types
        name, how = _field(raw if type(raw) is str else str(raw))
        if name in out:
            raise ConfigError(f"{name} is given twice (snake and camel case); give it once")
        kind = type(item)
        if how == _OPAQUE:
            out[name] = _opaque(item)
        elif kind is str:
            out[name] = item.upper() if how == _ENUM else item
        elif kind is dict and how != _NAMED:
            out[name] = _keyed_mapping(item)
        elif kind is list:
            out[name] = _keyed_list(item, name)
        elif how == _NAMED and isinstance(item, Mapping):
            out[name] = {str(k): keyed(v) for k, v in item.items()}
        else:
            out[name] = keyed(item, enum_field=name)
    return out


@lru_cache(maxsize=4096)
def _field(raw: str) -> tuple[str, str]:
    """A field name in snake case, and how its value is keyed (one table look-up per name)."""
    name = snake(raw)
    if name in OPAQUE_FIELDS:
        return name, _OPAQUE
    if name in _NAMED_MAPS:
        return name, _NAMED
    return name, _ENUM if name in ENUM_FIELDS else _PLAIN
