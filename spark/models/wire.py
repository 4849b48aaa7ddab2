"""What a provider call puts on the wire, and the keyed form of it (docs/models.md, "Keys").

Each provider's translation module turns a call's arguments into a ``WireCall``: the keyword
arguments of the SDK call, exactly as the SDK takes them (media bytes included), and ``body``,
the request as the SDK puts it on the wire less the fields that cannot change the answer
(credentials, routing, tracing), with media replaced by a SHA-256 digest. The cache key is made
from ``body``, so two calls that send the same request share one key and two that send different
requests never do, whatever spelling produced them.

Pure code: no SDK import, no I/O.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from spark.errors import ConfigError
from spark.types import ToolSpec

__all__ = [
    "KeyedJSON",
    "WireCall",
    "base64_digest",
    "call_params",
    "digest_of",
    "keyed_value",
    "unknown_field",
]

_DATA_URL = re.compile(r"data:([^;,]*)(;[^,]*)?;base64,", re.ASCII)


class KeyedJSON(dict[str, Any]):
    """A JSON object already in its keyed form (what ``keyed_value`` would make of it), shared
    and never changed: ``keyed_value`` and the translations keep it as it is instead of copying
    it on every call. ``get_json`` sends its schema as one, made once per schema."""

    __slots__ = ()

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> dict[str, Any]:
        """``value`` as a ``KeyedJSON`` (a copy) when keying leaves it as it is; otherwise a plain
        copy (e.g. a long ``data:`` URL in it is keyed as a digest, but sent as given)."""
        keyed: dict[str, Any] = keyed_value(value)
        return cls(keyed) if keyed == value else dict(value)


class WireCall(NamedTuple):
    """One prepared provider call: the SDK's keyword ``arguments`` and the keyed ``body``.

    ``bypass`` names why the call is made past the cache: the field that makes the answer
    depend on state the provider holds (e.g. the Responses API's ``previous_response_id``), or
    ``"cache_mode"`` for ``cache_mode="off"``; such a call is uncached, counted as a bypass, and
    what it costs is spent (docs/caching.md, "Per-call cache controls").
    """

    arguments: dict[str, Any]
    body: dict[str, Any]
    bypass: str = ""


def digest_of(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The keyed (and stored) stand-in of media bytes: their SHA-256 and length."""
    raw = bytes(data)
    return {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}


def base64_digest(
    text: str, mime_type: str | None = None, parameters: str | None = None
) -> dict[str, Any]:
    """The keyed stand-in of media sent as base64 text: the SHA-256 of that text (hashing it is
    several times faster than decoding it first, and one text stands for one byte string).
    A ``data:`` URL's media-type ``parameters`` (``;name=cat.png``) are sent: they are keyed.
    Any text hashes (a message that only starts like a ``data:`` URL is not base64)."""
    found: dict[str, Any] = {} if mime_type is None else {"mime_type": mime_type}
    if parameters:
        found["parameters"] = parameters
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return {"$media": {**found, "base64_sha256": digest, "base64_chars": len(text)}}


_PLAIN = frozenset({int, float, bool, type(None)})


def keyed_value(value: Any) -> Any:
    """A JSON-ready copy of ``value`` for the key and the stored request.

    Mappings become dicts (keys as strings; ``None`` values kept: a ``None`` the caller sends is
    sent), sequences lists, bytes a digest (``digest_of``), base64 ``data:`` URLs a digest of
    their text (``base64_digest``); pydantic models are dumped as their SDK sends them (the fields
    set). On the hit path: exact JSON types take the fast way.
    """
    kind = type(value)
    if kind is str:
        return _data_url_digest(value) if len(value) > _INLINE and value[:5] == "data:" else value
    if kind is KeyedJSON:
        return value
    if kind is dict:
        return {
            k if type(k) is str else str(k): v if type(v) in _PLAIN else keyed_value(v)
            for k, v in value.items()
        }
    if kind is list:
        return [v if type(v) in _PLAIN else keyed_value(v) for v in value]
    if kind in _PLAIN:
        return value
    return _keyed_other(value)


def _keyed_other(value: Any) -> Any:
    if isinstance(value, str):
        return keyed_value(str(value))
    if isinstance(value, Mapping):
        return {str(k): keyed_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [keyed_value(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$media": digest_of(value)}
    if isinstance(value, bool | int | float):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # as the SDK dumps it to send: the fields set, a ``None`` set included
        return keyed_value(dump(mode="python", exclude_unset=True))
    raise ConfigError(
        f"cannot send a {type(value).__name__} in a request ({value!r}): use JSON values, bytes"
        " for media, or the SDK's own types"
    )


_INLINE = 256  # base64 text up to this long is keyed as itself


def _data_url_digest(url: str) -> Any:
    match = _DATA_URL.match(url)
    if match is None:
        return url
    return base64_digest(url[match.end() :], match.group(1), match.group(2))


def unknown_field(name: str, known: Iterable[str], where: str, hint: str = "") -> ConfigError:
    """The error for a keyword no spelling of ``where`` accepts, with close matches."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=0.6)
    suggestion = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    tail = f" {hint}" if hint else ""
    return ConfigError(f"unknown parameter {name!r} for {where}{suggestion}{tail}")


def call_params(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The keywords of one call: the model's ``default_params`` overridden by what the call
    gives; a keyword given as ``None`` is not given (the default, if any, stays). ``ToolSpec``
    tools become their dict form; ``tool_specs=`` (the original framework's name, with
    ``parameters: {"json": schema}``) is ``tools=`` (docs/models.md, "Compatibility names")."""
    params = {name: value for name, value in defaults.items() if value is not None}
    params.update({name: value for name, value in given.items() if value is not None})
    if "tool_specs" in params:
        if "tools" in params:
            raise ConfigError("give the tools as tools= or as tool_specs=, not both")
        specs = params.pop("tool_specs")
        if not isinstance(specs, list | tuple):
            raise ConfigError(f"tool_specs must be a list of tools, got {type(specs).__name__}")
        params["tools"] = [_unwrapped(tool) for tool in specs]
    tools = params.get("tools")
    if tools:
        params["tools"] = [t.to_dict() if isinstance(t, ToolSpec) else t for t in tools]
    return params


def _unwrapped(tool: Any) -> Any:
    """A ``tool_specs`` entry in the neutral form: ``parameters: {"json": schema}`` unwrapped."""
    if isinstance(tool, Mapping):
        parameters = tool.get("parameters")
        if isinstance(parameters, Mapping) and set(parameters) == {"json"}:
            return {**tool, "parameters": parameters["json"]}
    return tool
