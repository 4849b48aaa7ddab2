"""Telemetry as a whole process sees it: the global SDK providers (settable once per process),
``opentelemetry`` blocked, and ``import spark`` not importing it. Each case is a subprocess
making real OpenAI SDK calls against the parent's local provider server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from spark.testing import ProviderServer

# The child's model: the real OpenAI SDK against the parent's server, caching under tmp_path.
MODEL = """
import asyncio, json, sys
from spark.cache import CacheConfig
from spark.models import model_class

QUESTION = [{"role": "user", "content": "Describe the harbour at dawn."}]

def build():
    return model_class("openai")(
        "gpt-4o", base_url=BASE_URL, api_key="sk-test", max_retries=0,
        cache_config=CacheConfig(enabled=True, cache_dir=CACHE_DIR),
    )
"""
# Before anything is imported: ``import opentelemetry`` (and every submodule) raises ImportError.
BLOCK_OPENTELEMETRY = "import sys\nsys.modules['opentelemetry'] = None\n"


def run_child(server: ProviderServer, tmp_path: Path, body: str, prelude: str = "") -> Any:
    """Run ``prelude``, MODEL and ``body`` in a fresh interpreter; its last stdout line, as
    JSON."""
    script = (
        prelude
        + f"BASE_URL = {server.openai_base_url!r}\nCACHE_DIR = {str(tmp_path / 'cache')!r}\n"
        + textwrap.dedent(MODEL)
        + textwrap.dedent(body)
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_spark_and_a_hit_do_not_import_opentelemetry(
    server: ProviderServer, tmp_path: Path
) -> None:
    found = run_child(
        server,
        tmp_path,
        """
        async def main():
            model = build()
            texts = [await model.get_text(QUESTION) for _ in range(2)]
            await model.aclose()
            return texts
        texts = asyncio.run(main())
        print(json.dumps({
            "same": texts[0] == texts[1],
            "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
        }))
        """,
    )

    assert found == {"same": True, "otel": []}
    assert server.count("openai") == 1


def test_cached_calls_work_with_opentelemetry_blocked(
    server: ProviderServer, tmp_path: Path
) -> None:
    found = run_child(
        server,
        tmp_path,
        """
        async def main():
            model = build()
            first = await model.generate(QUESTION)
            second = await model.generate(QUESTION)
            chunks = [chunk async for chunk in model.stream_text(QUESTION)]
            vectors = await model.embed("harbour")
            await model.aclose()
            return [first.cached, second.cached, "".join(chunks) == first.text, len(vectors.embeddings)]
        print(json.dumps(asyncio.run(main())))
        """,
        prelude=BLOCK_OPENTELEMETRY,
    )

    assert found == [False, True, True, 1]


def test_blocked_opentelemetry_cannot_be_imported_in_the_child(
    server: ProviderServer, tmp_path: Path
) -> None:
    # (the block the test above relies on really blocks, and spark was imported under it)
    found = run_child(
        server,
        tmp_path,
        """
        try:
            import opentelemetry.trace
            print(json.dumps("imported"))
        except ImportError:
            print(json.dumps("blocked"))
        """,
        prelude=BLOCK_OPENTELEMETRY,
    )

    assert found == "blocked"


def test_the_global_sdk_is_found_also_when_configured_after_the_first_call(
    server: ProviderServer, tmp_path: Path
) -> None:
    found = run_child(
        server,
        tmp_path,
        """
        import time
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from spark.telemetry._switch import LOOK_EVERY_S

        async def main():
            model = build()
            await model.get_text(QUESTION)  # the API is imported, no SDK yet: nothing emitted
            exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            time.sleep(LOOK_EVERY_S)  # Spark looks for an SDK at most once a period
            await model.get_text(QUESTION)  # the call that notices the SDK: not itself observed
            await model.get_text(QUESTION)
            await model.get_text([{"role": "user", "content": "Another question."}])
            await model.aclose()
            points = [
                (dict(p.attributes)["spark.cache.result"], p.value)
                for rm in reader.get_metrics_data().resource_metrics
                for sm in rm.scope_metrics for m in sm.metrics for p in m.data.data_points
            ]
            spans = [(s.name, s.attributes["spark.cache.hit"]) for s in exporter.get_finished_spans()]
            return {"spans": spans, "points": sorted(points)}
        print(json.dumps(asyncio.run(main())))
        """,
    )

    assert found == {
        "spans": [["chat gpt-4o", True], ["chat gpt-4o", False]],
        "points": [["hit", 1], ["miss", 1]],
    }
