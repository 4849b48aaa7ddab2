"""The entry file format: a versioned JSON envelope of plaintext metadata around the payload.

::

    {"format": 2, "key": "<sha256>", "provider": "openai", "model_id": "gpt-4o",
     "created_at": 1764000000.0, "expires_at": 1764086400.0 | null,
     "encryption": "none" | "fernet", "key_fingerprint": "" | "1a2b3c4d",
     "digest": "sha256:<hex>" | "",
     "payload": {...} | "<Fernet token>"}

Metadata comes first and holds no prompt or answer text; the payload is last, so the metadata is
read without parsing the payload. A plaintext payload carries the SHA-256 of its compact JSON in
``digest`` (format 2), which catches accidental damage; only Fernet authenticates against someone
who edits a file on purpose (docs/caching.md). Format 1 (no digest) stays readable. The payload is
JSON — never pickle.

These functions raise ``CorruptEntryError``/``DecryptionError``; callers go through
``spark.cache.reader``, which turns any outcome into a checked entry or a reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NamedTuple

from spark.cache.crypto import SCHEME, KeyRing
from spark.cache.keys import is_key
from spark.errors import DecryptionError

__all__ = [
    "FORMAT_VERSION",
    "LAST_TIME",
    "CorruptEntryError",
    "EntryMeta",
    "Envelope",
    "decode_envelope",
    "encode_entry",
    "open_payload",
    "parse_json",
]

FORMAT_VERSION = 2
_FORMATS = (1, 2)
_PAYLOAD_MARK = b',"payload":'
# The names the fast path below matches, for the full parse too: both ways take the same files.
_PROVIDER_RE = re.compile(r"[a-z0-9_-]{1,64}\Z")
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{0,64}\Z")
_DIGEST_PREFIX = "sha256:"
LAST_TIME = 253402300799.0  # 9999-12-31T23:59:59Z: later "times" are damage (and overflow time_t)
# The metadata exactly as ``encode_entry`` writes it (the hit path of a fresh read): matched
# without the JSON parser. Ids with JSON escapes, hand-formatted files and format 1 do not
# match and take the full parse; both ways end in the same checks (``_meta``).
_HEAD_RE = re.compile(
    rb'\{"format":2,"key":"([0-9a-f]{64})","provider":"([a-z0-9_-]{1,64})",'
    rb'"model_id":"([^"\\\x00-\x1f]+)","created_at":([0-9][0-9.eE+-]{0,30}),'
    rb'"expires_at":(null|[0-9][0-9.eE+-]{0,30}),"encryption":"(none|fernet)",'
    rb'"key_fingerprint":"([0-9a-f]{0,64})","digest":"((?:sha256:[0-9a-f]{64})?)"\Z'
)


class CorruptEntryError(Exception):
    """An entry file cannot be used: truncated, not JSON, wrong format or shape, or damaged."""


class EntryMeta(NamedTuple):
    """The plaintext metadata of one entry."""

    key: str
    provider: str
    model_id: str
    created_at: float
    expires_at: float | None
    encryption: str = "none"
    key_fingerprint: str = ""

    @property
    def sealed(self) -> bool:
        """Whether the payload is encrypted."""
        return self.encryption != "none"

    def is_expired(self, now: float) -> bool:
        """True once ``now`` reaches the writer's ``expires_at`` (the one expiry rule)."""
        return self.expires_at is not None and now >= self.expires_at


class Envelope(NamedTuple):
    """An entry file split into its checked metadata and its still-sealed payload bytes."""

    meta: EntryMeta
    format: int
    body: bytes  # the payload's JSON text: an object (plaintext) or a quoted Fernet token


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# NaN and Infinity are not JSON: refused while parsing, so no stored number is non-finite.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(data: bytes) -> Any:
    """Strict JSON from bytes: UTF-8 only, no NaN/Infinity (``ValueError`` otherwise)."""
    return _DECODER.decode(data.decode("utf-8"))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def payload_digest(body: bytes) -> str:
    """The digest a plaintext payload's compact JSON carries in its envelope."""
    return _DIGEST_PREFIX + hashlib.sha256(body).hexdigest()


def encode_entry(meta: EntryMeta, payload: dict[str, Any], keyring: KeyRing | None) -> bytes:
    """Serialize an entry; with a ``keyring`` the payload becomes one Fernet token.

    ``ValueError``/``TypeError`` when the payload is not JSON (e.g. NaN).
    """
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        body = raw.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (an answer may hold one): as a JSON escape
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("ascii")
    encryption, fingerprint, digest = "none", "", payload_digest(body)
    if keyring is not None:
        encryption, fingerprint, digest = SCHEME, keyring.primary, ""
        body = b'"' + keyring.encrypt(body).encode("ascii") + b'"'
    head = {
        "format": FORMAT_VERSION,
        "key": meta.key,
        "provider": meta.provider,
        "model_id": meta.model_id,
        "created_at": meta.created_at,
        "expires_at": meta.expires_at,
        "encryption": encryption,
        "key_fingerprint": fingerprint,
        "digest": digest,
    }
    return _dumps(head)[:-1] + _PAYLOAD_MARK + body + b"}"


