"""Re-key entries recorded under an older key schema (``spark cache migrate``, docs/cli.md).

A key-schema bump changes every key, so a committed cache recorded before it would never be hit
again. Each entry keeps the request it was recorded for; when that request can be re-derived
under the current schema (the provider's translation accepts it), the entry is written again
under its new key — same answer, same timestamps, sealed as before — and the old file removed.
An entry whose request cannot be re-derived is left as it is and reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from spark.cache.codec import EntryMeta, encode_entry
from spark.cache.crypto import KeyRing
from spark.cache.keys import (
    KEY_SCHEMA_VERSION,
    NEUTRAL_SCHEMA_VERSION,
    UNORDERED_SCHEMA_VERSION,
    create_key,
    keyed_request,
)
from spark.cache.reader import BadEntry, StoredEntry, Where, read_entry
from spark.cache.stores.base import EntryRef, EntryStore
from spark.errors import SparkError
from spark.models import registry
from spark.models.wire import call_params

__all__ = ["Migration", "MigrationOutcome", "migrate_entry", "rederived_request"]

_PLAINTEXT_REFUSED = (
    "a plaintext entry in a cache that encrypts is refused, as every read refuses it; if you "
    "trust it, `spark cache rotate-key` seals it, then migrate again"
)


class MigrationOutcome(Enum):
    """What ``migrate_entry`` did with one entry."""

    CURRENT = "current"  # already under the current schema
    REKEYED = "re-keyed"
    CANNOT = "cannot"  # unreadable, or its request cannot be re-derived: left as it is


@dataclass(frozen=True)
class Migration:
    """The outcome for one entry; ``reason`` says why it could not be re-keyed, ``kind`` what
    kind of unusable entry it is (a ``BadEntry.kind``; "" when its request cannot be redone)."""

    location: str
    outcome: MigrationOutcome
    new_key: str = ""
    reason: str = ""
    kind: str = ""


def rederived_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The current schema's keyed request for a request stored under schema 2 (the same
    request: schema 3 only hashes its schemas' property order, which the stored request
    keeps) or schema 1 (the neutral form: system texts, messages, tools, tool choice, params).
    Raises ``SparkError`` (a ``ConfigError``) when the provider's translation no longer
    accepts it."""
    version = request.get("v")
    if version == UNORDERED_SCHEMA_VERSION and isinstance(request.get("body"), Mapping):
        return {**request, "v": KEY_SCHEMA_VERSION}
    if version != NEUTRAL_SCHEMA_VERSION:
        raise SparkError(f"no way to re-derive a request of key schema v{version}")
    provider, model_id = str(request["provider"]), str(request["model"])
    params = dict(request.get("params") or {})
    if request.get("kind") == "embedding":
        texts = list(request.get("input") or [])
        call = registry.prepare_embedding(provider, model_id, texts, call_params({}, params))
        kind = "embedding"
    else:
        system = [{"role": "system", "content": text} for text in request.get("system") or []]
        messages = [*system, *(request.get("messages") or [])]
        params.update(tools=request.get("tools"), tool_choice=request.get("tool_choice"))
        call = registry.prepare_chat(provider, model_id, messages, call_params({}, params))
        kind = "chat"
    model = registry.cache_model_id(provider, model_id)
    return keyed_request(kind, provider, model, str(request.get("namespace") or ""), call.body)


def migrate_entry(
    store: EntryStore,
    entry: EntryRef,
    keyring: KeyRing | None,
    *,
    seal: bool,
    dry_run: bool = False,
) -> Migration:
    """Re-key one entry recorded under an older schema (see the module's docstring).

    ``keyring`` opens sealed entries and seals their rewritten ones (under its primary key);
    ``seal``: the cache encrypts, so a plaintext entry is refused as every read refuses it
    (whoever can write the directory could have put it there: re-keying and sealing it would
    launder it; ``spark cache rotate-key`` is the one command that seals plaintext entries).
    The new entry is written before the old one is removed, so an interruption loses nothing
    (running again finishes the work).
    """
    found = read_entry(
        store, entry.location, keyring, where=Where.of(entry), sealed_only=seal, touch=False
    )
    if found is None:
        return Migration(entry.location, MigrationOutcome.CANNOT, reason="deleted meanwhile")
    if isinstance(found, BadEntry):
        reason = _PLAINTEXT_REFUSED if found.kind == "plaintext" else found.reason
        return Migration(entry.location, MigrationOutcome.CANNOT, reason=reason, kind=found.kind)
    assert found.payload is not None  # (read with its payload)
    stored = found.payload["request"]
    if stored.get("v") == KEY_SCHEMA_VERSION:
        return Migration(entry.location, MigrationOutcome.CURRENT, found.meta.key)
    try:
        request = rederived_request(stored)
    except (SparkError, KeyError, TypeError, ValueError) as exc:
        # The translation's message quotes the request; a sealed one's text stays sealed.
        why = (
            f"{type(exc).__name__} (its text stays sealed: `spark cache show "
            f"{found.meta.key[:12]}` shows the request on your own terminal)"
            if found.meta.sealed
            else str(exc)
        )
        reason = f"its request (key schema v{stored.get('v')}) cannot be re-derived: {why}"
        return Migration(entry.location, MigrationOutcome.CANNOT, reason=reason)
    new_key = create_key(request)
    if found.meta.sealed and keyring is None:
        reason = "it must be sealed again, and no key is configured"
        return Migration(entry.location, MigrationOutcome.CANNOT, reason=reason, kind="no key")
    if not dry_run:
        _rewrite(store, entry, found, request, new_key, keyring if found.meta.sealed else None)
    return Migration(entry.location, MigrationOutcome.REKEYED, new_key)


def _rewrite(
    store: EntryStore,
    entry: EntryRef,
    found: StoredEntry,
    request: dict[str, Any],
    new_key: str,
    keyring: KeyRing | None,
) -> None:
    old = found.meta
    meta = EntryMeta(new_key, old.provider, request["model"], old.created_at, old.expires_at)
    assert found.payload is not None
    data = encode_entry(meta, {"request": request, "response": found.payload["response"]}, keyring)
    location = store.location(old.provider, meta.model_id, new_key)
    store.write(location, data, meta.expires_at)
    if location != entry.location:
        store.remove(entry.location)
