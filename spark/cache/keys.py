"""Cache keys: the keyed form of a request, serialized canonically, hashed (docs/models.md).

The key is ``sha256(canonical_json(keyed_request(...)))``: the key-schema version, the request
kind, provider, model id and namespace, and ``body`` — the request as the provider's SDK puts it
on the wire, less what cannot change the answer, with media as digests (the model layer builds
it: ``spark.models.wire``). Bump ``KEY_SCHEMA_VERSION`` whenever the keyed form changes:
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
    "keyed_request",
]

KEY_SCHEMA_VERSION = 2
#: Schema 1 keyed a provider-neutral form of the request (before docs/models.md's wire rule).
NEUTRAL_SCHEMA_VERSION = 1


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


def create_key(normalized: Mapping[str, Any]) -> str:
    """The SHA-256 hex digest of the canonical JSON of a normalized request."""
    return hashlib.sha256(canonical_json(normalized)).hexdigest()


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
