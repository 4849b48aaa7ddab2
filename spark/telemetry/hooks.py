"""What the model layer calls: decorators that observe a public model call, and notes.

``@observed("chat")`` / ``@observed_stream("chat")`` give a model method an observed version,
which puts the call in its span when telemetry is on and the model's ``telemetry`` is true.
Which version the class holds is the switch's choice (``_switch.py``): the plain method, as
written, once telemetry is known to be off. A bound method kept from before a change keeps the
version it was taken from. A model built with ``telemetry=False`` gets the plain methods as its
own attributes at its first call (its ``telemetry`` is read then, not later).

Inside a call the model layer notes the cache it uses (``note_cache``), the cache's answer
(``note_result``) and the provider's priced answer (``note_paid``): each is one
context-variable read when nothing is observed (``note_cache`` also looks for an SDK when it is
time to). Rejected: reading hit/miss from the cache's counters (shared by every concurrent call
of a directory, so not one call's).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from time import monotonic
from types import MethodType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from spark.telemetry._record import CURRENT_CALL
from spark.telemetry._switch import SWITCH, current, look

if TYPE_CHECKING:
    from spark.cache import BoundCache, CacheRequest, CacheResult
    from spark.telemetry._instruments import Instruments, ObservedModel

__all__ = [
    "note_cache",
    "note_called",
    "note_paid",
    "note_result",
    "observed",
    "observed_stream",
]

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])
S = TypeVar("S", bound=Callable[..., AsyncIterator[Any]])
R = TypeVar("R")

# (class, attribute, plain, observed) of every decorated method.
_METHODS: list[tuple[type, str, Callable[..., Any], Callable[..., Any]]] = []


class _Versions:
    """A decorated method while its class is made: it files both versions and leaves the one
    the switch wants as the class attribute (a plain function either way)."""

    def __init__(self, plain: Callable[..., Any], traced: Callable[..., Any]) -> None:
        self._plain = plain
        self._traced = traced

    def __set_name__(self, owner: type, name: str) -> None:
        _METHODS.append((owner, name, self._plain, self._traced))
        setattr(owner, name, self._traced if SWITCH.observing else self._plain)


def _install(observing: bool) -> None:
    for owner, name, plain, traced in _METHODS:
        setattr(owner, name, traced if observing else plain)


SWITCH.installers.append(_install)


def _never_observed(model: ObservedModel) -> Instruments | None:
    """A model built with ``telemetry=False``: from now on its own attributes are the plain
    methods, so it skips the observed ones the class holds while telemetry is on. None: no
    instruments for this call."""
    for owner, name, plain, _traced in _METHODS:
        if isinstance(model, owner):
            vars(model)[name] = MethodType(plain, model)
    return None


def observed(operation: str) -> Callable[[F], F]:
    """Decorate an async model method: one span per call (``operation``: chat, embeddings)."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        async def traced(self: ObservedModel, /, *args: Any, **kwargs: Any) -> Any:
            instruments = current() if self.telemetry else _never_observed(self)
            if instruments is None:
                return await method(self, *args, **kwargs)
            return await instruments.run(self, operation, lambda: method(self, *args, **kwargs))

        return cast("F", _Versions(method, traced))

    return decorate


def observed_stream(operation: str) -> Callable[[S], S]:
    """Decorate a streaming model method: one span covers the whole stream."""

    def decorate(method: S) -> S:
        @functools.wraps(method)
        async def traced(self: ObservedModel, /, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            instruments = current() if self.telemetry else _never_observed(self)
            chunks = method(self, *args, **kwargs)
            observed = (
                chunks if instruments is None else instruments.stream(self, operation, chunks)
            )
            async with contextlib.aclosing(cast("AsyncGenerator[Any, None]", observed)):
                async for chunk in observed:
                    yield chunk

        return cast("S", _Versions(method, traced))

    return decorate


def note_cache(cache: BoundCache | None, request: CacheRequest) -> BoundCache | None:
    """Note the cache the observed call uses (None: it is made uncached); returns ``cache``."""
    record = CURRENT_CALL.get()
    if record is None:
        if SWITCH.instruments is None and SWITCH.next_look <= monotonic():
            look()  # (the plain methods are installed: an SDK may have been configured since)
        return cache
    record.noted = True
    record.cache = cache
    record.request = request
    return cache


def note_result(result: CacheResult) -> CacheResult:
    """Note the cache's answer of the observed call (hit or miss); returns ``result``."""
    record = CURRENT_CALL.get()
    if record is not None:
        record.cached = result.cached
        record.stored = result.response
    return result


def note_called() -> None:
    """Note that the observed call reached the provider (a stream's miss, before its answer:
    one its caller stops reading is still a miss, never a hit)."""
    record = CURRENT_CALL.get()
    if record is not None:
        record.called = True


def note_paid(response: R) -> R:
    """Note the provider's priced answer (a ``ModelResponse`` or ``EmbeddingResponse``)."""
    record = CURRENT_CALL.get()
    if record is not None:
        record.paid = response  # type: ignore[assignment]  # (one of the two response types)
    return response
