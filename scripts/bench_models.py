"""Benchmark the model layer on its real SDKs against spark.testing's local server (issue 3).

    python scripts/bench_models.py           # full run
    python scripts/bench_models.py --quick   # fewer samples

For each provider, with an encrypted cache and 1 KB / 32 KB answers, in one process:
- ``await model.get_text(...)`` on a repeated hit vs the engine's own hit (build the request +
  ``BoundCache.get_or_call``), sampled in turn: the model layer's overhead in µs;
- the same call uncached through the raw SDK against the local server (no added latency): the
  speed-up of a hit.
Then OpenAI's Responses API hit next to its chat-completions hit (``OpenAIModel(api=...)``,
sampled in turn, p50 and p90), a ``get_json`` hit next to a ``get_text`` hit and the schema
check alone, 50 concurrent identical calls on a cold cache with 300 ms of provider latency (requests that
reach the server), the time to key a request (``model.cache_key``) plain and with a 1 MB image in
each provider's native spelling, and ``import spark.models.openai`` + the first hit in a fresh
process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any

import boto3
import botocore.config
import openai
from google import genai
from google.genai import types as genai_types
from pydantic import BaseModel

from spark.cache import CacheConfig, generate_key
from spark.models.base import Model
from spark.models.structured import structured_schema
from spark.testing import ProviderServer

QUESTION = [{"role": "user", "content": "Describe the harbour at dawn."}]
MODELS = {"openai": "gpt-4o", "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
          "gemini": "gemini-2.0-flash"}  # fmt: skip


def build(provider: str, server: ProviderServer, config: CacheConfig) -> Model:
    """A model of ``provider`` pointed at the local server."""
    return server.model(provider, MODELS[provider], cache_config=config)


OPEN_CLIENTS: list[Any] = []  # async clients to close before their event loop ends


def raw_sdk_call(provider: str, server: ProviderServer) -> Callable[[], Awaitable[Any]]:
    """The same request made through the provider's SDK directly (no Spark)."""
    if provider == "openai":
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="b", max_retries=0)
        OPEN_CLIENTS.append(client)
        return lambda: client.chat.completions.create(model=MODELS[provider], messages=QUESTION)  # type: ignore[arg-type]
    if provider == "bedrock":
        bedrock = boto3.client(
            "bedrock-runtime", endpoint_url=server.bedrock_endpoint_url, region_name="us-east-1",
            aws_access_key_id="b", aws_secret_access_key="b",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )  # fmt: skip
        messages = [{"role": "user", "content": [{"text": QUESTION[0]["content"]}]}]

        async def converse() -> Any:
            return bedrock.converse(modelId=MODELS[provider], messages=messages)

        return converse
    gemini = genai.Client(
        api_key="b", http_options=genai_types.HttpOptions(base_url=server.gemini_base_url)
    )
    return lambda: gemini.aio.models.generate_content(
        model=MODELS[provider], contents=QUESTION[0]["content"]
    )


async def sample(fn: Callable[[], Awaitable[Any]]) -> int:
    start = time.perf_counter_ns()
    await fn()
    return time.perf_counter_ns() - start


async def bench_provider(provider: str, server: ProviderServer, repeat: int) -> None:
    """Model hit vs engine hit vs raw SDK call, interleaved, for 1 KB and 32 KB answers."""
    for size in (1024, 32 * 1024):
        server.answer_chars = size
        with tempfile.TemporaryDirectory() as tmp:
            config = CacheConfig(enabled=True, cache_dir=tmp, encrypt=True)
            model = build(provider, server, config)
            await model.get_text(QUESTION)  # the miss that fills the cache
            m, e, r = await measure(provider, model, config, raw_sdk_call(provider, server), repeat)
            while OPEN_CLIENTS:
                await OPEN_CLIENTS.pop().close()
            await model.aclose()
            print(
                f"{provider:<8}{size // 1024:>3} KB  model hit {m:7.1f}µs  engine hit {e:7.1f}µs"
                f"  model layer +{m - e:5.1f}µs  raw SDK {r / 1000:6.2f}ms  hit is {r / m:6.0f}x"
                " faster"
            )


