"""Spans and the ``spark.cache.requests`` counter of model calls, through the real provider SDKs
against the local provider server, into the OpenTelemetry SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from _otel_sdk import Otel
from opentelemetry.trace import SpanKind, StatusCode

import spark.models
from spark.cache import CacheConfig, generate_key
from spark.errors import ProviderError, StructuredOutputError
from spark.testing import ProviderServer

MODELS = {
    "openai": ("gpt-4o", "openai"),
    "bedrock": ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock"),
    "gemini": ("gemini-2.0-flash", "gcp.gemini"),
}
QUESTION = [{"role": "user", "content": "Describe the harbour at dawn."}]
Models = Callable[..., Any]


@pytest.fixture
async def models(server: ProviderServer, cache_config: CacheConfig) -> AsyncIterator[Models]:
    """``models(provider, **options)``: a model of ``provider`` on the local server, caching
    per ``cache_config`` unless options say otherwise; closed when the test ends."""
    built: list[Any] = []

    def make(provider: str, **options: Any) -> Any:
        options = {"cache_config": cache_config, **options}
        built.append(server.model(provider, MODELS[provider][0], **options))
        return built[-1]

    yield make
    for model in built:
        await model.aclose()


@pytest.mark.parametrize("provider", sorted(MODELS))
async def test_a_miss_then_a_hit_are_two_spans(otel: Otel, models: Models, provider: str) -> None:
    model = models(provider)

    first = await model.generate(QUESTION)
    second = await model.generate(QUESTION)

    assert (first.cached, second.cached) == (False, True)
    model_id, provider_name = MODELS[provider]
    miss, hit = otel.spans()
    for span in (miss, hit):
        assert span.name == f"chat {model_id}"
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes is not None
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.provider.name"] == provider_name
        assert span.attributes["gen_ai.request.model"] == model_id
        assert span.attributes["spark.cache.mode"] == "read_write"
        # The model that answered: the recorded one on the hit; Bedrock names none.
        assert span.attributes.get("gen_ai.response.model") == first.response_model
    assert (first.response_model is None) is (provider == "bedrock")
    assert miss.attributes is not None
    assert hit.attributes is not None
    assert miss.attributes["spark.cache.hit"] is False
    assert miss.attributes["gen_ai.usage.input_tokens"] == first.usage.input_tokens > 0
    assert miss.attributes["gen_ai.usage.output_tokens"] == first.usage.output_tokens > 0
    assert first.cost_usd is not None
    assert miss.attributes["spark.cost.usd"] == pytest.approx(first.cost_usd)
    assert miss.attributes["spark.cost.saved_usd"] == 0.0
    assert hit.attributes["spark.cache.hit"] is True
    assert hit.attributes["spark.cost.usd"] == 0.0  # nothing reached the provider
    assert hit.attributes["spark.cost.saved_usd"] == pytest.approx(first.cost_usd)
    assert hit.attributes["gen_ai.usage.input_tokens"] == 0
    assert hit.attributes["gen_ai.usage.output_tokens"] == 0
    assert otel.results() == {"miss": 1, "hit": 1}
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_name,
        "gen_ai.request.model": model_id,
    }
    assert otel.requests() == {
        tuple(sorted({**common, "spark.cache.result": result}.items())): 1
        for result in ("hit", "miss")
    }


async def test_get_text_hit_path_is_observed_too(otel: Otel, models: Models) -> None:
    model = models("openai")

    await model.get_text(QUESTION)
    await model.get_text(QUESTION)
    await model.get_text(QUESTION)

    assert [a["spark.cache.hit"] for a in otel.attributes()] == [False, True, True]
    assert otel.results() == {"miss": 1, "hit": 2}


async def test_get_json_is_one_span(otel: Otel, models: Models) -> None:
    model = models("openai")
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}},
        "required": ["colour"],
        "additionalProperties": False,
    }

    first = await model.get_json(schema, QUESTION)
    second = await model.get_json(schema, QUESTION)

    assert first == second
    assert [span.name for span in otel.spans()] == ["chat gpt-4o", "chat gpt-4o"]
    assert [a["spark.cache.hit"] for a in otel.attributes()] == [False, True]
    assert otel.results() == {"miss": 1, "hit": 1}


async def test_prompt_cache_tokens_of_the_provider_are_reported(
    otel: Otel, models: Models, server: ProviderServer
) -> None:
    model = models("openai")
    server.queue_usage(cache_read_tokens=1024)

    response = await model.generate(QUESTION)

    (span,) = otel.attributes()
    assert span["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert span["gen_ai.usage.input_tokens"] == response.usage.input_tokens >= 1024


async def test_embeddings_span(
    otel: Otel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = server.model("openai", "text-embedding-3-small", cache_config=cache_config)
    try:
        first = await model.embed(["one", "two"])
        await model.embed(["one", "two"])
    finally:
        await model.aclose()

    miss, hit = otel.spans()
    assert miss.name == hit.name == "embeddings text-embedding-3-small"
    assert miss.attributes is not None
    assert hit.attributes is not None
    assert miss.attributes["gen_ai.operation.name"] == "embeddings"
    assert miss.attributes["gen_ai.usage.input_tokens"] == first.usage.input_tokens > 0
    assert "gen_ai.usage.output_tokens" not in miss.attributes  # embeddings have none
    assert (miss.attributes["spark.cache.hit"], hit.attributes["spark.cache.hit"]) == (False, True)
    assert hit.attributes["spark.cost.saved_usd"] == pytest.approx(
        miss.attributes["spark.cost.usd"]
    )
    assert otel.results() == {"miss": 1, "hit": 1}


@pytest.mark.parametrize("provider", sorted(MODELS))
async def test_a_stream_is_one_span_from_first_to_last_chunk(
    otel: Otel, models: Models, provider: str
) -> None:
    model = models(provider)
    stream = model.stream_text(QUESTION)

    first = await anext(stream)
    assert otel.spans() == []  # still streaming: the span is open
    rest = [chunk async for chunk in stream]
    replayed = [chunk async for chunk in model.stream_text(QUESTION)]

    assert replayed == [first, *rest]
    miss, hit = otel.attributes()
    assert otel.spans()[0].name == f"chat {MODELS[provider][0]}"
    assert (miss["spark.cache.hit"], hit["spark.cache.hit"]) == (False, True)
    assert miss["gen_ai.usage.output_tokens"] > 0
    assert miss["spark.cost.usd"] > 0
    assert hit["spark.cost.saved_usd"] == pytest.approx(miss["spark.cost.usd"])
    assert otel.results() == {"miss": 1, "hit": 1}


async def test_a_stream_abandoned_half_way_ends_its_span_without_error(
    otel: Otel, models: Models
) -> None:
    model = models("openai")
    stream = model.stream_text(QUESTION)

    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]

    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.UNSET
    [attributes] = otel.attributes()
    assert attributes["spark.cache.hit"] is False, "the provider was called: a miss, not a hit"
    assert otel.results() == {"miss": 1}
    assert "gen_ai.usage.output_tokens" not in attributes, "unknown counts are left out, not 0"
    assert "spark.cost.usd" not in attributes
    assert model.cache_manager.get_stats()["misses"] == 1


async def test_a_stream_past_the_cache_reports_its_usage_and_cost(
    otel: Otel, models: Models
) -> None:
    model = models("openai")
    text = "".join([chunk async for chunk in model.stream_text(QUESTION, cache_mode="off")])
    paid = await model.generate(QUESTION, cache_mode="off")
    assert text == paid.text
    streamed, plain = otel.attributes()
    assert otel.results() == {"bypass": 2}
    for name in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "spark.cost.usd"):
        assert streamed[name] == pytest.approx(plain[name]), name
    assert streamed["gen_ai.usage.output_tokens"] > 0


async def test_a_provider_error_is_an_error_span(
    otel: Otel, models: Models, server: ProviderServer
) -> None:
    model = models("openai")
    server.fail_next(status=500)

    with pytest.raises(ProviderError) as caught:
        await model.get_text(QUESTION)

    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == type(caught.value).__qualname__
    assert span.attributes["spark.cache.hit"] is False
    assert "spark.cost.usd" not in span.attributes  # nothing is known to be paid
    assert [event.name for event in span.events] == ["exception"]
    (counted,) = otel.requests()
    assert dict(counted)["spark.cache.result"] == "miss"
    assert dict(counted)["error.type"] == type(caught.value).__qualname__


@pytest.mark.parametrize("encrypt", [False, True])
async def test_an_error_of_a_model_whose_cache_encrypts_keeps_its_text_out_of_the_span(
    otel: Otel,
    models: Models,
    server: ProviderServer,
    cache_config: CacheConfig,
    monkeypatch: pytest.MonkeyPatch,
    encrypt: bool,
) -> None:
    """A get_json answer that is not JSON is quoted by its error; with an encrypted cache the
    span says which error it was, not what it said (nor in the stack trace)."""
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = dataclasses.replace(cache_config, encrypt=encrypt)
    model = models("openai", cache_config=config)
    server.queue_text("SECRET-ANSWER not json")

    with pytest.raises(StructuredOutputError, match="SECRET-ANSWER"):
        await model.get_json({"type": "object"}, QUESTION)

    (span,) = otel.spans()
    (event,) = span.events
    assert span.status.status_code is StatusCode.ERROR
    assert event.attributes is not None
    assert event.attributes["exception.type"].endswith("StructuredOutputError")
    shown = [span.status.description, *event.attributes.values()]
    assert any("SECRET-ANSWER" in str(text) for text in shown) is not encrypt
    if encrypt:
        assert event.attributes["exception.message"] == (
            "StructuredOutputError (message withheld: the model's cache encrypts)"
        )
        assert "Traceback (most recent call last):" in str(event.attributes["exception.stacktrace"])


async def test_a_broken_stream_is_an_error_span(
    otel: Otel, models: Models, server: ProviderServer
) -> None:
    model = models("openai")
    server.fail_stream_after(chunks=2)

    with pytest.raises(ProviderError):
        async for _ in model.stream_text(QUESTION):
            pass

    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert otel.results() == {"miss": 1}


async def test_calls_made_past_the_cache_are_bypasses(otel: Otel, models: Models) -> None:
    cached = models("openai")
    uncached = models("openai", cache_config=CacheConfig(enabled=False))

    await cached.get_text(QUESTION, cache_mode="off")
    response = await uncached.generate(QUESTION)

    assert otel.results() == {"bypass": 2}
    for span in otel.attributes():
        assert span["spark.cache.hit"] is False
        assert span["spark.cache.mode"] == "off"
    assert otel.attributes()[1]["spark.cost.usd"] == pytest.approx(response.cost_usd)


async def test_concurrent_identical_calls_are_one_miss_and_hits(
    otel: Otel, models: Models, server: ProviderServer
) -> None:
    model = models("openai")
    server.latency = 0.2

    await asyncio.gather(*(model.get_text(QUESTION) for _ in range(4)))

    assert server.count("openai") == 1
    assert otel.results() == {"miss": 1, "hit": 3}
    assert sorted(a["spark.cache.hit"] for a in otel.attributes()) == [False, True, True, True]


async def test_a_model_span_is_a_child_of_the_callers_span(otel: Otel, models: Models) -> None:
    model = models("openai")
    tracer = otel.tracer_provider.get_tracer("app")

    with tracer.start_as_current_span("handle request") as parent:
        await model.get_text(QUESTION)

    child = next(span for span in otel.spans() if span.name.startswith("chat "))
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id


async def test_a_model_built_with_telemetry_off_emits_nothing(otel: Otel, models: Models) -> None:
    model = models("openai", telemetry=False)
    observed = models("openai")

    first = await model.generate(QUESTION)
    again = await model.generate(QUESTION)  # (after its first call: its own plain methods)
    assert [chunk async for chunk in model.stream_text(QUESTION)] == [first.text]
    assert (first.cached, again.cached) == (False, True)
    assert otel.spans() == []
    assert otel.requests() == {}

    await observed.get_text(QUESTION)  # another model of the class still is observed
    assert otel.results() == {"hit": 1}


def _spark_toml(tmp_path: Path, server: ProviderServer, telemetry: str) -> Path:
    path = tmp_path / "spark.toml"
    path.write_text(
        f"""
