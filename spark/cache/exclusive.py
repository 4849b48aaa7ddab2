"""Work that must not run twice at once on one cache: a lock across processes.

Two ``spark cache rotate-key`` runs on one directory, each with its own new key, would each save
their own key list and seal entries under their own key; one list wins, and the entries sealed
under the other key could no longer be opened. So rotation holds the cache alone while it
works: on a directory an exclusive ``flock`` on ``{cache_dir}/.spark-{name}.lock`` (ignored by
git, as every ``.spark-*`` file), which goes with the process whatever ends it; on Redis (with
or without a local tier: every machine of the fleet) the store's claim on ``spark-{name}``,
renewed while it is held and lapsing when its holder dies (``claims.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from spark.cache.ledger.usage import ensure_bookkeeping_ignored
from spark.cache.stores.disk import DiskStore
from spark.errors import CacheError

if TYPE_CHECKING:
    from spark.cache.manager import CacheManager

__all__ = ["held_alone"]

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def held_alone(manager: CacheManager, name: str) -> Iterator[None]:
    """Hold the cache's ``name`` lock for the ``with`` block; ``CacheError`` at once when another
    process holds it (or it cannot be taken: a symlink where the lock file goes, say)."""
    if isinstance(manager.store, DiskStore):
        with _flocked(manager.store.root, name):
            yield
        return
    key = f"spark-{name}"
    token = manager.claims.take(key)  # ("" when the store is away: the work fails by itself)
    if token is None:
        where = manager.store.describe()
        raise CacheError(
            f"another `spark cache {name}` is running on {where} (it holds the claim on "
            f"{key}): let it finish, then run this again"
        )
    try:
        yield
    finally:
        if token:
            manager.claims.release(key, token)


@contextlib.contextmanager
def _flocked(root: Path, name: str) -> Iterator[None]:
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
