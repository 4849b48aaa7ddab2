"""Single flight in one process: identical concurrent misses share the first caller's call.

``SingleFlight`` is owned by a ``CacheManager`` (one per cache); its table of calls in flight is
touched by nothing else. Across processes a store's claim (``EntryStore.try_lock``) does the
same job; ``spark/cache/misses.py`` combines the two (docs/caching.md, "One call per question").

A follower waits for the leader's outcome and shares only its answer:

- the leader answered: the follower gets the answer;
- the leader failed: each follower that was waiting makes its own call (``Turn.ALONE``), for a
  failure may be the leader's own (its timeout, its credentials, its client);
- the leader gave up (its caller was cancelled, its stream abandoned): the next waiter leads;
- the leader is the follower's own task (a stream whose consumer asks the same question before
  it finished, or keeps a stream it stopped reading): waiting would last forever, so the
  follower calls alone;
- the leader is a stream whose consumer has not asked for the next chunk for ``STALLED_S``: one
  waiter takes the call over (``Turn.TAKE_OVER``, in this process only: the stalled stream may
  still hold the cross-process claim) and the others follow it.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Generic, TypeVar

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
    """One call in flight: its outcome, the task that leads it, and, for a stream, since when
    its leader has been parked at a chunk its consumer has not taken (None while it works)."""

    __slots__ = ("future", "owner", "parked_at")

    def __init__(self, future: asyncio.Future[T], owner: asyncio.Task[object] | None) -> None:
        self.future = future
        self.owner = owner
        self.parked_at: float | None = None

    async def outcome(self) -> T | Turn:
        """The leader's result, or what to do instead: ``ALONE`` (it failed), ``TAKE_OVER`` (its
        stream stalled), ``_GAVE_UP``. A ``CancelledError`` is the waiter's own, always."""
        future, loop = self.future, self.future.get_loop()
        while True:
            done, _ = await asyncio.wait((future,), timeout=_CHECK_S)
            if done:
                if future.cancelled():
                    return Turn._GAVE_UP
                try:
                    return future.result()
                except _LeaderFailedError:
                    return Turn.ALONE
            parked = self.parked_at
            if parked is not None and loop.time() - parked >= STALLED_S:
                return Turn.TAKE_OVER


class SingleFlight(Generic[T]):
    """Calls in flight by key, per event loop."""

    def __init__(self) -> None:
        self._calls: dict[tuple[int, str], Flight[T]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    async def follow(self, key: str) -> tuple[T] | Turn:
        """``(result,)``: the answer of the call of ``key`` in flight in this event loop
        (waited for); ``Turn.LEAD`` when there is none, or when its leader gave up;
        ``Turn.TAKE_OVER`` or ``Turn.ALONE`` when it cannot be shared (see the module's
        docstring). (A flight's future holds its loop, so no other loop can have its id.)"""
        slot = (id(asyncio.get_running_loop()), key)
        while (flight := self._calls.get(slot)) is not None:
            if flight.owner is not None and flight.owner is asyncio.current_task():
                return Turn.ALONE
            found = await flight.outcome()
            if found is Turn._GAVE_UP:
                continue  # (the leader's caller gave up: the loop makes the next waiter lead)
            if found is Turn.TAKE_OVER and self._calls.get(slot) is not flight:
                continue  # (another waiter took the stalled stream over: follow that one)
            return found if isinstance(found, Turn) else (found,)
        return Turn.LEAD

    def lead(self, key: str) -> Flight[T]:
        """Make the caller the leader of ``key`` (after ``follow`` said ``Turn.LEAD``); it must
        end with ``succeed`` or ``fail``."""
        loop = asyncio.get_running_loop()
        flight: Flight[T] = Flight(loop.create_future(), asyncio.current_task())
        for slot, other in list(self._calls.items()):  # (calls of loops closed before they ended)
            if other.future.get_loop().is_closed():
                del self._calls[slot]
        self._calls[(id(loop), key)] = flight
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
            flight.future.exception()  # mark retrieved: there may be no follower to read it

    def _end(self, key: str, flight: Flight[T]) -> None:
        slot = (id(flight.future.get_loop()), key)
        if self._calls.get(slot) is flight:  # (a newer flight of the key is not ours to end)
            del self._calls[slot]
