"""Work that must not run twice at once on one cache: a lock across processes.

Two ``spark cache rotate-key`` runs on one directory, each with its own new key, would each save
their own key list and seal entries under their own key; one list wins, and the entries sealed
under the other key could no longer be opened. So rotation holds an exclusive ``flock`` on
``{cache_dir}/.spark-{name}.lock`` (ignored by git, as every ``.spark-*`` file) while it works.
The lock goes with the process, whatever ends it, so a killed run never leaves the cache locked.
A cache that lives only in Redis takes no such lock (docs/cli.md, ``spark cache rotate-key``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from spark.cache.ledger.usage import ensure_bookkeeping_ignored
from spark.cache.stores.base import EntryStore
from spark.cache.stores.disk import DiskStore
from spark.cache.stores.tiered import TieredStore
from spark.errors import CacheError

__all__ = ["held_alone"]

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def held_alone(store: EntryStore, name: str) -> Iterator[None]:
    """Hold the cache's ``name`` lock for the ``with`` block; ``CacheError`` at once when another
    process holds it (or it cannot be taken: a symlink where the lock file goes, say)."""
    root = _directory_of(store)
    if root is None:
        yield
        return
    ensure_bookkeeping_ignored(root)
    path = root / f".spark-{name}.lock"
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except OSError as exc:
        raise CacheError(f"cannot take the lock {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise CacheError(
            f"another `spark cache {name}` is running on {root} (it holds {path}): let it "
            "finish, then run this again"
        ) from exc
    try:
        yield
    finally:
        os.close(fd)  # (releases the lock; the empty file stays, as a lock file does)


def _directory_of(store: EntryStore) -> Path | None:
    if isinstance(store, DiskStore):
        return store.root
    if isinstance(store, TieredStore):
        return store.local.root
    return None
