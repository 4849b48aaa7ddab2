"""SDK clients bound to event loops: one client per loop, closed when its loop shuts down.

An async SDK client (``openai.AsyncOpenAI``, google-genai's ``client.aio``) pools connections
that belong to the loop that opened them. A script that calls ``asyncio.run`` several times
and never calls ``aclose()`` leaves clients behind whose loop is gone; when one is
garbage-collected under a later loop, the SDK schedules its close there, which fails with
"Event loop is closed" and is logged as "Task exception was never retrieved".

So each client is built for the running loop and paired with a small async generator started
on that loop: ``loop.shutdown_asyncgens()`` (which ``asyncio.run`` and ``asyncio.Runner`` call
before closing a loop) closes the generator, and the generator closes the client while its
loop still runs. Rejected: closing clients from ``__del__`` (no loop to await on) and one
client per model (it breaks under a second ``asyncio.run`` and in threads with their own loops).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["LoopClients"]

C = TypeVar("C")


class LoopClients(Generic[C]):
    """The clients of one model, by event loop, built with ``build`` and closed with ``close``.

    ``loop in clients`` and ``clients[loop]`` look one up.
    """

    def __init__(self, build: Callable[[], C], close: Callable[[C], Awaitable[None]]) -> None:
        self._build = build
        self._close = close
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[C, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    def __contains__(self, loop: object) -> bool:
        return loop in self._by_loop

    def __getitem__(self, loop: asyncio.AbstractEventLoop) -> C:
        return self._by_loop[loop][0]

    def current(self) -> C:
        """The client of the running loop, built (and tied to the loop's shutdown) on first use."""
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is not None:
            return found[0]
        client = self._build()
        self._by_loop[loop] = (client, _started(_closer(client, self._close)))
        return client

    async def close_current(self) -> None:
        """Close the running loop's client, if one was built."""
        found = self._by_loop.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[1].aclose()

    async def close_stale(self) -> None:
        """Close the clients of loops closed without ``shutdown_asyncgens`` (a bare
        ``loop.close()``), before the SDK schedules a doomed close of its own."""
        for loop, (_, closer) in list(self._by_loop.items()):
            if loop.is_closed():
                self._by_loop.pop(loop, None)
                await closer.aclose()


async def _closer(client: C, close: Callable[[C], Awaitable[None]]) -> AsyncGenerator[None, None]:
    """Wait, suspended, until the loop shuts down (or the model closes), then close ``client``."""
    try:
        yield
    finally:
        with contextlib.suppress(RuntimeError, OSError):  # its loop may be gone: sockets too
            await close(client)


def _started(closer: AsyncGenerator[None, None]) -> AsyncGenerator[None, None]:
    """Run ``closer`` to its ``yield`` without awaiting, on the running loop.

    Its first step registers it with the running loop (asyncio's first-iteration hook), which
    is what makes the loop's shutdown close it; the step itself does no I/O.
    """
    step = closer.asend(None)
    with contextlib.suppress(StopIteration):
        step.send(None)
    return closer
