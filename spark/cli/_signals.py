"""A clean stop for a long command: SIGINT and SIGTERM are noted, not obeyed, while it runs, so
the work in hand finishes and the command ends where it can be resumed (``rotate-key``).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopOnSignal"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """While active, SIGINT and SIGTERM are recorded in ``received`` instead of stopping the
    process; the previous handlers come back on exit. Outside the main thread (where Python
    cannot install handlers) it does nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for number in _SIGNALS:
                self._previous[number] = signal.signal(number, self._record)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _record(self, number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = number

    @property
    def name(self) -> str:
        """``SIGINT`` or ``SIGTERM`` (empty while no signal came)."""
        return signal.Signals(self.received).name if self.received is not None else ""
