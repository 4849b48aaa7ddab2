"""Which entries a run used: the record behind ``spark cache prune --unused``.

A recording run (the pytest plugin does this at the end of a session) writes the keys it read
or wrote; pruning then removes every other entry, so a committed cache keeps only what the
test suite still asks for.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from spark.cache.keys import is_key
from spark.errors import CacheError

__all__ = [
    "IGNORE_TEXT",
    "USAGE_RECORD_NAME",
    "UsageRecord",
    "ensure_bookkeeping_ignored",
    "read_usage_record",
    "record_to_prune_by",
    "write_usage_record",
]

USAGE_RECORD_NAME = ".spark-last-run.json"
IGNORE_TEXT = (
    "# Spark's ledger and run records are per machine, and a crashed writer's temp files are\n"
    "# not entries: keep them out of git\n.spark-*\n.*.tmp\n"
)
_MAX_RECORD_BYTES = 256 * 2**20  # some 3.7 million keys
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def ensure_bookkeeping_ignored(cache_dir: Path) -> None:
    """Write ``{cache_dir}/.gitignore`` (ignoring ``.spark-*`` and temp files) unless there is one.

    Written atomically (temp file + rename), so a process that dies half-way leaves no empty
    file behind; called before any ``.spark-*`` file and with a cache's first entry.
    """
    ignore = cache_dir / ".gitignore"
    if ignore.exists():
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    temp = cache_dir / f".gitignore.{os.getpid()}.{secrets.token_hex(4)}.tmp"  # threads race here
    _replace(temp, IGNORE_TEXT, ignore)


def write_usage_record(cache_dir: Path, keys: Iterable[str], *, partial: bool = False) -> Path:
    """Atomically write the sorted ``keys`` (and the time) to the directory's usage record.

    A ``partial`` run (part of the suite: ``-k``, ``-m``, named paths) says nothing about the
    entries of the tests it did not run: its keys are added to the record's, never put in their
    place (so prune cannot delete what the rest of the suite uses)."""
    path = cache_dir / USAGE_RECORD_NAME
    ensure_bookkeeping_ignored(cache_dir)
    temp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    used = set(keys)
    if partial:
        try:
            before = read_usage_record(cache_dir)
        except CacheError:  # no usable record yet: this run's keys only, and still partial
            before = None
        if before is not None:
            used |= before.keys
            partial = before.partial  # (a whole run's record stays whole: this adds to it)
    body = {"finished_at": time.time(), "keys": sorted(used), "partial": partial}
    _replace(temp, json.dumps(body, indent=0) + "\n", path)
    return path


def _replace(temp: Path, text: str, path: Path) -> None:
    """Write ``text`` to ``temp``, then rename it over ``path``; no temp outlives a failure."""
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class UsageRecord(NamedTuple):
    """The last recorded run: the keys it used and when it finished (epoch seconds; None in a
    record written by hand without it); ``partial`` when no run of the whole suite is in it."""

    keys: set[str]
    finished_at: float | None
    partial: bool = False


def read_usage_record(cache_dir: Path) -> UsageRecord:
    """The last recorded run; ``CacheError`` when there is no usable record."""
    path = cache_dir / USAGE_RECORD_NAME
    try:
        body = json.loads(_read_regular(path))
        keys, finished_at = body["keys"], body.get("finished_at")
        if not isinstance(keys, list) or not all(map(is_key, keys)):
            raise ValueError("its keys are not a list of entry keys")
        if finished_at is not None and (
            isinstance(finished_at, bool) or not isinstance(finished_at, int | float)
        ):
            raise ValueError("its finished_at is not a time")
    except FileNotFoundError as exc:
        raise CacheError(
            f"no recorded run in {cache_dir} ({USAGE_RECORD_NAME} is missing): record the test "
            "suite first (pytest --spark-cache=record), then prune"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"unreadable run record {path}: {exc}; record the suite again") from exc
    partial = body.get("partial") is True
    return UsageRecord(set(keys), None if finished_at is None else float(finished_at), partial)


def record_to_prune_by(cache_dir: Path) -> UsageRecord:
    """The last recorded run, if it can tell which entries are unused: ``CacheError`` when no
    run was recorded, or only runs of part of the suite were."""
    record = read_usage_record(cache_dir)
    if record.partial:
        raise CacheError(
            f"the recorded runs in {cache_dir} ran part of the suite only (-k, -m or named "
            "paths): they cannot tell which entries the rest of it uses; record the whole suite "
            "(pytest --spark-cache=record), then prune"
        )
    return record


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file of bounded size. Never a symlink followed
    or a FIFO waited on: a committed cache may hold either (``OSError`` / ``ValueError``)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if os.path.islink(path):
            raise ValueError("it is a symlink (not followed)") from exc
        raise
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise ValueError("it is not a regular file")
        if found.st_size > _MAX_RECORD_BYTES:
            raise ValueError(f"{found.st_size} bytes, over the limit of {_MAX_RECORD_BYTES}")
        chunks = []
        while chunk := os.read(fd, 2**20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
