"""Cache keys: the keyed form of a request, serialized canonically, hashed (docs/models.md).

The key is ``sha256(canonical_json(keyed_request(...)))``: the key-schema version, the request
kind, provider, model id and namespace, and ``body`` — the request as the provider's SDK puts it
on the wire, less what cannot change the answer, with media as digests (the model layer builds
it: ``spark.models.wire``). Dict order never changes a key, with one exception: the order of a
JSON Schema's ``properties``, which steers the order of a structured answer's fields, is hashed
too (``key_material``). Bump ``KEY_SCHEMA_VERSION`` whenever the keyed form changes:
``tests/cache/test_keys.py`` pins known keys so that is never silent, and ``spark cache
migrate`` re-keys entries recorded under an older schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from spark.errors import ConfigError

__all__ = [
    "KEY_SCHEMA_VERSION",
    "NEUTRAL_SCHEMA_VERSION",
    "canonical_json",
    "create_key",
    "is_key",
    "key_material",
    "keyed_request",
    "property_orders",
]

KEY_SCHEMA_VERSION = 3
#: Schema 1 keyed a provider-neutral form of the request (before docs/models.md's wire rule).
NEUTRAL_SCHEMA_VERSION = 1
#: Schema 2 keyed the same request as schema 3, but not the order of a schema's properties.
UNORDERED_SCHEMA_VERSION = 2


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encoder() -> Callable[[Any, int], Any]:
    """``json``'s own C encoder, made once (``JSONEncoder.encode`` builds it on every call, a
    third of the time of a key): compact, key-sorted, ASCII, no NaN; the Python one where the C
    one is missing. Both give the same text as ``JSONEncoder(sort_keys=True, separators=(",",
    ":"), ensure_ascii=True, allow_nan=False)``."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # (no C speedups in this interpreter)
        slow = json.JSONEncoder(
            sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
        return lambda value, _level: slow.iterencode(value)
    ascii_text = json.encoder.encode_basestring_ascii
    encode: Callable[[Any, int], Any] = c_make_encoder(
        None, _not_json, ascii_text, None, ":", ",", True, False, False
    )
    return encode


_ENCODE = _encoder()


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted, ASCII-only JSON: one byte string per value, whatever the dict order."""
    try:
        return "".join(_ENCODE(value, 0)).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:  # (nesting is bounded by the caller)
        raise ConfigError(f"request is not JSON-serializable: {exc}") from exc


_KEY_RE = re.compile(r"[0-9a-f]{64}\Z")


def is_key(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a cache key as ``create_key`` makes one: 64 lower-case hex digits."""
    return isinstance(value, str) and _KEY_RE.match(value) is not None


_PROPERTIES = b'"properties":{'  # (in canonical JSON: a JSON Schema's properties, most likely)


def key_material(normalized: Mapping[str, Any]) -> bytes:
    """What a key hashes: the canonical JSON of a normalized request, then, when it holds JSON
    Schema ``properties`` of two or more fields, a line of their orders (``property_orders``):
    providers answer a structured output's fields in its schema's order (Gemini sends that
    order as ``propertyOrdering``), so two schemas in two orders are two requests."""
    data = canonical_json(normalized)
    if _PROPERTIES in data:  # (a byte search first: most requests hold no schema)
        orders = property_orders(normalized)
        if orders:
            data += b"\n" + canonical_json(orders)  # (canonical JSON holds no raw newline)
    return data


def create_key(normalized: Mapping[str, Any]) -> str:
    """The SHA-256 hex digest of ``key_material`` of a normalized request."""
    return hashlib.sha256(key_material(normalized)).hexdigest()


def property_orders(value: Any, path: str = "") -> list[list[Any]]:
    """``[path, [name, ...]]`` for every mapping named ``properties`` with two or more fields in
    ``value`` (fields walked in sorted order, so the list is one per request), names as given."""
    found: list[list[Any]] = []
    if isinstance(value, Mapping):
        for name in sorted(value):
            item, where = value[name], f"{path}.{name}" if path else str(name)
            if name == "properties" and isinstance(item, Mapping) and len(item) > 1:
                found.append([where, list(item)])
            found.extend(property_orders(item, where))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(property_orders(item, f"{path}[{index}]"))
    return found


def keyed_request(
    kind: str, provider: str, model_id: str, namespace: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """What a key is made from (and what an entry stores as its request)."""
    return {
        "v": KEY_SCHEMA_VERSION,
        "kind": kind,
        "provider": provider,
        "model": model_id,
        "namespace": namespace,
        "body": body,
    }
