"""The expiry hint of an entry file: its modification time is set to the entry's ``expires_at``.

``cleanup_expired`` then skips, unread, every file whose modification time is still in the future
(docs/caching.md, "Entry files"). The hint only decides what cleanup reads: whether an entry is
expired is always its metadata's answer (``EntryMeta.is_expired``), and the hit path never
looks at the hint. A file whose hint is missing (copied, checked out, written where the
filesystem cannot hold it) has the time it was written, which is in the past: it is read, which
is correct, only slower.
"""

from __future__ import annotations

import contextlib
import math
import os

from spark.cache.codec import decode_envelope

__all__ = ["NEVER_NS", "expiry_hint_ns", "live_by_hint", "stamp_expiry", "stamp_passed"]

#: The hint of an entry that never expires: 2**33 s (the year 2242) plus the write time, so
#: that two writes of one file never share a modification time (the memory tier validates by
#: inode, modification time and size). ext4, XFS (bigtime), btrfs and tmpfs hold it.
NEVER_NS = 2**33 * 10**9
_MARGIN_NS = 1_000  # a hint a microsecond early: float rounding can never make it late
_ROUNDING_NS = 2 * 10**9  # a filesystem that keeps whole (or even) seconds rounds the hint


def expiry_hint_ns(expires_at: float | None, data: bytes, now_ns: int) -> int | None:
    """The modification time to give a file holding ``data`` (nanoseconds), or None for none.

    ``expires_at`` is the caller's; None means "not given": the envelope's own is used (None
    there: the entry never expires). Bytes that are not an entry get no hint. A hint is never
    later than the expiry it stands for.
    """
    if expires_at is None:
        try:
            expires_at = decode_envelope(data, check_digest=False).meta.expires_at
        except Exception:  # (not an entry: the reader will say why; no hint to give)
            return None
    never = NEVER_NS + now_ns
    if expires_at is None:
        return never
    if not math.isfinite(expires_at) or expires_at <= 0:
        return None
    return min(math.floor(expires_at * 1e9) - _MARGIN_NS, never)


def stamp_expiry(fd: int, hint_ns: int | None, now_ns: int) -> os.stat_result:
    """Set the open file's modification time to ``hint_ns`` (access time: now); its stat.

    Where the filesystem refuses the hint, or clamps it (a 32-bit time limit), the file keeps
    (or gets back) the time it was written: cleanup then reads it, and two writes of one file
    keep distinct modification times.
    """
    if hint_ns is None:
        return os.fstat(fd)
    try:
        os.utime(fd, ns=(now_ns, hint_ns))
    except (OSError, OverflowError, ValueError):
        return os.fstat(fd)
    st = os.fstat(fd)
    if not 0 <= hint_ns - st.st_mtime_ns < _ROUNDING_NS:  # (rounded down is still early)
        with contextlib.suppress(OSError):
            os.utime(fd, ns=(now_ns, now_ns))
        st = os.fstat(fd)
    return st


def live_by_hint(mtime_ns: int, now_ns: int) -> bool:
    """Whether a file's modification time says its writer stamped an expiry still to come
    (the file need not be read to know it is not expired)."""
    return mtime_ns > now_ns


def stamp_passed(st: os.stat_result, now_ns: int) -> bool:
    """Whether a file carries a writer's expiry stamp that has passed: its modification time is
    before now, yet after its status-change time. Only setting the modification time into the
    future makes that (writing a file sets both to now; a copy, a checkout or a read-then-touch
    leaves the modification time at or before the status change), and the writer stamps the
    ``expires_at`` of the very bytes it wrote, so that entry has expired."""
    return st.st_ctime_ns < st.st_mtime_ns and st.st_mtime_ns + 2 * _MARGIN_NS <= now_ns
