"""Single flight in one process: identical concurrent misses share the first caller's call,
in one event loop or in several (threads that each run their own: ``asyncio.run`` per request,
a thread pool of sync workers).

``SingleFlight`` is owned by a ``CacheManager`` (one per cache); its table of calls in flight is
touched by nothing else. Across processes a store's claim (``EntryStore.try_lock``) does the
same job; ``spark/cache/misses.py`` combines the two (docs/caching.md, "One call per question").

A follower waits for the leader's outcome and shares only its answer:

- the leader answered: the follower gets the answer;
- the leader failed: each follower that was waiting makes its own call (``Turn.ALONE``), for a
  failure may be the leader's own (its timeout, its credentials, its client);
- the leader gave up (its caller was cancelled, its stream abandoned, its loop in another
  thread closed or no longer running): the next waiter leads;
- the leader is the follower's own task (a stream whose consumer asks the same question before
  it finished, or keeps a stream it stopped reading): waiting would last forever, so the
  follower calls alone;
- the leader is a stream whose consumer has not asked for the next chunk for ``STALLED_S``: one
  waiter takes the call over (``Turn.TAKE_OVER``, in this process only: the stalled stream may
  still hold the cross-process claim) and the others follow it.

The outcome is a ``concurrent.futures.Future`` (safe to end from any thread); each follower
waits on a future of its own loop that the outcome settles, so a follower's cancel is its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import threading
import time
from typing import Any, Generic, TypeVar

__all__ = ["STALLED_S", "Flight", "SingleFlight", "Turn"]

T = TypeVar("T")
#: A stream leader parked at a chunk this long (its consumer reads no further) stops being waited for.
STALLED_S = 1.0
_CHECK_S = 0.25  # how often a follower of a stream looks whether its leader stalled


class Turn(enum.Enum):
    """What a caller that found no answer to share does next."""

    LEAD = "lead"  # nothing in flight: lead the call (``SingleFlight.lead``)
    TAKE_OVER = "take over"  # the stream in flight stalled: lead in its place (here only)
    ALONE = "alone"  # the call in flight cannot be waited for: call without leading
    _GAVE_UP = "gave up"  # (internal: the leader was cancelled or abandoned)


class _LeaderFailedError(Exception):
    """Set on a flight whose leader failed: its followers make their own calls."""


class Flight(Generic[T]):
    """One call in flight: its outcome, the task (and loop) that leads it, and, for a stream,
    since when (``time.monotonic()``) its leader has been parked at a chunk its consumer has not
    taken (None while it works)."""

    __slots__ = ("future", "loop", "owner", "parked_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: asyncio.Task[Any] | None) -> None:
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.loop = loop
        self.owner = owner
        self.parked_at: float | None = None

    async def outcome(self) -> T | Turn:
        """The leader's result, or what to do instead: ``ALONE`` (it failed), ``TAKE_OVER`` (its
        stream stalled), ``_GAVE_UP``. A ``CancelledError`` is the waiter's own, always."""
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[None] = loop.create_future()

        def wake(_: object) -> None:  # (in whichever thread ends the flight)
            with contextlib.suppress(RuntimeError):  # (the waiter's loop closed meanwhile)
                loop.call_soon_threadsafe(_settle, settled)

        self.future.add_done_callback(wake)
        while True:
            done, _ = await asyncio.wait((settled,), timeout=_CHECK_S)
            if done:
                return self._result()
            if not self.loop.is_running():  # (closed or stopped: its leader cannot end it)
                return Turn._GAVE_UP
            parked = self.parked_at
            if parked is not None and time.monotonic() - parked >= STALLED_S:
                return Turn.TAKE_OVER

    def _result(self) -> T | Turn:
        future = self.future
        if future.cancelled():
            return Turn._GAVE_UP
        if isinstance(future.exception(), _LeaderFailedError):
            return Turn.ALONE
        return future.result()


def _settle(settled: asyncio.Future[None]) -> None:
    if not settled.done():
        settled.set_result(None)


class SingleFlight(Generic[T]):
    """Calls in flight by key, in every event loop of the process."""

    def __init__(self) -> None:
        self._calls: dict[str, Flight[T]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._calls)

    async def follow(self, key: str) -> tuple[T] | Turn:
        """``(result,)``: the answer of the call of ``key`` in flight (waited for);
        ``Turn.LEAD`` when there is none, or when its leader gave up; ``Turn.TAKE_OVER`` or
        ``Turn.ALONE`` when it cannot be shared (see the module's docstring)."""
        while (flight := self._calls.get(key)) is not None:
            if flight.owner is not None and flight.owner is asyncio.current_task():
                return Turn.ALONE
            found = await flight.outcome()
            if found is Turn._GAVE_UP:
                self._end(key, flight)  # (gone already, unless its loop closed under it)
                continue  # (the leader's caller gave up: the loop makes the next waiter lead)
            if found is Turn.TAKE_OVER and self._calls.get(key) is not flight:
                continue  # (another waiter took the stalled stream over: follow that one)
            return found if isinstance(found, Turn) else (found,)
        return Turn.LEAD

    def lead(self, key: str) -> Flight[T]:
        """Make the caller the leader of ``key`` (after ``follow`` said ``Turn.LEAD``); it must
        end with ``succeed`` or ``fail``."""
        flight: Flight[T] = Flight(asyncio.get_running_loop(), asyncio.current_task())
        with self._lock:
            for other_key, other in list(self._calls.items()):  # (of loops closed under them)
                if other.loop.is_closed():
                    del self._calls[other_key]
            self._calls[key] = flight
        return flight

    def succeed(self, key: str, flight: Flight[T], result: T) -> None:
        """The leader's result goes to its followers."""
        self._end(key, flight)
        flight.future.set_result(result)

    def fail(self, key: str, flight: Flight[T], exc: BaseException) -> None:
        """The leader failed (its followers make their own calls) or gave up (cancelled or
        abandoned: the next follower leads)."""
        self._end(key, flight)
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            flight.future.cancel()
        else:
            flight.future.set_exception(_LeaderFailedError())

    def _end(self, key: str, flight: Flight[T]) -> None:
        with self._lock:
            if self._calls.get(key) is flight:  # (a newer flight of the key is not ours to end)
                del self._calls[key]
