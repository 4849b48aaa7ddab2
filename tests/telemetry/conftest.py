"""An OpenTelemetry SDK for one test: in-memory span exporter and metric reader.

The SDK's global providers can be set once per process, so each test hands its own providers
to ``spark.telemetry.set_providers`` and takes them back afterwards; the tests of the global
providers run in subprocesses.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _otel_sdk import Otel
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spark import telemetry


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Spark's telemetry sent to a fresh in-memory SDK for this test."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.set_providers(tracer_provider, meter_provider)
    yield Otel(exporter, reader, tracer_provider)
    telemetry.set_providers()
    tracer_provider.shutdown()
    meter_provider.shutdown()