async def measure(
    provider: str,
    model: Model,
    config: CacheConfig,
    raw: Callable[[], Awaitable[Any]],
    repeat: int,
) -> tuple[float, float, float]:
    """Medians (µs) of a model hit, an engine hit and a raw SDK call, sampled in turn."""
    bound = model.cache_manager.bind(config)

    async def never() -> dict[str, Any]:
        raise AssertionError("expected a hit")

    async def engine_hit() -> Any:
        request = bound.chat_request(provider, MODELS[provider], QUESTION)
        return await bound.get_or_call(request, never)

    async def model_hit() -> Any:
        return await model.get_text(QUESTION)

    await raw()
    model_times, engine_times, raw_times = [], [], []
    gc.disable()
    try:
        for index in range(repeat):
            model_times.append(await sample(model_hit))
            engine_times.append(await sample(engine_hit))
            if index % 10 == 0:
                raw_times.append(await sample(raw))
    finally:
        gc.enable()
    m, e, r = (statistics.median(t) / 1000 for t in (model_times, engine_times, raw_times))
    return m, e, r


async def bench_responses_api(server: ProviderServer, repeat: int) -> None:
    """An OpenAI hit through the Responses API next to one through chat completions."""
    for size in (1024, 32 * 1024):
        server.answer_chars = size
        with tempfile.TemporaryDirectory() as tmp:
            config = CacheConfig(enabled=True, cache_dir=tmp, encrypt=True)
            chat = server.model("openai", MODELS["openai"], cache_config=config)
            responses = server.model(
                "openai", MODELS["openai"], cache_config=config, api="responses"
            )
            for model in (chat, responses):
                await model.get_text(QUESTION)  # the miss that fills the cache
            times: dict[Model, list[int]] = {chat: [], responses: []}
            gc.disable()
            try:
                for _ in range(repeat):
                    for model, samples in times.items():
                        samples.append(await sample(functools.partial(model.get_text, QUESTION)))
            finally:
                gc.enable()
            for model in times:
                await model.aclose()
        (c50, c90), (r50, r90) = (_p50_p90(samples) for samples in times.values())
        print(
            f"openai  {size // 1024:>3} KB  chat hit p50 {c50:7.1f}µs (p90 {c90:7.1f})"
            f"  responses hit p50 {r50:7.1f}µs (p90 {r90:7.1f})  ratio {r50 / c50:4.2f}"
        )


class Note(BaseModel):
    """``get_json``'s schema in the benchmark (a 1 KB answer)."""

    title: str
    body: str
    tags: list[str]
    score: int


NOTE_TEXT = json.dumps({"title": "t" * 100, "body": "b" * 760, "tags": ["tag"] * 10, "score": 3})


async def bench_get_json(server: ProviderServer, repeat: int) -> None:
    """A ``get_json`` hit (pydantic model, 1 KB answer) next to a ``get_text`` hit of the same
    answer, sampled in turn; and the schema check alone (what validating a hit adds)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = CacheConfig(enabled=True, cache_dir=tmp, encrypt=True)
        model = server.model("openai", MODELS["openai"], cache_config=config)
        server.queue_text(NOTE_TEXT)
        await model.get_json(Note, QUESTION)
        server.queue_text(NOTE_TEXT)
        await model.get_text(QUESTION)
        check = structured_schema(Note).parse
        as_json, as_text, checks = [], [], []
        gc.disable()
        try:
            for _ in range(repeat):
                as_json.append(await sample(functools.partial(model.get_json, Note, QUESTION)))
                as_text.append(await sample(functools.partial(model.get_text, QUESTION)))
                start = time.perf_counter_ns()
                check(NOTE_TEXT)
                checks.append(time.perf_counter_ns() - start)
        finally:
            gc.enable()
        await model.aclose()
    j50, t50, c50 = (statistics.median(s) / 1000 for s in (as_json, as_text, checks))
    print(
        f"openai  get_json hit p50 {j50:7.1f}µs  get_text hit p50 {t50:7.1f}µs"
        f"  (+{j50 - t50:.1f}µs: the schema in the key and the check)  schema check alone"
        f" {c50:5.1f}µs ({len(NOTE_TEXT)} B answer)"
    )


def _p50_p90(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] / 1000, ordered[int(len(ordered) * 0.9)] / 1000


async def bench_single_flight(server: ProviderServer) -> None:
    """50 concurrent identical calls on a cold cache with 300 ms of provider latency."""
    server.answer_chars = 200
    server.latency = 0.3
    try:
        for provider in MODELS:
            with tempfile.TemporaryDirectory() as tmp:
                model = build(provider, server, CacheConfig(enabled=True, cache_dir=tmp))
                before = server.count(provider)
                start = time.perf_counter()
                answers = await asyncio.gather(*(model.get_text(QUESTION) for _ in range(50)))
                took = time.perf_counter() - start
                print(
                    f"{provider:<8}50 concurrent identical calls: "
                    f"{server.count(provider) - before} request(s) reached the server, "
                    f"{len(set(answers))} distinct answer(s), {took:.2f}s"
                )
    finally:
        server.latency = 0.0


def image_question(provider: str, image: bytes) -> list[dict[str, Any]]:
    """A question with one image, in the provider's native spelling (bytes, or a data URL)."""
    if provider == "openai":
        url = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
        parts: list[Any] = [{"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": url}}]  # fmt: skip
        return [{"role": "user", "content": parts}]
    if provider == "bedrock":
        block = {"image": {"format": "png", "source": {"bytes": image}}}
        return [{"role": "user", "content": [{"text": "What is this?"}, block]}]
    inline = {"inline_data": {"mime_type": "image/png", "data": image}}
    return [{"role": "user", "parts": [{"text": "What is this?"}, inline]}]


