"""Entry-level administration of a cache: list, find, verify, expire and re-encrypt.

The operations behind ``spark cache ls|show|verify|cleanup|rotate-key``, one entry at a time so
the caller can drive a progress bar. They work on any ``EntryStore`` (a directory, Redis).
Pure cache layer: no click, no rich, no provider SDK.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from spark.cache import reader
from spark.cache.codec import FORMAT_VERSION, CorruptEntryError, EntryMeta, encode_entry
from spark.cache.crypto import KeyRing, read_key_file
from spark.cache.keys import KEY_SCHEMA_VERSION, create_key
from spark.cache.reader import BadEntry, StoredEntry, Where
from spark.cache.stores.base import EntryRef, EntryStore
from spark.cache.stores.disk import DiskStore, quote_model_id
from spark.cache.stores.strays import strays
from spark.errors import CacheError, ConfigError, DecryptionError

__all__ = [
    "MIN_KEY_PREFIX",
    "EntryContent",
    "EntryInfo",
    "EntryProblem",
    "RotationOutcome",
    "VerifyReport",
    "check_entry",
    "configured_keys",
    "entry_content",
    "entry_files",
    "find_entry",
    "list_entries",
    "reencrypt_entry",
    "verify_entries",
    "write_key_file",
]

MIN_KEY_PREFIX = 8
_HEAD_BYTES = 512


@dataclass(frozen=True)
class EntryInfo:
    """The plaintext metadata of one entry file (``error`` set when it cannot be parsed)."""

    path: str
    provider: str
    model_id: str
    key: str
    size: int
    created_at: float | None = None
    expires_at: float | None = None
    encryption: str = ""
    key_fingerprint: str = ""
    error: str = ""

    @property
    def encrypted(self) -> bool:
        """Whether the payload is sealed."""
        return self.encryption not in ("", "none")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with ``encrypted``)."""
        return {**asdict(self), "encrypted": self.encrypted}


@dataclass(frozen=True)
class EntryContent:
    """One entry read in full: metadata, and the payload when it could be opened."""

    meta: EntryMeta
    payload: dict[str, Any] | None
    payload_error: str = ""
    size: int = 0


@dataclass(frozen=True)
class EntryProblem:
    """Why an entry is unusable: ``kind`` is a short tag, ``reason`` the explanation."""

    path: str
    key: str
    kind: str
    reason: str


class RotationOutcome(Enum):
    """What ``reencrypt_entry`` did with one entry."""

    REENCRYPTED = "re-encrypted"
    ENCRYPTED = "encrypted"  # was plaintext
    SKIPPED = "already under the new key"
    KEPT_PLAINTEXT = "plaintext (encryption is off)"
    GONE = "deleted meanwhile"  # (by another process: clear, eviction, cleanup)
    CHANGED = "rewritten meanwhile (run rotate-key again: it seals them if they need it)"


def entry_files(
    store: EntryStore, provider: str | None = None, model_id: str | None = None
) -> list[EntryRef]:
    """Every entry file, optionally of one provider and/or one model id, in a stable order."""
    model_slot = quote_model_id(model_id) if model_id else None
    return sorted(store.walk(provider, model_slot), key=lambda e: e.location)


def list_entries(
    store: EntryStore, provider: str | None = None, model_id: str | None = None
) -> Iterator[EntryInfo]:
    """The metadata of every entry (the payload is never opened); an entry deleted meanwhile
    (by another process, or evicted by Redis) is not listed."""
    for entry in entry_files(store, provider, model_id):
        info = _info(store, entry)
        if info is not None:
            yield info


def _info(store: EntryStore, entry: EntryRef) -> EntryInfo | None:
    base = EntryInfo(entry.location, entry.provider, entry.model_slot, entry.key, entry.size)
    found = reader.read_entry(
        store, entry.location, where=Where.of(entry), with_payload=False, touch=False
    )
    if found is None:
        return None
    if not isinstance(found, StoredEntry):
        return replace(base, error=found.reason)
    meta = found.meta
    return EntryInfo(
        entry.location,
        meta.provider,
        meta.model_id,
        meta.key,
        entry.size,
        meta.created_at,
        meta.expires_at,
        meta.encryption,
        meta.key_fingerprint,
    )