[cache]
enabled = true
dir = "llm-cache"

[models.chat]
provider = "openai"
model_id = "gpt-4o"
base_url = "{server.openai_base_url}"
max_retries = 0

{telemetry}
"""
    )
    return path


@pytest.mark.parametrize(
    ("table", "spans"),
    [
        ("", 2),
        ("[telemetry]\nenabled = true", 2),
        ("[telemetry]\nenabled = false", 0),
        ("[profiles.default.telemetry]\nenabled = false", 0),
    ],
)
async def test_telemetry_table_of_spark_toml(
    otel: Otel,
    server: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    spans: int,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = _spark_toml(tmp_path, server, table)
    model = spark.models.from_profile("chat", config_path=path)
    try:
        await model.get_text(QUESTION)
        await model.get_text(QUESTION)
    finally:
        await model.aclose()

    assert len(otel.spans()) == spans
    assert sum(otel.results().values()) == spans


async def test_a_profile_overlay_turns_telemetry_off(
    otel: Otel, server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = _spark_toml(tmp_path, server, "[profiles.ci.telemetry]\nenabled = false")

    for profile, spans in (("default", 1), ("ci", 1)):  # the ci model adds none
        model = spark.models.from_profile("chat", profile, config_path=path)
        try:
            await model.get_text(QUESTION)
        finally:
            await model.aclose()
        assert len(otel.spans()) == spans


def test_a_typo_in_the_telemetry_table_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "spark.toml").write_text("[telemetry]\nenable = false\n")

    with pytest.raises(spark.errors.ConfigError, match=r"\[telemetry\].*enable"):
        spark.config.load_settings(tmp_path / "spark.toml")


@pytest.mark.parametrize("on", [False, True])
async def test_observed_methods_keep_their_kind_and_signature(
    request: pytest.FixtureRequest, models: Models, on: bool
) -> None:
    if on:
        request.getfixturevalue("otel")
    model = models("openai")

    for name in ("get_text", "generate", "get_json", "embed"):
        assert inspect.iscoroutinefunction(getattr(model, name)), name
    assert inspect.isasyncgenfunction(model.stream_text)
    assert "system_prompt" in inspect.signature(model.get_text).parameters
    assert model.get_text.__doc__
    assert model.get_text.__doc__ == type(model).get_text.__doc__
