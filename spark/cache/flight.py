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
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        while (leader := self._calls.get(slot)) is not None:
            try:
                return await asyncio.shield(leader), True
            except asyncio.CancelledError:
                if _cancelled_by_us():
                    raise
                # (the leader's caller gave up: the loop makes the next waiter lead)
        future: asyncio.Future[T] = loop.create_future()
        self._calls[slot] = future
        try:
            result = await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: there may be no follower to read it
            raise
        else:
            future.set_result(result)
        finally:
            self._calls.pop(slot, None)
        return result, False


def _cancelled_by_us() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
