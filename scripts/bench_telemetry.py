"""What telemetry costs a cache hit, in one process (docs/telemetry.md, "Cost").

    python scripts/bench_telemetry.py           # full run
    python scripts/bench_telemetry.py --quick   # fewer samples

``await model.get_text(...)`` on a repeated hit (OpenAI SDK model against spark.testing's local
server, memory-tier hit: the fastest hit, so the largest ratio), sampled in turn under:

- ``stubbed``: the telemetry hooks stubbed out (the undecorated methods, the notes identity
  functions): the model layer as it was before telemetry; sampled twice, so that the ratio of
  ``stubbed, again`` shows the noise of the run;
- ``no SDK``: nothing configured (the default of every process without an OpenTelemetry SDK);
- ``enabled = false``: an SDK configured, the model built with ``telemetry=False`` (what
  ``[telemetry] enabled = false`` gives);
- ``SDK``: an SDK with an in-memory span exporter and metric reader: one span and one counter
  increment per hit, exported in the call (simple processor) or from a thread (batch).

Prints each p50 in µs and its ratio to ``stubbed``, paired round by round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spark.models.base as base
from spark import telemetry
from spark.cache import CacheConfig
from spark.telemetry import hooks
from spark.testing import ProviderServer

QUESTION = [{"role": "user", "content": "Describe the harbour at dawn."}]


def _same(value: Any, *_: Any) -> Any:
    return value


@contextmanager
def stubbed() -> Iterator[None]:
    """The model layer without its telemetry hooks (the methods as written, identity notes)."""
    saved = [(owner, name, vars(owner)[name]) for owner, name, _, _ in hooks._METHODS]
    notes = {name: getattr(base, name) for name in ("note_cache", "note_result", "note_paid")}
    for owner, name, plain, _observed in hooks._METHODS:
        setattr(owner, name, plain)
    for name in notes:
        setattr(base, name, _same)
    try:
        yield
    finally:
        for owner, name, method in saved:
            setattr(owner, name, method)
        for name, note in notes.items():
            setattr(base, name, note)


class Sdk:
    """An in-memory OpenTelemetry SDK, handed to Spark only while a variant needs it.

    ``batch``: spans go through a ``BatchSpanProcessor`` (exported from a background thread, as
    production setups do) instead of a ``SimpleSpanProcessor`` (exported in the call).
    """

    def __init__(self, batch: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        processor = BatchSpanProcessor if batch else SimpleSpanProcessor
        self.tracer_provider.add_span_processor(processor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    @contextmanager
    def on(self) -> Iterator[None]:
        telemetry.set_providers(self.tracer_provider, self.meter_provider)
        try:
            yield
        finally:
            telemetry.set_providers()
            self.tracer_provider.force_flush()
            self.exporter.clear()  # (an exporter that keeps every span grows without end)


@contextmanager
def nothing() -> Iterator[None]:
    yield


async def sample(model: Any, calls: int) -> list[int]:
    """Nanoseconds of ``calls`` hits."""
    out = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        await model.get_text(QUESTION)
        out.append(time.perf_counter_ns() - start)
    return out


async def bench(rounds: int, calls: int) -> dict[str, list[float]]:
    """Per variant, the p50 (µs) of each round's batch of ``calls`` hits."""
    simple, batch = Sdk(), Sdk(batch=True)
    with tempfile.TemporaryDirectory() as directory, ProviderServer() as server:
        config = CacheConfig(enabled=True, cache_dir=directory)
        observed = server.model("openai", "gpt-4o", cache_config=config)
        unobserved = server.model("openai", "gpt-4o", cache_config=config, telemetry=False)
        await observed.get_text(QUESTION)  # the entry every later call hits
        variants: dict[str, tuple[Any, Callable[[], Any]]] = {
            "stubbed": (observed, stubbed),
            "stubbed, again": (observed, stubbed),  # (an A/A pair: the noise of the ratios)
            "no SDK": (observed, nothing),
            "enabled = false": (unobserved, simple.on),
            "SDK (simple)": (observed, simple.on),
            "SDK (batch)": (observed, batch.on),
        }
        for model, setting in variants.values():  # warm every path once
            with setting():
                await sample(model, calls)
        p50s: dict[str, list[float]] = {name: [] for name in variants}
        gc.collect()
        gc.disable()  # (a collection landing in one variant's batch is noise, not its cost)
        try:
            for _ in range(rounds):
                order = list(variants)
                random.shuffle(order)  # (drift of the machine's load spread over every variant)
                for name in order:
                    model, setting = variants[name]
                    with setting():
                        p50s[name].append(statistics.median(await sample(model, calls)) / 1000)
        finally:
            gc.enable()
        await observed.aclose()
        await unobserved.aclose()
    return p50s


def report(p50s: dict[str, list[float]], calls: int) -> None:
    """Each variant's p50 (the median of its rounds' p50s) and its ratio to ``stubbed``: the
    median of the ratios of the same round (paired, so a load swing between rounds cancels)."""
    stub = p50s["stubbed"]
    print(f"in-process get_text hit, {len(stub)} rounds of {calls} hits per variant")
    print(f"  {'variant':<16} {'p50':>9}   ratio to stubbed (paired)")
    for name, rounds in p50s.items():
        ratio = statistics.median(value / base for value, base in zip(rounds, stub, strict=True))
        print(f"  {name:<16} {statistics.median(rounds):6.2f} µs   x{ratio:.3f}")
    for name in ("SDK (simple)", "SDK (batch)"):
        extra = statistics.median(v - b for v, b in zip(p50s[name], stub, strict=True))
        print(f"  a span + a count per hit, {name}: {extra:+.1f} µs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args(argv)
    rounds, calls = (20, 200) if args.quick else (100, 300)
    report(asyncio.run(bench(rounds, calls)), calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
