"""The miss path of a binding: one provider call per question (docs/caching.md, "One call per
question").

In this process, identical concurrent misses (in one event loop or in several threads' loops)
share the first caller's call (``SingleFlight``: who waits for whom, and when a follower calls
alone). Across processes and machines, on a store that can claim a key (Redis), the store's
claim does the same; a stream and a plain call take the same claim. A follower gets the leader's answer as a copy of its own,
stored under the follower's own rules when the leader stored none (a ``read_only`` call) or one
that expires sooner (a shorter TTL): when a call returns, its entry is in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any, NamedTuple

from spark.cache.flight import Flight, Turn
from spark.cache.shape import own_copy

if TYPE_CHECKING:
    from spark.cache.bound import BoundCache, CacheRequest

__all__ = [
    "Accept",
    "CacheResult",
    "Outcome",
    "ProviderCall",
    "ProviderStream",
    "call_once",
    "replayed_chunks",
    "stream_once",
]

_POLL_S = 0.025  # how often a process waiting on another's provider call looks for its entry

ProviderCall = Callable[[], Awaitable[Mapping[str, Any]]]
#: Whether a stored response may still be served (e.g. it matches ``get_json``'s schema).
Accept = Callable[[Mapping[str, Any]], bool]
#: A provider stream: text chunks, then (last) the stored form of the whole answer.
ProviderStream = Callable[[], AsyncIterator[str | dict[str, Any]]]


class CacheResult(NamedTuple):
    """A response dict and whether it came from the cache (hits and single-flight followers)."""

    response: Mapping[str, Any]
    cached: bool
    key: str


class Outcome(NamedTuple):
    """What a leader hands its followers: the answer, whether it came from the store, and the
    TTL it was stored with (None: not stored)."""

    response: Mapping[str, Any]
    cached: bool
    stored_ttl: float | None


def replayed_chunks(response: Mapping[str, Any]) -> list[str]:
    """The chunks a stream of a cached answer yields: the very chunks of a recorded stream, or
    the whole text of an answer recorded by a plain call (nothing when it has no text). Chunks
    that do not make up the text (an entry of a stream that yielded none of its text, edited
    chunks) give way to the text: a stream and a plain call of one entry never disagree."""
    chunks = response.get("chunks")
    text = response.get("text") or ""
    if chunks is not None and "".join(chunks) == text:
        return list(chunks)
    return [text] if text else []


async def call_once(
    bound: BoundCache, request: CacheRequest, call: ProviderCall, accept: Accept | None
) -> CacheResult:
    """The provider's answer (stored per the policy), another caller's, or another process's."""
    flight = bound.manager.flight
    found = await flight.follow(request.key)
    if isinstance(found, tuple) and _shares(bound, found[0]):
        return CacheResult(_as_follower(bound, request, found[0]), True, request.key)
    lead = flight.lead(request.key) if found in (Turn.LEAD, Turn.TAKE_OVER) else None
    try:
        outcome = await _call_claimed(bound, request, call, accept, claim=found is Turn.LEAD)
    except BaseException as exc:
        if not isinstance(exc, asyncio.CancelledError):
            bound.manager.counters.record_miss(request, None)
        if lead is not None:
            flight.fail(request.key, lead, exc)
        raise
    if lead is not None:  # (the followers' copy: the caller may change its answer at once)
        shared = outcome._replace(response=own_copy(dict(outcome.response)))
        flight.succeed(request.key, lead, shared)
    return CacheResult(outcome.response, outcome.cached, request.key)


async def stream_once(
    bound: BoundCache, request: CacheRequest, open_stream: ProviderStream
) -> AsyncGenerator[str, None]:
    """The chunks of the provider's stream (the answer stored when it completes), or of the
    answer of an identical call in flight here or in another process."""
    flight = bound.manager.flight
    found = await flight.follow(request.key)
    if isinstance(found, tuple) and _shares(bound, found[0]):
        for chunk in replayed_chunks(_as_follower(bound, request, found[0])):
            yield chunk
        return
    lead = flight.lead(request.key) if found in (Turn.LEAD, Turn.TAKE_OVER) else None
    claimed = found is Turn.LEAD
    outcome: Outcome | None = None
    opened = False  # the provider's stream was asked for: a miss, even if it stops early
    try:
        token, stored = await _claim(bound, request, None) if claimed else ("", None)
        if stored is not None:
            outcome = Outcome(stored, True, None)
            for chunk in replayed_chunks(own_copy(stored)):
                with _reader_awaited(bound, lead, token):  # (its reader may stall too)
                    yield chunk
        else:
            try:
                opened = True
                async for piece in _streamed(bound, request, open_stream, lead, token):
                    if isinstance(piece, str):
                        yield piece
                    else:
                        outcome = piece
            finally:
                if token:
                    bound.manager.claims.release(request.key, token)
    except BaseException as exc:
        if opened or not isinstance(exc, asyncio.CancelledError | GeneratorExit):
            bound.manager.counters.record_miss(request, None)  # (what it cost is not known)
        if lead is not None:
            flight.fail(request.key, lead, exc)
        raise
    if lead is not None:
        assert outcome is not None  # (the stream ended with its outcome, or raised)
        flight.succeed(request.key, lead, outcome)


