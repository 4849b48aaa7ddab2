"""The errors replay mode raises for an entry it cannot use: each names the file and says why.

Replay's job is to fail loudly (docs/testing.md): a damaged, tampered, injected or undecryptable
entry is never served and never quietly turned into a provider call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spark.errors import CacheError, CacheMissError, DecryptionError

if TYPE_CHECKING:
    from spark.cache.bound import CacheRequest
    from spark.cache.reader import BadEntry

__all__ = ["refused_by_schema", "replay_error"]


def replay_error(request: CacheRequest, bad: BadEntry, key_env: str, where: str) -> CacheError:
    """The replay-mode error for ``request`` whose entry is ``bad`` (in the store at ``where``)."""
    path = bad.location
    if bad.kind == "unavailable":
        return CacheError(f"replay: cannot read the cache at {where}: {bad.reason}")
    if bad.kind in ("no key", "unknown key"):
        return DecryptionError(
            f"replay: cannot decrypt cache entry {path}: {bad.reason}. Set {key_env} to the key "
            "the cache was recorded with",
            path=path,
            fingerprint=bad.fingerprint,
        )
    ids = {"provider": request.provider, "model_id": request.model_id, "key": request.key}
    what = f"the cache entry for {request.provider}/{request.model_id} at {path}"
    if bad.kind == "plaintext":
        return CacheMissError(
            f"replay: {what} is plaintext, but this cache encrypts, so it is refused (whoever "
            "can write the file could have put it there). If the cache was recorded before "
            "encryption was turned on, `spark cache rotate-key` encrypts its plaintext entries.",
            **ids,
        )
    return CacheMissError(
        f"replay: {what} is unusable ({bad.kind}: {bad.reason}); re-record it (pytest "
        "--spark-cache=record) and commit it. `spark cache verify` lists every such entry.",
        **ids,
    )


def refused_by_schema(request: CacheRequest, location: str) -> CacheMissError:
    """The replay-mode error for a recorded answer that no longer matches ``get_json``'s schema
    (its validators changed since it was recorded)."""
    return CacheMissError(
        f"replay: the recorded answer for {request.provider}/{request.model_id} at {location} no "
        "longer matches the schema get_json was given; re-record it (pytest "
        "--spark-cache=record) and commit it.",
        provider=request.provider,
        model_id=request.model_id,
        key=request.key,
    )