def find_entry(store: EntryStore, key: str) -> str:
    """The path of the entry whose key is ``key`` or starts with it (at least 8 hex digits).

    Raises ``CacheError`` when no entry, or more than one, matches.
    """
    key = key.lower()
    if len(key) == 64:
        found = store.find(key)
        matches = [found] if found else []
    else:
        matches = [e.location for e in store.walk() if e.key.startswith(key)]
    if not matches:
        raise CacheError(f"no cache entry with key {key} in {store.describe()}")
    if len(matches) > 1:
        raise CacheError(
            f"key prefix {key} matches {len(matches)} entries in {store.describe()}; "
            "give more digits"
        )
    return matches[0]


def entry_content(store: EntryStore, path: str, keyring: KeyRing | None) -> EntryContent:
    """Metadata and (when the keys allow) the checked payload of one entry.

    Raises ``CorruptEntryError`` (with the path and the reason) when not even the envelope can
    be used, ``FileNotFoundError`` when the entry is gone.
    """
    head = reader.read_entry(store, path, with_payload=False, touch=False)
    if head is None:
        raise FileNotFoundError(f"no cache entry at {path} (deleted or expired)")
    if isinstance(head, BadEntry):
        raise CorruptEntryError(f"unusable cache entry {head}")
    full = reader.read_entry(store, path, keyring, touch=False)
    if isinstance(full, StoredEntry):
        return EntryContent(full.meta, full.payload, size=full.size)
    return EntryContent(head.meta, None, full.reason if full else "deleted meanwhile", head.size)


def check_entry(
    store: EntryStore,
    entry: EntryRef,
    keyring: KeyRing | None,
    *,
    require_encrypted: bool = False,
) -> EntryProblem | None:
    """Why ``entry`` is unusable, or None when it reads as the hit path would read it (sits
    where its key says, decrypts with ``keyring``, has the shape of an answer) and holds a
    request that hashes to its key under the current key schema."""
    outcome = _verified(store, entry, keyring, require_encrypted, False)
    return outcome if isinstance(outcome, EntryProblem) else None


@dataclass
class VerifyReport:
    """What ``verify_entries`` found: the unusable entries, and the usable ones still written
    in an older entry format (readable, but a plaintext one carries no digest)."""

    checked: int = 0
    problems: list[EntryProblem] = field(default_factory=list)
    old_format: list[str] = field(default_factory=list)


def verify_entries(
    store: EntryStore,
    entries: Iterable[EntryRef],
    keyring: KeyRing | None,
    *,
    require_encrypted: bool = False,
    envelope_only: bool = False,
) -> VerifyReport:
    """Check every entry (``check_entry``) and every folder a walk does not follow;
    ``envelope_only``: each entry's envelope, not its payload (no key needed)."""
    report = VerifyReport()
    for entry in entries:
        report.checked += 1
        outcome = _verified(store, entry, keyring, require_encrypted, envelope_only)
        if isinstance(outcome, EntryProblem):
            report.problems.append(outcome)
        elif outcome is not None and outcome.format < FORMAT_VERSION:
            report.old_format.append(entry.location)
    if isinstance(store, DiskStore):
        for path, reason in strays(str(store.root)):
            report.problems.append(EntryProblem(path, "", "refused", reason))
    return report


def _verified(
    store: EntryStore,
    entry: EntryRef,
    keyring: KeyRing | None,
    require_encrypted: bool,
    envelope_only: bool,
) -> EntryProblem | StoredEntry | None:
    found = reader.read_entry(
        store,
        entry.location,
        keyring,
        where=Where.of(entry),
        sealed_only=require_encrypted,
        with_payload=not envelope_only,
        touch=False,
    )
    if found is None:
        return None  # deleted or expired since the listing: nothing left to be wrong
    if isinstance(found, BadEntry):
        return EntryProblem(entry.location, entry.key, found.kind, found.reason)
    if found.payload is None:  # (the envelope only)
        return found
    return _check_request(entry, found.meta, found.payload["request"]) or found