async def _streamed(
    bound: BoundCache,
    request: CacheRequest,
    open_stream: ProviderStream,
    lead: Flight[Any] | None,
    token: str,
) -> AsyncIterator[str | Outcome]:
    """The provider's chunks (each marked while it waits for its reader), then the outcome
    (the answer stored)."""
    stored: dict[str, Any] | None = None
    async for piece in open_stream():
        if isinstance(piece, str):
            with _reader_awaited(bound, lead, token):
                yield piece
        else:
            stored = piece
    if stored is None:
        raise RuntimeError("a provider stream ended without its answer")
    bound.manager.counters.record_miss(request, stored)
    saved = bound.save(request, stored)
    yield Outcome(stored, False, bound.policy.ttl if saved else None)


@contextlib.contextmanager
def _reader_awaited(bound: BoundCache, lead: Flight[Any] | None, token: str) -> Iterator[None]:
    """While a stream's chunk waits for its reader: the flight and the claim say since when
    (a follower here stops waiting for a stalled stream; another process's, once the claim
    lapses)."""
    if lead is not None:
        lead.parked_at = time.monotonic()
    if token:
        bound.manager.claims.park(token, True)
    try:
        yield
    finally:
        if lead is not None:
            lead.parked_at = None
        if token:
            bound.manager.claims.park(token, False)


async def _call_claimed(
    bound: BoundCache,
    request: CacheRequest,
    call: ProviderCall,
    accept: Accept | None,
    claim: bool = True,
) -> Outcome:
    """The provider's answer (stored), or another process's for the same key; ``claim=False``:
    a caller that calls alone (it may itself be what holds the claim: its own stream)."""
    token, stored = await _claim(bound, request, accept) if claim else ("", None)
    if stored is not None:
        return Outcome(stored, True, None)
    try:
        try:
            response = await call()
        except asyncio.CancelledError:  # (the provider was asked: a miss, of unknown cost)
            bound.manager.counters.record_miss(request, None)
            raise
        bound.manager.counters.record_miss(request, response)
        saved = bound.save(request, response)
    finally:
        if token:
            bound.manager.claims.release(request.key, token)
    return Outcome(response, False, bound.policy.ttl if saved else None)


async def _claim(
    bound: BoundCache, request: CacheRequest, accept: Accept | None
) -> tuple[str, dict[str, Any] | None]:
    """``(token, None)`` once this process may call the provider (token ``""``: no shared
    claim), or ``("", answer)`` when another process that held the claim stored the answer
    (counted as a hit). While another process holds the claim, poll for its entry; when the
    claim goes (released or expired) with no entry, take it over (a claim is renewed while it
    is held: ``claims.py``). An entry ``accept`` refuses counts as none."""
    claims = bound.manager.claims
    token = claims.take(request.key) if bound.shares_claims else ""
    stored = None
    while token is None and stored is None:
        await asyncio.sleep(_POLL_S)
        stored = bound.recheck(request, accept)
        if stored is None:
            token = claims.take(request.key)
    if token:  # a real claim: its previous holder may have stored the answer just before
        stored = bound.recheck(request, accept)
        if stored is not None:
            claims.release(request.key, token)
    if stored is None:
        return token or "", None
    bound.manager.counters.record_hit(request, stored)
    return "", stored


def _shares(bound: BoundCache, outcome: Outcome) -> bool:
    """Whether a follower takes the leader's answer: a ``refresh`` call never takes one read
    from the store (refresh never reads); it calls alone."""
    return not (outcome.cached and bound.policy.mode == "refresh")


def _as_follower(bound: BoundCache, request: CacheRequest, outcome: Outcome) -> dict[str, Any]:
    """A follower's copy of the leader's answer, stored under the follower's rules when the
    leader's entry would not serve it as long (none, or a shorter TTL)."""
    bound.manager.counters.record_hit(request, outcome.response)
    ttl = outcome.stored_ttl
    if (
        bound.policy.writes
        and not outcome.cached
        and (ttl is None or _lifetime(ttl) < _lifetime(bound.policy.ttl))
    ):
        bound.save(request, outcome.response)
    return own_copy(dict(outcome.response))


def _lifetime(ttl: float) -> float:
    return math.inf if ttl <= 0 else ttl
