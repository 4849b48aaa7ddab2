"""The one reader of entries: the bytes at a location become a checked entry or a typed reason.

Every caller goes through ``read_entry``: the hit path, the memory tier's fill, single flight's
recheck, refresh's comparison, explanations, and every admin call and command. It never raises,
whatever the bytes (docs/caching.md, "Integrity"): the store reads only bounded regular files,
the envelope and the payload are parsed strictly, the metadata must fit the location, an
encrypted cache takes sealed entries only, and the payload must have the shape of an answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from spark._printable import printable
from spark.cache.codec import CorruptEntryError, EntryMeta, decode_envelope, open_payload
from spark.cache.crypto import KeyRing
from spark.cache.shape import check_payload
from spark.cache.stores.base import (
    EntryRef,
    EntryRefusedError,
    EntryStore,
    StoreUnavailableError,
    Unchecked,
    Version,
)
from spark.cache.stores.disk import quote_model_id
from spark.errors import DecryptionError

__all__ = ["BadEntry", "StoredEntry", "Where", "read_entry"]

#: ``BadEntry.kind`` values, for messages and ``spark cache verify``.
KINDS = (
    "unavailable",  # the store cannot be reached (down, timed out)
    "unreadable",  # an I/O error
    "refused",  # a symlink, FIFO, device or folder, or a file over the size limit
    "truncated",
    "damaged",  # a plaintext payload that does not match its digest
    "corrupt",  # not an entry: bad JSON, a wrong type or shape
    "key mismatch",  # the metadata names another key than the location
    "misplaced",  # the metadata names another provider or model than the folder
    "plaintext",  # an unsealed entry in a cache that encrypts
    "no key",
    "unknown key",
    "tampered",  # sealed with a key we hold, but the token does not verify
    "different request",  # the stored request is not the one asked for
)


class StoredEntry(NamedTuple):
    """An entry that passed every check; ``payload`` is None when only metadata was read."""

    location: str
    meta: EntryMeta
    format: int
    payload: dict[str, Any] | None
    version: Version
    size: int


class BadEntry(NamedTuple):
    """Why the entry at ``location`` cannot be used: ``kind`` (one of ``KINDS``) and a reason."""

    location: str
    kind: str
    reason: str
    fingerprint: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class Where(NamedTuple):
    """What an entry's metadata must say, given where it was found: its key, provider and model
    (the model id itself on the hit path, or the path-safe folder name from a walk)."""

    key: str
    provider: str
    model_id: str | None = None
    model_slot: str | None = None

    @classmethod
    def of(cls, entry: EntryRef) -> Where:
        """The expectations of an entry found by a walk."""
        return cls(entry.key, entry.provider, model_slot=entry.model_slot)

    def misfit(self, meta: EntryMeta) -> tuple[str, str] | None:
        """(kind, reason) when ``meta`` does not belong here."""
        if meta.key != self.key:
            return "key mismatch", f"entry key {meta.key[:12]} does not match its file name"
        wrong_model = (self.model_id is not None and meta.model_id != self.model_id) or (
            self.model_slot is not None and quote_model_id(meta.model_id) != self.model_slot
        )
        if meta.provider != self.provider or wrong_model:
            shown = printable(f"{meta.provider}/{meta.model_id}")  # (file data: no escapes)
            return "misplaced", f"entry of {shown} is in the wrong folder"
        return None


def read_entry(
    store: EntryStore,
    location: str,
    keyring: KeyRing | None = None,
    *,
    where: Where | None = None,
    sealed_only: bool = False,
    with_payload: bool = True,
    fresh: Callable[[EntryMeta], bool] | None = None,
    request: Mapping[str, Any] | None = None,
    touch: bool = True,
) -> StoredEntry | BadEntry | None:
    """The checked entry at ``location``, a ``BadEntry`` saying why it is unusable, or None when
    there is none (or, with ``fresh``, none that counts for this reader). Never raises.

    ``where``: what the metadata must say; ``sealed_only``: refuse plaintext (a cache that
    encrypts); ``with_payload=False``: check the envelope only (listings, expiry); ``request``:
    the normalized request the stored one must equal; ``touch=False``: a scan, not a use.
    Bytes a store read from elsewhere (``Unchecked``: a local tier's remote) are kept at
    ``location`` only once they passed every check, payload included; a refusal names where
    they came from.
    """
    try:
        found = store.read(location, touch=touch)
    except StoreUnavailableError as exc:
        return BadEntry(location, "unavailable", str(exc))
    except EntryRefusedError as exc:
        return BadEntry(location, "refused", str(exc))
    except OSError as exc:
        return BadEntry(location, "unreadable", f"cannot read it: {exc}")
    if found is None:
        return None
    data, version = found[0], found[1]
    checked: StoredEntry | BadEntry | None
    try:
        checked = _check(
            location, data, version, keyring, where, sealed_only, with_payload, fresh, request
        )
    except CorruptEntryError as exc:
        kind, _, reason = str(exc).partition(": ")
        if kind not in ("truncated", "damaged"):
            kind, reason = "corrupt", str(exc)
        checked = BadEntry(location, kind, reason)
    except DecryptionError as exc:
        checked = _undecryptable(location, exc, keyring)
    except Exception as exc:  # the reader is total: whatever else the bytes provoke is "corrupt"
        shown = printable(f"{type(exc).__name__}: {exc}")[:200]
        checked = BadEntry(location, "corrupt", f"not a Spark entry ({shown})")
    return _kept(found, checked, with_payload) if isinstance(found, Unchecked) else checked


def _kept(
    found: Unchecked, checked: StoredEntry | BadEntry | None, with_payload: bool
) -> StoredEntry | BadEntry | None:
    """Bytes from elsewhere: a refusal names where they came from; bytes whose payload passed
    too are kept (rejected: copying them before the check, which left a hostile value on disk
    under a local file's name)."""
    if isinstance(checked, BadEntry):
        return checked._replace(location=found.origin)
    if isinstance(checked, StoredEntry) and with_payload:
        return checked._replace(version=found.keep())
    return checked


def _check(
    location: str,
    data: bytes,
    version: Version,
    keyring: KeyRing | None,
    where: Where | None,
    sealed_only: bool,
    with_payload: bool,
    fresh: Callable[[EntryMeta], bool] | None,
    request: Mapping[str, Any] | None,
) -> StoredEntry | BadEntry | None:
    envelope = decode_envelope(data, check_digest=with_payload)
    meta = envelope.meta
    misfit = where.misfit(meta) if where is not None else None
    if misfit is not None:
        return BadEntry(location, *misfit)
    if sealed_only and not meta.sealed:
        return BadEntry(location, "plaintext", "payload is not encrypted")
    if fresh is not None and not fresh(meta):
        return None
    payload = None
    if with_payload:
        payload = open_payload(envelope, keyring)
        if request is not None and payload.get("request") != request:
            return BadEntry(
                location, "different request", "entry holds the answer to a different request"
            )
        # (a request equal to the one asked for is as deep as that one: only check the rest)
        problem = check_payload(payload, check_request=request is None)
        if problem is not None:
            return BadEntry(location, "corrupt", problem)
    return StoredEntry(location, meta, envelope.format, payload, version, len(data))


def _undecryptable(location: str, exc: DecryptionError, keyring: KeyRing | None) -> BadEntry:
    fingerprint = exc.fingerprint or ""
    if keyring is None:
        return BadEntry(location, "no key", str(exc), fingerprint)
    if fingerprint not in keyring.fernets:
        held = ", ".join(keyring.fingerprints)
        reason = f"unknown key fingerprint {fingerprint}: the entry uses a key we do not hold"
        return BadEntry(location, "unknown key", f"{reason} (configured keys: {held})", fingerprint)
    reason = f"{exc}: the token does not verify under that key (edited or damaged)"
    return BadEntry(location, "tampered", reason, fingerprint)
