"""The in-memory OpenTelemetry SDK a telemetry test reads: finished spans and counter points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spark import telemetry


@dataclass
class Otel:
    """What the test's SDK received."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def spans(self) -> list[ReadableSpan]:
        """The finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def attributes(self) -> list[dict[str, Any]]:
        """The attributes of each finished span."""
        return [dict(span.attributes or {}) for span in self.spans()]

    def requests(self) -> dict[tuple[tuple[str, Any], ...], int]:
        """``spark.cache.requests`` by its data points' sorted attributes."""
        counts: dict[tuple[tuple[str, Any], ...], int] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != telemetry.COUNTER_NAME:
                        continue
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        counts[tuple(sorted(point.attributes.items()))] = point.value  # type: ignore[union-attr]
        return counts

    def results(self) -> dict[str, int]:
        """``spark.cache.requests`` summed by ``spark.cache.result``."""
        totals: dict[str, int] = {}
        for attributes, value in self.requests().items():
            result = dict(attributes)["spark.cache.result"]
            totals[result] = totals.get(result, 0) + value
        return totals
