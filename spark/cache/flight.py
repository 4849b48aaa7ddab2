"""Single flight in one process: identical concurrent misses share the first caller's call.

``SingleFlight`` is owned by a ``CacheManager`` (one per cache); its table of calls in flight is
touched by nothing else. Across processes a store's claim (``EntryStore.try_lock``) does the
same job; ``BoundCache`` combines the two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Calls in flight by key, per event loop."""

    def __init__(self) -> None:
        self._calls: dict[tuple[int, str], asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    async def share(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``(result, shared)``: the first caller of ``key`` in this event loop runs ``work``;
        callers that come while it runs get its result (``shared``) or its exception. When the
        leader's caller is cancelled, the next waiter leads."""
        found = await self.follow(key)
        if found is not None:
            return found[0], True
        future = self.lead(key)
        try:
            result = await work()
        except BaseException as exc:
            self.fail(key, future, exc)
            raise
        self.succeed(key, future, result)
        return result, False

    async def follow(self, key: str) -> tuple[T] | None:
        """The result of the call of ``key`` in flight in this event loop (waited for), or None
        when there is none, or when its leader gave up: then the caller leads (``lead``)."""
        slot = (id(asyncio.get_running_loop()), key)
        while (leader := self._calls.get(slot)) is not None:
            try:
                return (await asyncio.shield(leader),)
            except asyncio.CancelledError:
                if _cancelled_by_us():
                    raise
                # (the leader's caller gave up: the loop makes the next waiter lead)
        return None

    def lead(self, key: str) -> asyncio.Future[T]:
        """Make the caller the leader of ``key`` (after ``follow`` found none); it must end
        with ``succeed`` or ``fail``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls[(id(loop), key)] = future
        return future

    def succeed(self, key: str, future: asyncio.Future[T], result: T) -> None:
        """The leader's result goes to its followers."""
        self._calls.pop((id(future.get_loop()), key), None)
        future.set_result(result)

    def fail(self, key: str, future: asyncio.Future[T], exc: BaseException) -> None:
        """The leader failed (its followers get ``exc``) or gave up (cancelled or abandoned:
        the next follower leads)."""
        self._calls.pop((id(future.get_loop()), key), None)
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            future.cancel()
        else:
            future.set_exception(exc)
            future.exception()  # mark retrieved: there may be no follower to read it


def _cancelled_by_us() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
