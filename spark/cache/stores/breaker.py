"""A circuit breaker for a network store: after a failure, skip the server for a cool-down.

A dead or hung Redis must not add its timeout to every call. The first failure opens the
circuit and logs one warning; while it is open every operation fails at once with
``StoreUnavailableError`` (the cache serves a miss). When the cool-down has passed, one caller
probes the server while the others keep failing fast; success closes the circuit (logged at
info level), failure re-opens it silently. Rejected alternative: a retry per call with a short
timeout, which still costs that timeout on every call of an outage.
"""

from __future__ import annotations

import logging
import threading
import time

from spark.cache.stores.base import StoreUnavailableError

__all__ = ["CircuitBreaker"]

logger = logging.getLogger("spark.cache")


class CircuitBreaker:
    """Open after a failure, closed after a successful probe; thread-safe."""

    def __init__(self, where: str, cooldown_s: float) -> None:
        self.where = where
        self.cooldown_s = cooldown_s
        self.open_until = 0.0  # time.monotonic() deadline; 0.0 = closed
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Whether calls are being skipped right now."""
        return bool(self.open_until) and time.monotonic() < self.open_until

    def check(self) -> None:
        """Raise ``StoreUnavailableError`` while the circuit is open (this is the fast path:
        one attribute test while closed)."""
        if not self.open_until:
            return
        now = time.monotonic()
        with self._lock:
            if now < self.open_until:
                raise StoreUnavailableError(
                    f"{self.where} is unavailable; retrying in {self.open_until - now:.1f} s"
                )
            self.open_until = now + self.cooldown_s  # this caller probes; the others wait

    def succeeded(self) -> None:
        """Close the circuit after a successful operation (a no-op while closed)."""
        if self.open_until:
            with self._lock:
                self.open_until = 0.0
            logger.info("%s is reachable again", self.where)

    def failed(self, exc: BaseException) -> StoreUnavailableError:
        """Open the circuit; the error to raise. Warns once per outage, not per failure."""
        with self._lock:
            was_closed = not self.open_until
            self.open_until = time.monotonic() + self.cooldown_s
        if was_closed:
            logger.warning(
                "%s is unavailable (%s): serving cache misses, retrying in %g s",
                self.where,
                exc,
                self.cooldown_s,
            )
        return StoreUnavailableError(f"{self.where} is unavailable: {exc}")