def _check_request(
    entry: EntryRef, meta: EntryMeta, request: dict[str, Any]
) -> EntryProblem | None:
    version = request.get("v")
    if version != KEY_SCHEMA_VERSION:
        return _problem(
            entry,
            "stale",
            f"recorded with key schema v{version}, Spark now uses v{KEY_SCHEMA_VERSION}: "
            "it can never be hit",
        )
    try:
        actual = create_key(request)
    except (ConfigError, ValueError, TypeError) as exc:  # not hashable as stored: edited by hand
        return _problem(entry, "corrupt", f"stored request cannot be hashed: {exc}")
    if actual != meta.key:
        return _problem(
            entry, "key mismatch", f"the stored request hashes to {actual[:12]}, not to its key"
        )
    return None


def _problem(entry: EntryRef, kind: str, reason: str) -> EntryProblem:
    return EntryProblem(entry.location, entry.key, kind, reason)


def reencrypt_entry(
    store: EntryStore,
    entry: EntryRef,
    target: KeyRing,
    readers: KeyRing | None,
    *,
    encrypt_plaintext: bool,
) -> RotationOutcome:
    """Seal ``entry`` under ``target``'s primary key, keeping its metadata and timestamps.

    Entries already under that key are skipped (so an interrupted rotation can simply be run
    again). The rewrite is atomic (the store's temp file + rename) and keeps the file's access
    time, so least-recently-used eviction order survives. An entry another process deleted or
    rewrote while it was re-sealed is left as that process left it (``GONE``, ``CHANGED``: its
    version is compared just before the write). Raises ``CorruptEntryError`` or
    ``DecryptionError`` for an entry it cannot open, ``OSError`` when it cannot write.
    """
    before = store.version(entry.location)
    head = reader.read_entry(
        store, entry.location, where=Where.of(entry), with_payload=False, touch=False
    )
    if before is None or head is None:  # deleted or expired since the listing
        return RotationOutcome.GONE
    if isinstance(head, BadEntry):
        raise CorruptEntryError(str(head))
    meta = head.meta
    if meta.sealed and meta.key_fingerprint == target.primary:
        return RotationOutcome.SKIPPED
    if not meta.sealed and not encrypt_plaintext:
        return RotationOutcome.KEPT_PLAINTEXT
    found = reader.read_entry(store, entry.location, readers, where=Where.of(entry), touch=False)
    if isinstance(found, BadEntry) and found.kind in ("no key", "unknown key", "tampered"):
        raise DecryptionError(str(found), path=entry.location, fingerprint=found.fingerprint)
    if found is None:
        return RotationOutcome.GONE
    if not isinstance(found, StoredEntry) or found.payload is None:
        raise CorruptEntryError(str(found))
    problem = _check_request(entry, meta, found.payload["request"])
    if problem is not None and problem.kind != "stale":  # (a stale one: `migrate` re-keys it)
        raise CorruptEntryError(f"{entry.location}: {problem.reason}")  # another key's entry
    try:
        data = encode_entry(meta, found.payload, target)
    except (ValueError, TypeError) as exc:  # (the reader admits only JSON; kept total anyway)
        raise CorruptEntryError(f"{entry.location}: cannot be written back: {exc}") from exc
    now = store.version(entry.location)
    if now != before:  # (a delete must stick, and a newer answer is not replaced by an older)
        return RotationOutcome.GONE if now is None else RotationOutcome.CHANGED
    version = store.write(entry.location, data)
    store.touch(entry.location, version, entry.used_ns)
    if not meta.sealed:
        return RotationOutcome.ENCRYPTED
    return RotationOutcome.REENCRYPTED


def configured_keys(
    key_env: str, key_file: str | Path | None, environ: Mapping[str, str]
) -> tuple[list[str], str]:
    """The key strings the cache would use and where they came from: ``"env"``, ``"file"`` or
    ``""`` (none). Same precedence as ``load_keyring``: the variable, else the file."""
    keys = [k.strip() for k in environ.get(key_env, "").split(",") if k.strip()]
    if keys:
        return keys, "env"
    if key_file:
        keys = read_key_file(Path(key_file).expanduser())
        if keys:
            return keys, "file"
    return [], ""


def write_key_file(path: Path, keys: list[str], *, overwrite: bool) -> None:
    """Write one key per line to ``path`` with mode 0600, atomically (temp file + rename).

    Without ``overwrite`` an existing file is never replaced (``FileExistsError``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{key}\n" for key in keys).encode("ascii")
    if not overwrite:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
        return
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text)
        os.chmod(temp, 0o600)  # O_CREAT's mode does not apply to a leftover temp file
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
