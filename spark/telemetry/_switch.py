"""Whether Spark's telemetry is on in this process, and which model methods are installed.

On when a real OpenTelemetry SDK is configured (the global tracer or meter provider is not the
API's proxy or no-op), or when providers were given to :func:`set_providers`. ``opentelemetry``
is never imported here: if it is not in ``sys.modules`` nobody configured an SDK (one that is
blocked or not installed is never there either).

The observed model methods come in two versions (``hooks.py``): the observed one, which tests
the switch per call, and the plain one, the method as written. While the answer is unknown or
on, the observed version is installed; once a look finds no SDK, the plain one is, so a call
pays nothing for telemetry but one clock read in ``note_cache``, which looks again at most once
a second and installs the observed version when an SDK has appeared.

Rejected: asking the API every call (``get_tracer_provider()`` reads the environment each time,
about 1 µs, a few % of a hit); one always-installed wrapper or a method descriptor that tests
per call (1.2-1.5 µs more per hit, measured with scripts/bench_telemetry.py); importing
``opentelemetry`` on Spark's import (about 40 ms).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from spark.telemetry._instruments import Instruments

__all__ = ["LOOK_EVERY_S", "SWITCH", "current", "look", "set_providers"]

logger = logging.getLogger("spark.telemetry")
LOOK_EVERY_S = 1.0  # how soon an SDK configured after Spark's first call is noticed
_API_MODULES = ("opentelemetry.trace", "opentelemetry.metrics")  # where the proxies live


class _Switch:
    """The process's answer: the instruments in use (None: off), when to look again, and who
    installs the observed (True) or plain (False) methods when the answer changes."""

    __slots__ = ("installers", "instruments", "next_look", "observing")

    def __init__(self) -> None:
        self.instruments: Instruments | None = None
        self.next_look = 0.0
        self.observing = True  # (the observed methods: they look at their first call)
        self.installers: list[Callable[[bool], None]] = []

    def install(self, observing: bool) -> None:
        """Install the observed or the plain methods (when that changes)."""
        if observing != self.observing:
            self.observing = observing
            for installer in self.installers:
                installer(observing)


#: The process's switch.
SWITCH = _Switch()


def current() -> Instruments | None:
    """The instruments of this call, or None when telemetry is off (the per-call test)."""
    found = SWITCH.instruments
    if found is None and monotonic() >= SWITCH.next_look:
        return look()
    return found


def set_providers(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Send Spark's spans and metrics to these providers instead of the global ones.

    A provider left out is the global one. With neither, Spark goes back to following the
    global providers (on once an SDK is configured). See docs/telemetry.md.
    """
    if tracer_provider is None and meter_provider is None:
        SWITCH.instruments = None
        SWITCH.next_look = 0.0
    else:
        from spark.telemetry._instruments import Instruments

        SWITCH.instruments = Instruments(tracer_provider, meter_provider)
    SWITCH.install(True)  # (off: the next call looks)


def look() -> Instruments | None:
    """Look for a configured SDK (at most once a second until one is found) and install the
    methods that fit the answer."""
    SWITCH.next_look = monotonic() + LOOK_EVERY_S
    try:
        found = _configured_sdk()
    except Exception as exc:  # a broken OpenTelemetry install never fails a model call
        logger.warning("OpenTelemetry is there but unusable, Spark emits no telemetry: %s", exc)
        SWITCH.next_look = float("inf")
        found = None
    SWITCH.instruments = found
    SWITCH.install(found is not None)
    return found


def _configured_sdk() -> Instruments | None:
    """Spark's instruments on the global providers, if an SDK set one of them."""
    trace_api = sys.modules.get("opentelemetry.trace")
    metrics_api = sys.modules.get("opentelemetry.metrics")
    if not (
        _is_sdk(trace_api, "get_tracer_provider") or _is_sdk(metrics_api, "get_meter_provider")
    ):
        return None
    from spark.telemetry._instruments import Instruments

    return Instruments(None, None)


def _is_sdk(api: Any, getter: str) -> bool:
    """Whether the API module's global provider is a real one (not its proxy or no-op)."""
    if api is None:
        return False
    provider = getattr(api, getter)()
    return not type(provider).__module__.startswith(_API_MODULES)
