"""The folder summary: entries and bytes of each model folder, as of a scan, in the cache root.

``{root}/.spark-summary.json`` (per machine, ignored by git like every ``.spark-*`` file) holds,
for each ``{provider}/{model}`` folder, its identity (device, inode), its modification time and
the entries and bytes a scan counted in it. ``get_stats()`` reuses a folder's figures while the
folder is the same one with the same modification time (no entry was added, removed or replaced
since), and scans it again otherwise (docs/caching.md, "Statistics").

A figure is only kept when it cannot be racy: the folder's modification time was at least
``SETTLED_NS`` older than the scan's start, and unchanged when the scan ended (as git treats
index entries written in the same second as the file). The file is advisory: anything odd in it
(not JSON, a wrong type, a bad digest, too big, a symlink) makes it count as absent, and failing
to write it (a read-only directory) is not an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spark.cache.ledger.usage import ensure_bookkeeping_ignored

__all__ = [
    "SETTLED_NS",
    "SUMMARY_NAME",
    "FolderSummary",
    "load_summary",
    "save_summary",
    "settled",
]

logger = logging.getLogger("spark.cache")

SUMMARY_NAME = ".spark-summary.json"
#: How much older than a scan a folder's modification time must be for its figures to be kept
#: (coarse directory timestamps: FAT keeps two seconds).
SETTLED_NS = 2 * 10**9
_FORMAT = 1
_MAX_BYTES = 16 * 2**20
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}/[^/\x00]{1,255}\Z")
_FIELDS = ("dev", "ino", "mtime_ns", "entries", "size")


@dataclass(frozen=True, slots=True)
class FolderSummary:
    """One model folder as a scan found it: identity, modification time, entries, their bytes
    (``size``), and the model id they are counted under."""

    dev: int
    ino: int
    mtime_ns: int
    entries: int
    size: int
    model_id: str

    def describes(self, st: os.stat_result) -> bool:
        """Whether the folder (its ``lstat``) is still the one counted, unchanged since."""
        return (self.dev, self.ino, self.mtime_ns) == (st.st_dev, st.st_ino, st.st_mtime_ns)


def settled(before: os.stat_result, folder: str, started_ns: int) -> bool:
    """Whether figures counted in ``folder`` between ``before`` (its ``lstat`` then) and now may
    be kept: it was last changed ``SETTLED_NS`` before ``started_ns`` and is unchanged since."""
    if before.st_mtime_ns > started_ns - SETTLED_NS:
        return False
    try:
        after = os.lstat(folder)
    except OSError:
        return False
    return (after.st_dev, after.st_ino, after.st_mtime_ns) == (
        before.st_dev,
        before.st_ino,
        before.st_mtime_ns,
    )


def load_summary(root: Path) -> dict[str, FolderSummary]:
    """The summary of ``root`` by ``"{provider}/{model folder}"``; empty when there is none or
    it is unusable in any way (never raises)."""
    try:
        fd = os.open(root / SUMMARY_NAME, _READ_FLAGS)
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_BYTES:
            return {}
        data = os.read(fd, _MAX_BYTES + 1)
    except OSError:
        return {}
    finally:
        os.close(fd)
    try:
        return _parse(data)
    except Exception as exc:  # (RecursionError, ValueError, ...: damaged or hostile; rescan)
        logger.debug("ignoring the folder summary in %s: %s", root, exc)
        return {}


def _parse(data: bytes) -> dict[str, FolderSummary]:
    body = json.loads(data.decode("utf-8"))
    if not isinstance(body, dict) or body.get("format") != _FORMAT:
        return {}
    folders = body.get("folders")
    if not isinstance(folders, dict) or body.get("digest") != _digest(folders):
        return {}
    found = {}
    for name, record in folders.items():
        summary = _record(name, record)
        if summary is None:
            return {}
        found[name] = summary
    return found


def _record(name: object, record: object) -> FolderSummary | None:
    if not isinstance(name, str) or not _NAME_RE.match(name) or not isinstance(record, dict):
        return None
    numbers = [n for n in (record.get(field) for field in _FIELDS) if type(n) is int]
    if len(numbers) != len(_FIELDS) or not all(0 <= n < 2**64 for n in numbers):
        return None  # (a bool, a float, a string or a missing field is not a figure)
    model_id = record.get("model_id")
    if not isinstance(model_id, str) or not model_id or len(model_id) > 4096:
        return None
    dev, ino, mtime_ns, entries, size = numbers
    return FolderSummary(dev, ino, mtime_ns, entries, size, model_id)


def _digest(folders: Any) -> str:
    text = json.dumps(folders, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def save_summary(root: Path, folders: dict[str, FolderSummary]) -> None:
    """Atomically replace the summary of ``root`` with ``folders`` (temp file + rename).

    Not an error when it cannot be written (a read-only directory): the next ``get_stats()``
    scans again. A temp file of a killed writer is removed by cleanup, as any ``.tmp``.
    """
    records = {name: asdict(summary) for name, summary in sorted(folders.items())}
    body = {"format": _FORMAT, "digest": _digest(records), "folders": records}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    temp = root / f"{SUMMARY_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        ensure_bookkeeping_ignored(root)
        temp.write_text(text, encoding="ascii")
        os.replace(temp, root / SUMMARY_NAME)
    except OSError as exc:
        logger.debug("cannot keep a folder summary in %s: %s", root, exc)
        with contextlib.suppress(OSError):
            temp.unlink()
