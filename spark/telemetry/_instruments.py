"""Spark's tracer and counter, and how one observed call becomes a span and a count.

Imported only once an OpenTelemetry SDK is found (``_switch.py``) or providers are given: this
is the one module that imports ``opentelemetry``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from spark.telemetry._record import COUNTER_NAME, CURRENT_CALL, SCOPE_NAME, CallRecord, error_type

if TYPE_CHECKING:
    from spark.cache import CacheConfig

__all__ = ["Instruments", "ObservedModel"]

logger = logging.getLogger("spark.telemetry")
T = TypeVar("T")
_warned: set[str] = set()


class ObservedModel(Protocol):
    """What telemetry reads of a model (read-only; ``telemetry``: whether it is observed)."""

    @property
    def provider(self) -> str: ...
    @property
    def model_id(self) -> str: ...
    @property
    def telemetry(self) -> bool: ...
    @property
    def cache_config(self) -> CacheConfig: ...


class Instruments:
    """The tracer and the ``spark.cache.requests`` counter of Spark's instrumentation scope."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        version = _version()
        # A provider not given is the global one: the API's proxy until an SDK is set.
        tracers = tracer_provider or trace.get_tracer_provider()
        meters = meter_provider or metrics.get_meter_provider()
        self.tracer = tracers.get_tracer(SCOPE_NAME, version)
        self.counter = meters.get_meter(SCOPE_NAME, version).create_counter(
            COUNTER_NAME,
            unit="{request}",
            description="Model calls by cache result: hit, miss or bypass",
        )

    async def run(
        self,
        model: ObservedModel,
        operation: str,
        call: Callable[[], Awaitable[T]],
    ) -> T:
        """``await call()`` (one model call) inside its span, counted. Called inside another
        observed call (``get_json`` makes its ``structured_call``), it is part of that one."""
        if CURRENT_CALL.get() is not None:
            return await call()
        record = CallRecord(operation, model.provider, model.model_id)
        record.sealed = model.cache_config.encrypt
        span = self.tracer.start_span(
            record.span_name, kind=SpanKind.CLIENT, attributes=record.start_attributes()
        )
        token = CURRENT_CALL.set(record)
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                return await call()
        except BaseException as exc:
            record.error = exc
            raise
        finally:
            CURRENT_CALL.reset(token)
            self._finish(span, record)

    async def stream(
        self, model: ObservedModel, operation: str, chunks: AsyncIterator[T]
    ) -> AsyncIterator[T]:
        """``chunks`` (one streamed model call), inside one span that covers the whole stream.

        The span is made current only while the stream itself runs (between two chunks the
        caller's code runs in its own context, not in the span's). Inside another observed call,
        the stream is part of that one.
        """
        if CURRENT_CALL.get() is not None:
            async for chunk in chunks:
                yield chunk
            return
        record = CallRecord(operation, model.provider, model.model_id)
        record.sealed = model.cache_config.encrypt
        span = self.tracer.start_span(
            record.span_name, kind=SpanKind.CLIENT, attributes=record.start_attributes()
        )
        try:
            while True:
                token = CURRENT_CALL.set(record)
                try:
                    with trace.use_span(
                        span, record_exception=False, set_status_on_exception=False
                    ):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                finally:
                    CURRENT_CALL.reset(token)
                yield chunk
        except GeneratorExit:  # the caller stopped reading: not an error of the call
            raise
        except BaseException as exc:
            record.error = exc
            raise
        finally:
            await _close(chunks)
            self._finish(span, record)

    def _finish(self, span: trace.Span, record: CallRecord) -> None:
        """End the span with what the call did and count it; never fails the call."""
        try:
            _fill_stream_hit(record)
            span.set_attributes(record.end_attributes())
            if record.error is not None:
                span.set_attribute("error.type", error_type(record.error))
                _record_error(span, record.error, record.sealed)
            span.end()
            result = record.result
            if result is not None:
                self.counter.add(1, record.counter_attributes(result))
        except Exception as exc:  # telemetry trouble never fails a model call
            _warn_once(type(exc).__name__, "could not record a model call's telemetry: %s", exc)


def _record_error(span: trace.Span, error: BaseException, sealed: bool) -> None:
    """The span's exception event and status. For a model whose cache encrypts, the error's
    message is withheld (it may quote the request or the answer: a ``get_json`` answer that is
    not JSON, a tool refused whole), and so is the message line of its stack trace."""
    if not sealed:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
        return
    withheld = f"{type(error).__qualname__} (message withheld: the model's cache encrypts)"
    trace_lines = traceback.format_tb(error.__traceback__)
    stack = "Traceback (most recent call last):\n" + "".join(trace_lines) + withheld + "\n"
    span.record_exception(
        error, attributes={"exception.message": withheld, "exception.stacktrace": stack}
    )
    span.set_status(Status(StatusCode.ERROR, withheld))


def _fill_stream_hit(record: CallRecord) -> None:
    """A stream served from the cache hands out chunks only: read what the hit saved."""
    hit = record.result == "hit" and record.stored is None
    if hit and record.cache is not None and record.request is not None:
        record.stored = record.cache.lookup(record.request)


async def _close(chunks: AsyncIterator[Any]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


def _version() -> str | None:
    try:
        return metadata.version("spark-llm-cache")
    except metadata.PackageNotFoundError:
        return None


def _warn_once(kind: str, message: str, *args: Any) -> None:
    if kind not in _warned:
        _warned.add(kind)
        logger.warning(message, *args)
