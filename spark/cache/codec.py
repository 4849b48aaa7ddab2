"""The entry file format: a versioned JSON envelope of plaintext metadata around the payload.

::

    {"format": 1, "key": "<sha256>", "provider": "openai", "model_id": "gpt-4o",
     "created_at": 1764000000.0, "expires_at": 1764086400.0 | null,
     "encryption": "none" | "fernet", "key_fingerprint": "" | "1a2b3c4d",
     "payload": {...} | "<Fernet token>"}

Metadata comes first and holds no prompt or answer text, so tools (and ``cleanup_expired``) can
read the first bytes of a file without touching the payload. The payload is JSON — never pickle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from spark.cache.crypto import SCHEME, KeyRing
from spark.errors import DecryptionError

__all__ = [
    "FORMAT_VERSION",
    "CorruptEntryError",
    "EntryMeta",
    "decode_envelope",
    "encode_entry",
    "open_payload",
    "peek_expires_at",
]

FORMAT_VERSION = 1
# An encrypted envelope as encode_entry writes it. Ids with JSON escapes (quotes, backslashes,
# non-ASCII written as \u) do not match and take the full parse.
_TOKEN_MARK = b',"payload":"'
_SEALED_HEAD_RE = re.compile(
    rb'\{"format":1,"key":"([0-9a-f]{64})","provider":"([a-z0-9_-]+)","model_id":"([^"\\]+)",'
    rb'"created_at":(-?[0-9][0-9.eE+-]*),"expires_at":(null|-?[0-9][0-9.eE+-]*),'
    rb'"encryption":"fernet","key_fingerprint":"([0-9a-f]+)"\Z'
)
_EXPIRES_RE = re.compile(rb'"expires_at":\s*(null|-?[0-9][0-9.eE+-]*)')


class CorruptEntryError(Exception):
    """An entry file cannot be used: truncated, not JSON, wrong format, or tampered."""


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """The plaintext metadata of one entry."""

    key: str
    provider: str
    model_id: str
    created_at: float
    expires_at: float | None
    encryption: str = "none"
    key_fingerprint: str = ""

    def is_expired(self, now: float) -> bool:
        """True once ``now`` reaches the writer's ``expires_at``."""
        return self.expires_at is not None and now >= self.expires_at


def encode_entry(meta: EntryMeta, payload: dict[str, Any], keyring: KeyRing | None) -> bytes:
    """Serialize an entry; with a ``keyring`` the payload becomes one Fernet token."""
    body: Any = payload
    encryption, fingerprint = "none", ""
    if keyring is not None:
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        body, encryption, fingerprint = keyring.encrypt(raw), SCHEME, keyring.primary
    envelope = {
        "format": FORMAT_VERSION,
        "key": meta.key,
        "provider": meta.provider,
        "model_id": meta.model_id,
        "created_at": meta.created_at,
        "expires_at": meta.expires_at,
        "encryption": encryption,
        "key_fingerprint": fingerprint,
        "payload": body,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_envelope(data: bytes) -> tuple[EntryMeta, Any]:
    """Parse an entry file into its metadata and its still-sealed payload.

    Files as we write them (compact, token last) take a fast path that does not run the JSON
    parser over the long token; anything else (e.g. a hand-formatted file) is parsed in full.
    """
    sealed = _sealed_fast(data)
    if sealed is not None:
        return sealed
    try:
        envelope = json.loads(data)
        if envelope["format"] != FORMAT_VERSION:
            raise CorruptEntryError(f"unknown entry format {envelope['format']!r}")
        expires = envelope["expires_at"]
        meta = EntryMeta(
            key=envelope["key"],
            provider=envelope["provider"],
            model_id=envelope["model_id"],
            created_at=float(envelope["created_at"]),
            expires_at=None if expires is None else float(expires),
            encryption=envelope["encryption"],
            key_fingerprint=envelope["key_fingerprint"],
        )
        return meta, envelope["payload"]
    except CorruptEntryError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntryError(f"not a Spark entry: {exc}") from exc


def _sealed_fast(data: bytes) -> tuple[EntryMeta, str] | None:
    """An encrypted entry exactly as ``encode_entry`` writes it, read without the JSON parser
    (the hit path of a fresh process); None sends anything else to the full parse."""
    head, found, token = data.partition(_TOKEN_MARK)
    end = len(token) - 2
    if not found or token.find(b'"', 0, end) != -1 or token[end:] != b'"}':
        return None
    match = _SEALED_HEAD_RE.match(head)
    if match is None:
        return None
    key, provider, model_id, created, expires, fingerprint = match.groups()
    meta = EntryMeta(
        key.decode("ascii"),
        provider.decode("utf-8"),
        model_id.decode("utf-8"),
        float(created),
        None if expires == b"null" else float(expires),
        SCHEME,
        fingerprint.decode("ascii"),
    )
    return meta, token[:end].decode("ascii")


def open_payload(meta: EntryMeta, sealed: Any, keyring: KeyRing | None) -> dict[str, Any]:
    """The payload ``{"request": {...}, "response": {...}}``.

    ``DecryptionError`` when it is sealed with a key we lack; ``CorruptEntryError`` when it is
    not a payload.
    """
    payload = _unseal(meta, sealed, keyring)
    if not isinstance(payload.get("request"), dict) or not isinstance(
        payload.get("response"), dict
    ):
        raise CorruptEntryError("payload lacks its request or response object")
    return payload


def _unseal(meta: EntryMeta, sealed: Any, keyring: KeyRing | None) -> dict[str, Any]:
    if meta.encryption == "none":
        if not isinstance(sealed, dict):
            raise CorruptEntryError("plaintext payload is not an object")
        return sealed
    if meta.encryption != SCHEME or not isinstance(sealed, str):
        raise CorruptEntryError(f"unknown encryption {meta.encryption!r}")
    if keyring is None:
        raise DecryptionError(
            f"entry is encrypted (key {meta.key_fingerprint}) and no key is configured",
            fingerprint=meta.key_fingerprint,
        )
    try:
        payload = json.loads(keyring.decrypt(sealed, meta.key_fingerprint))
    except ValueError as exc:
        raise CorruptEntryError(f"payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise CorruptEntryError("payload is not an object")
    return payload


def peek_expires_at(head: bytes) -> float | None:
    """``expires_at`` read from the first bytes of an entry file (no full parse).

    Raises ``CorruptEntryError`` when the head holds no ``expires_at``.
    """
    match = _EXPIRES_RE.search(head)
    if match is None:
        raise CorruptEntryError("no expires_at in entry header")
    value = match.group(1)
    return None if value == b"null" else float(value)
