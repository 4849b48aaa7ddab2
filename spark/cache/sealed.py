"""Differences between two sealed requests: the fields named, no text shown.

An explanation of a sealed entry (an encrypted one, or any entry of a cache that encrypts) names
the fields that differ but shows no text of either side: strings and structures become a short
digest (``value_digest``), and no key of the user's own data (a tool's JSON-schema properties, a
response schema) is printed. Only the numbers and booleans among the sampling parameters are shown
as values. See docs/testing.md ("Replay in CI").
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spark.cache.keys import canonical_json
from spark.errors import ConfigError

__all__ = ["aligned_items", "sealed_differences", "value_digest"]

_DIGEST_HEX = 8
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def value_digest(value: Any) -> str:
    """``sha256:1a2b3c4d``: the start of the SHA-256 of ``value``'s canonical JSON."""
    try:
        data = canonical_json(value)
    except ConfigError:  # (never for a stored or normalized request; kept total anyway)
        data = json.dumps(value, sort_keys=True, default=repr).encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()[:_DIGEST_HEX]


def aligned_items(
    stored: Sequence[Any], requested: Sequence[Any]
) -> Iterator[tuple[int | None, int | None]]:
    """The items of two lists that differ, aligned so that an item added or removed in the
    middle (a system message put first) is that one item, not a change of every item after
    it: ``(i, j)`` stored item i became requested item j, ``(None, j)`` item j was added,
    ``(i, None)`` item i was removed."""
    same = [json.dumps(item, sort_keys=True, default=str) for item in stored]
    other = [json.dumps(item, sort_keys=True, default=str) for item in requested]
    matcher = difflib.SequenceMatcher(None, same, other, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1)
        for k in range(paired):
            yield i1 + k, j1 + k
        for i in range(i1 + paired, i2):
            yield i, None
        for j in range(j1 + paired, j2):
            yield None, j


def sealed_differences(stored: Any, requested: Any, path: str = "") -> list[str]:
    """The fields in which two normalized requests differ, values as digests (numbers and
    booleans of ``params`` excepted)."""
    out: list[str] = []
    _REQUEST.diff(stored, requested, path, out)
    return out


# -- sealed: the shape of a normalized request, digests for its values -------------------------


class _Shape:
    """How one field of a sealed request is compared: by default, as one opaque value."""

    def diff(self, stored: Any, requested: Any, path: str, out: list[str]) -> None:
        if stored != requested:
            out.append(f"{path} changed ({self.describe(stored)} -> {self.describe(requested)})")

    def describe(self, value: Any) -> str:
        """What an added, removed or changed value is shown as."""
        return value_digest(value)


class _Setting(_Shape):
    """A sampling parameter: a number or a boolean is shown, anything else is a digest."""

    def diff(self, stored: Any, requested: Any, path: str, out: list[str]) -> None:
        if stored != requested and _is_number(stored) and _is_number(requested):
            out.append(f"{path}: {json.dumps(stored)} -> {json.dumps(requested)}")
        else:
            super().diff(stored, requested, path, out)

    def describe(self, value: Any) -> str:
        return json.dumps(value) if _is_number(value) else value_digest(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float)


@dataclass(frozen=True)
class _Items(_Shape):
    """A list: compared item by item, each with the shape ``item``."""

    item: _Shape

    def diff(self, stored: Any, requested: Any, path: str, out: list[str]) -> None:
        if stored == requested:
            return
        if not (isinstance(stored, list) and isinstance(requested, list)):
            super().diff(stored, requested, path, out)
            return
        for i, j in aligned_items(stored, requested):
            if j is not None and i is None:
                out.append(f"{path}[{j}] added ({self.item.describe(requested[j])})")
            elif i is not None and j is None:
                out.append(f"{path}[{i}] removed (was {self.item.describe(stored[i])})")
            elif i is not None and j is not None:
                self.item.diff(stored[i], requested[j], f"{path}[{j}]", out)

    def describe(self, value: Any) -> str:
        if isinstance(value, list):
            count = f"{len(value)} item" + ("" if len(value) == 1 else "s")
            return f"{count}, {value_digest(value)}"
        return value_digest(value)