def bench_keys(server: ProviderServer, repeat: int) -> None:
    """The time to key a request (``model.cache_key``): a plain question, and one with a 1 MB
    image (the key holds its SHA-256, so this is mostly hashing and encoding the bytes)."""
    image = os.urandom(1024 * 1024)
    with tempfile.TemporaryDirectory() as tmp:
        for provider in MODELS:
            model = build(provider, server, CacheConfig(enabled=True, cache_dir=tmp))
            with_image = image_question(provider, image)
            plain = [_timed(model.cache_key, QUESTION) for _ in range(repeat)]
            heavy = [_timed(model.cache_key, with_image) for _ in range(max(5, repeat // 50))]
            print(
                f"{provider:<8}key of a question {statistics.median(plain) / 1000:7.1f}µs;"
                f" with a 1 MB image {statistics.median(heavy) / 1e6:6.2f}ms"
            )


def _timed(fn: Callable[[Any], Any], argument: Any) -> int:
    start = time.perf_counter_ns()
    fn(argument)
    return time.perf_counter_ns() - start


FRESH = textwrap.dedent(
    """
    import time
    start = time.perf_counter()
    import asyncio, sys
    import spark.models.openai as m
    model = m.OpenAIModel("gpt-4o", base_url="http://127.0.0.1:9", api_key="x",
                          enable_cache=True, cache_dir=sys.argv[1])
    text = asyncio.run(model.get_text([{"role": "user", "content": "Describe the harbour at dawn."}]))
    took = time.perf_counter() - start
    assert "openai" not in sys.modules, "a hit must not import the SDK"
    print(f"{took:.4f}")
    """
)


def bench_fresh_process(server: ProviderServer, runs: int) -> None:
    """``import spark.models.openai`` + the first hit, in fresh processes (plaintext cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        model = build("openai", server, CacheConfig(enabled=True, cache_dir=tmp))
        asyncio.run(model.get_text(QUESTION))
        inner, wall = [], []
        for _ in range(runs):
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", FRESH, tmp], capture_output=True, text=True, check=True
            )
            wall.append(time.perf_counter() - start)
            inner.append(float(out.stdout.strip()))
        print(
            f"fresh process: import spark.models.openai + first hit {statistics.median(inner):.3f}s"
            f" (median of {runs}); whole process incl. interpreter start "
            f"{statistics.median(wall):.3f}s"
        )


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    os.environ["SPARK_CACHE_KEY"] = generate_key()
    repeat = 200 if args.quick else 1000
    with ProviderServer() as server:
        for provider in MODELS:
            asyncio.run(bench_provider(provider, server, repeat))
        asyncio.run(bench_responses_api(server, repeat))
        asyncio.run(bench_get_json(server, repeat))
        asyncio.run(bench_single_flight(server))
        bench_keys(server, repeat)
        bench_fresh_process(server, 3 if args.quick else 9)
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