def decode_envelope(data: bytes, *, check_digest: bool = True) -> Envelope:
    """Split an entry file into checked metadata and the payload bytes (not yet opened).

    Files as we write them (compact, payload last) are split at the payload without parsing it;
    anything else (e.g. a hand-formatted file) is parsed in full. A plaintext payload of format 2
    must match its digest (``check_digest=False``: the payload will not be used, e.g. expiry).
    """
    at = data.find(_PAYLOAD_MARK)
    written = _HEAD_RE.match(data, 0, at) if at > 0 and data.endswith(b"}") else None
    if written is not None:
        key, provider, model_id, created, expires, encryption, fingerprint, digest_bytes = (
            written.groups()
        )
        digest = digest_bytes.decode()
        meta, version = _meta(
            2,
            key.decode(),
            provider.decode(),
            model_id.decode(),
            float(created),
            None if expires == b"null" else float(expires),
            encryption.decode(),
            fingerprint.decode(),
            digest,
        )
        body = data[at + len(_PAYLOAD_MARK) : -1]
    else:
        head, body = _split(data, at)
        meta, version, digest = _meta_of(head)
    if meta.encryption == "none":
        if not body.startswith(b"{"):
            raise CorruptEntryError("plaintext payload is not an object")
        if check_digest and version >= 2 and payload_digest(body) != digest:
            raise CorruptEntryError("damaged: the payload does not match its digest")
    elif body[:1] != b'"' or body[-1:] != b'"' or len(body) < 3:
        raise CorruptEntryError("encrypted payload is not a Fernet token")
    return Envelope(meta, version, body)


def _split(data: bytes, at: int) -> tuple[dict[str, Any], bytes]:
    if at > 0 and data.endswith(b"}"):
        try:
            head = parse_json(data[:at] + b"}")
        except ValueError:
            head = None
        if isinstance(head, dict):
            return head, data[at + len(_PAYLOAD_MARK) : -1]
    try:
        envelope = parse_json(data)
    except ValueError as exc:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        if data.startswith(b'{"format":') and not data.rstrip().endswith(b"}"):
            raise CorruptEntryError(f"truncated: file ends after {len(data)} bytes") from exc
        raise CorruptEntryError(f"not JSON: {exc}") from exc
    if not isinstance(envelope, dict) or "payload" not in envelope:
        raise CorruptEntryError("not a Spark entry (no payload)")
    payload = envelope.pop("payload")
    return envelope, _dumps(payload)


def _meta_of(head: dict[str, Any]) -> tuple[EntryMeta, int, str]:
    """The metadata of a fully parsed envelope, its types checked."""
    version = head.get("format")
    if type(version) is not int or version not in _FORMATS:
        raise CorruptEntryError(f"unknown entry format {version!r:.40}")
    key, provider, model_id = head.get("key"), head.get("provider"), head.get("model_id")
    if not is_key(key):
        raise CorruptEntryError("key is not a SHA-256 hex digest")
    if not isinstance(provider, str) or not _PROVIDER_RE.match(provider):
        raise CorruptEntryError("provider is not a provider name")
    if not isinstance(model_id, str) or not model_id:
        raise CorruptEntryError("model_id is not a name")
    encryption, fingerprint = head.get("encryption"), head.get("key_fingerprint")
    if encryption not in ("none", SCHEME):
        raise CorruptEntryError(f"unknown encryption {encryption!r:.40}")
    if not isinstance(fingerprint, str) or not _FINGERPRINT_RE.match(fingerprint):
        raise CorruptEntryError("key_fingerprint is not a key fingerprint (hex digits)")
    digest = head.get("digest", "")
    if not isinstance(digest, str):
        raise CorruptEntryError("digest is not text")
    created, expires = head.get("created_at"), head.get("expires_at")
    for name, value in (("created_at", created), ("expires_at", expires)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise CorruptEntryError(f"{name} is not a number")
    if created is None:
        raise CorruptEntryError("created_at is missing")
    meta, _ = _meta(
        version,
        key,
        provider,
        model_id,
        float(created),  # (a huge int raises OverflowError: caught by the reader)
        None if expires is None else float(expires),
        encryption,
        fingerprint,
        digest,
    )
    return meta, version, digest


def _meta(
    version: int,
    key: str,
    provider: str,
    model_id: str,
    created: float,
    expires: float | None,
    encryption: str,
    fingerprint: str,
    digest: str,
) -> tuple[EntryMeta, int]:
    """Metadata whose fields are consistent: finite times, a fingerprint exactly when sealed,
    a digest exactly when plaintext (format 2)."""
    if not 0 <= created <= LAST_TIME or (expires is not None and not 0 <= expires <= LAST_TIME):
        raise CorruptEntryError("created_at or expires_at is not a time")  # (NaN fails too)
    if (encryption == SCHEME) != bool(fingerprint):
        raise CorruptEntryError("key fingerprint does not fit the encryption")
    if version >= 2 and (encryption == "none") != bool(digest):
        raise CorruptEntryError("digest does not fit the encryption")
    return EntryMeta(key, provider, model_id, created, expires, encryption, fingerprint), version


def open_payload(envelope: Envelope, keyring: KeyRing | None) -> dict[str, Any]:
    """The payload object ``{"request": {...}, "response": {...}}`` (not yet shape-checked).

    ``DecryptionError`` when it is sealed with a key we lack or does not verify;
    ``CorruptEntryError`` when it is not a JSON object.
    """
    meta, body = envelope.meta, envelope.body
    if meta.sealed:
        if keyring is None:
            raise DecryptionError(
                f"entry is encrypted (key {meta.key_fingerprint}) and no key is configured",
                fingerprint=meta.key_fingerprint,
            )
        body = keyring.decrypt(body[1:-1].decode("ascii"), meta.key_fingerprint)
    try:
        payload = parse_json(body)
    except ValueError as exc:
        raise CorruptEntryError(f"payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise CorruptEntryError("payload is not an object")
    return payload