@dataclass(frozen=True)
class _Fields(_Shape):
    """A dict whose field names are Spark's (``known``), or pass ``names`` (shape ``other``).

    Any other key may be the user's own data: such fields are compared together, unnamed.
    """

    known: Mapping[str, _Shape]
    names: Callable[[str], bool] | None = None
    other: _Shape = field(default_factory=_Shape)

    def diff(self, stored: Any, requested: Any, path: str, out: list[str]) -> None:
        if stored == requested:
            return
        if not (isinstance(stored, Mapping) and isinstance(requested, Mapping)):
            super().diff(stored, requested, path, out)
            return
        for name in sorted(self._named(stored) | self._named(requested)):
            shape = self.known.get(name, self.other)
            where = f"{path}.{name}" if path else name
            if name not in stored:
                out.append(f"{where} added ({shape.describe(requested[name])})")
            elif name not in requested:
                out.append(f"{where} removed (was {shape.describe(stored[name])})")
            else:
                shape.diff(stored[name], requested[name], where, out)
        rest_stored, rest_requested = self._rest(stored), self._rest(requested)
        if rest_stored != rest_requested:
            out.append(
                f"{path or 'request'}: other fields changed "
                f"({value_digest(rest_stored)} -> {value_digest(rest_requested)})"
            )

    def _named(self, value: Mapping[str, Any]) -> set[str]:
        return {name for name in value if self._shows(name)}

    def _rest(self, value: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item for name, item in value.items() if not self._shows(name)}

    def _shows(self, name: str) -> bool:
        return name in self.known or (self.names is not None and self.names(name))


class _ResponseFormat(_Shape):
    """OpenAI's ``{"type": "json_schema", "json_schema": {...}}`` by field; a bare JSON schema
    (``output_schema=``) is the user's own keys throughout, so it stays one opaque value."""

    _TYPES = frozenset({"text", "json_object", "json_schema"})
    _FIELDS = _Fields(
        {
            "type": _Shape(),
            "json_schema": _Fields(
                {
                    "name": _Shape(),
                    "description": _Shape(),
                    "schema": _Shape(),
                    "strict": _Setting(),
                }
            ),
        }
    )

    def diff(self, stored: Any, requested: Any, path: str, out: list[str]) -> None:
        if self._wrapped(stored) and self._wrapped(requested):
            self._FIELDS.diff(stored, requested, path, out)
        else:
            super().diff(stored, requested, path, out)

    def _wrapped(self, value: Any) -> bool:
        return isinstance(value, Mapping) and value.get("type") in self._TYPES


_TEXT = _Shape()
_SETTINGS = _Fields(
    {
        "responseSchema": _TEXT,
        "responseJsonSchema": _TEXT,
        "response_schema": _TEXT,
        "response_json_schema": _TEXT,
        "systemInstruction": _TEXT,
        "system_instruction": _TEXT,
        "tools": _TEXT,
        "toolConfig": _TEXT,
        "tool_config": _TEXT,
        "safetySettings": _TEXT,
        "stopSequences": _TEXT,
    },
    names=lambda name: _PARAM_NAME.match(name) is not None,  # an API's parameter names
    other=_Setting(),
)
_FUNCTION = _Fields(
    {
        "name": _TEXT,
        "description": _TEXT,
        "parameters": _TEXT,
        "parametersJsonSchema": _TEXT,
        "inputSchema": _TEXT,
        "arguments": _TEXT,
        "strict": _Setting(),
    }
)
# A tool as OpenAI, Bedrock and Gemini send it: the API's field names, the user's values.
_TOOL = _Fields(
    {
        "type": _TEXT,
        "function": _FUNCTION,
        "toolSpec": _FUNCTION,
        "functionDeclarations": _Items(_FUNCTION),
        "function_declarations": _Items(_FUNCTION),
    }
)
_MESSAGE = _Fields(
    {
        "role": _TEXT,
        "content": _TEXT,  # per message, not per part (as in plaintext)
        "parts": _TEXT,
        "name": _TEXT,
        "tool_call_id": _TEXT,
        "tool_calls": _Items(_Fields({"id": _TEXT, "type": _TEXT, "function": _FUNCTION})),
    }
)
# The keyed wire body of a provider call (docs/models.md): field names are the API's (shown);
# messages, system text, tools and schemas are the user's own (digests); the numbers and
# booleans of the sampling settings are shown.
_BODY = _Fields(
    {
        "messages": _Items(_MESSAGE),
        "contents": _Items(_MESSAGE),
        "system": _Items(_TEXT),
        "input": _Items(_TEXT),
        "tools": _Items(_TOOL),
        "toolConfig": _Fields({"tools": _Items(_TOOL), "toolChoice": _TEXT}),
        "tool_choice": _TEXT,
        "response_format": _ResponseFormat(),
        "inferenceConfig": _SETTINGS,
        "generationConfig": _SETTINGS,
        "config": _SETTINGS,
        "additionalModelRequestFields": _SETTINGS,
    },
    names=lambda name: _PARAM_NAME.match(name) is not None,
    other=_Setting(),
)
_REQUEST = _Fields(
    {
        "v": _Setting(),
        "kind": _TEXT,
        "provider": _TEXT,
        "model": _TEXT,
        "namespace": _TEXT,
        "body": _BODY,
    }
)
