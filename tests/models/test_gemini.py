"""``GeminiModel`` with the real google-genai SDK against the local provider server: text,
streams, tools, embeddings, errors, the SDK's environment variables and the lazy import."""

from __future__ import annotations

import asyncio
import logging
import math
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from spark.cache import CacheConfig
from spark.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
)
from spark.models.gemini import GeminiModel
from spark.testing import ProviderServer
from spark.types import Price

MODEL = "gemini-2.0-flash"
EMBED_MODEL = "gemini-embedding-001"
PRICE = Price(input_per_million=1.25, output_per_million=10.0)


@pytest.fixture
def make_model(
    server: ProviderServer, cache_config: CacheConfig, credentials: dict[str, str]
) -> Any:
    """Build a model pointed at the server with the test credentials and no retries."""

    def make(model_id: str = MODEL, **options: Any) -> GeminiModel:
        options.setdefault("api_key", credentials["google_api_key"])
        options.setdefault("base_url", server.gemini_base_url)
        options.setdefault("max_retries", 0)
        options.setdefault("cache_config", cache_config)
        return GeminiModel(model_id, **options)

    return make


# -- text ---------------------------------------------------------------------------------


async def test_get_text_miss_then_hit(make_model: Any, server: ProviderServer) -> None:
    model = make_model()

    first = await model.get_text("Hello there")
    second = await model.get_text("Hello there")

    assert first == second
    assert first.startswith("Answer ")
    assert server.count("gemini", "generate") == 1


async def test_generate_reports_usage_cost_and_cached(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model(pricing=PRICE)

    miss = await model.generate("Hello there")
    hit = await model.generate("Hello there")

    # The server bills one token per 4 characters of prompt and answer.
    assert miss.usage.input_tokens == math.ceil(len("Hello there") / 4)
    assert miss.usage.output_tokens == math.ceil(len(miss.text) / 4)
    expected = (miss.usage.input_tokens * 1.25 + miss.usage.output_tokens * 10.0) / 1_000_000
    assert miss.cost_usd == pytest.approx(expected)
    assert miss.finish_reason == "stop"
    assert (miss.cached, hit.cached) == (False, True)
    assert (hit.text, hit.usage, hit.cost_usd) == (miss.text, miss.usage, miss.cost_usd)
    assert (hit.provider, hit.model_id) == ("gemini", MODEL)
    assert model.cache_manager.get_stats()["saved_cost_usd"] == pytest.approx(expected)
    assert server.count() == 1


async def test_unpriced_model_costs_none_with_one_warning(
    make_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model(f"gemini-unpriced-{uuid.uuid4().hex[:8]}")

    with caplog.at_level(logging.WARNING, logger="spark"):
        first = await model.generate("one")
        second = await model.generate("two")

    assert (first.cost_usd, second.cost_usd) == (None, None)
    warnings = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warnings) == 1


async def test_max_tokens_finish_is_length_and_params_reach_the_server(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()

    await model.get_text(
        "Hi", system_prompt="Be brief.", temperature=0.3, max_tokens=20, top_k=4, stop="END"
    )

    body = server.requests[-1].body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 20,
        "topK": 4,
        "stopSequences": ["END"],
    }
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


async def test_cache_key_matches_manager_and_entry_exists(make_model: Any) -> None:
    model = make_model()
    messages = [{"role": "user", "content": "What is a cache?"}]
    kwargs: dict[str, Any] = {"temperature": 0.5, "max_tokens": 64, "system_prompt": "Be short."}

    key = model.cache_manager.generate_cache_key("gemini", MODEL, messages, **kwargs)
    assert key == model.cache_key(messages, **kwargs)
    assert not model.cache_manager.has_entry(key)

    await model.get_text(messages, **kwargs)

    assert model.cache_manager.has_entry(key)
    assert model.cache_key(messages, **{**kwargs, "temperature": 0.6}) != key


async def test_equivalent_message_spellings_share_one_entry(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()
    answers = {
        await model.get_text("Hi", system_prompt="Be kind."),
        await model.get_text([{"role": "user", "content": "Hi"}], system_prompt="Be kind."),
        await model.get_text(
            [{"role": "user", "content": [{"text": "Hi"}]}], system_prompt="Be kind."
        ),
        await model.get_text(
            [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            ]
        ),
    }

    assert len(answers) == 1
    assert server.count() == 1


async def test_cache_disabled_every_call_reaches_the_server(
    make_model: Any, server: ProviderServer, tmp_path: Path
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text("Hello")
    await model.get_text("Hello")
    chunks = [chunk async for chunk in model.stream_text("Hello")]
    await model.embed("Hello")

    assert chunks
    assert server.count() == 4
    assert not any((tmp_path / "llm-cache").rglob("*.json"))


# -- streaming ----------------------------------------------------------------------------


async def test_stream_is_stored_and_replayed_chunk_by_chunk(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()

    first = [chunk async for chunk in model.stream_text("Tell me a story")]
    second = [chunk async for chunk in model.stream_text("Tell me a story")]
    plain = await model.get_text("Tell me a story")

    assert len(first) >= 3
    assert second == first
    assert plain == "".join(first)
    assert server.count("gemini", "generate_stream") == 1
    assert server.count() == 1


async def test_plain_call_then_stream_share_one_entry(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()

    text = await model.get_text("Shared entry")
    chunks = [chunk async for chunk in model.stream_text("Shared entry")]

    assert "".join(chunks) == text
    assert server.count() == 1


async def _collect(stream: AsyncIterator[str], into: list[str]) -> None:
    async for chunk in stream:
        into.append(chunk)


@pytest.mark.parametrize(("chunks", "disconnect"), [(2, False), (2, True), (0, False), (0, True)])
async def test_broken_stream_raises_and_stores_nothing(
    make_model: Any, server: ProviderServer, chunks: int, disconnect: bool
) -> None:
    model = make_model()
    server.fail_stream_after(chunks, disconnect=disconnect)
    received: list[str] = []

    with pytest.raises(ProviderServerError) as caught:
        await _collect(model.stream_text("Break me"), received)

    assert len(received) == chunks
    assert caught.value.provider == "gemini"
    assert chunks == 0 or "the stream broke off" in str(caught.value)
    assert not model.cache_manager.has_entry(model.cache_key("Break me"))
    again = [chunk async for chunk in model.stream_text("Break me")]
    assert server.count() == 2
    assert again[:chunks] == received


# -- tools --------------------------------------------------------------------------------

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
NEUTRAL_TOOL = {
    "name": "get_weather",
    "description": "Current weather",
    "parameters": WEATHER_SCHEMA,
}
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": WEATHER_SCHEMA,
    },
}
BEDROCK_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather",
        "inputSchema": {"json": WEATHER_SCHEMA},
    }
}


async def test_tool_spellings_share_a_key_and_reach_gemini_as_declarations(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()
    keys = {
        model.cache_key("Weather?", tools=[t]) for t in (NEUTRAL_TOOL, OPENAI_TOOL, BEDROCK_TOOL)
    }

    answers = {
        await model.get_text("Weather?", tools=[tool])
        for tool in (NEUTRAL_TOOL, OPENAI_TOOL, BEDROCK_TOOL)
    }

    assert len(keys) == 1
    assert len(answers) == 1
    assert server.count() == 1
    declaration = server.requests[-1].body["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    assert declaration["description"] == "Current weather"
    # The google-genai SDK sends this field in snake_case; the API accepts both spellings.
    assert declaration["parameters_json_schema"] == WEATHER_SCHEMA


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ({"name": "get_weather"}, {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
async def test_tool_choice_reaches_gemini(
    make_model: Any, server: ProviderServer, choice: Any, config: dict[str, Any]
) -> None:
    model = make_model()

    await model.get_text("Weather?", tools=[NEUTRAL_TOOL], tool_choice=choice)

    assert server.requests[-1].body["toolConfig"] == {"functionCallingConfig": config}


async def _weather_loop(model: GeminiModel) -> tuple[Any, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    asked = await model.generate(messages, tools=[NEUTRAL_TOOL])
    call = asked.tool_calls[0]
    messages += [
        {"role": "assistant", "content": "", "tool_calls": [call.to_dict()]},
        {"role": "tool", "tool_call_id": call.id, "content": "22 C"},
    ]
    answered = await model.generate(messages, tools=[NEUTRAL_TOOL])
    return asked, answered


async def test_tool_call_round_trip_and_replay(make_model: Any, server: ProviderServer) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Paris"}, provider="gemini")

    asked, answered = await _weather_loop(model)

    assert asked.finish_reason == "tool_calls"
    assert asked.text == ""
    (call,) = asked.tool_calls
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id == "call_0_get_weather"  # Gemini sent no id: a stable one is made up
    assert "22 C" in answered.text
    assert answered.finish_reason == "stop"
    contents = server.requests[-1].body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0]["functionCall"] == {
        "name": "get_weather",
        "args": {"city": "Paris"},
    }
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"result": "22 C"}}}
    ]
    assert server.count() == 2

    server.reset()
    replayed = await _weather_loop(model)

    assert server.count() == 0
    assert replayed[0].tool_calls == asked.tool_calls
    assert replayed[1].text == answered.text
    assert all(response.cached for response in replayed)


async def test_streamed_tool_call_is_assembled(make_model: Any, server: ProviderServer) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Oslo"}, provider="gemini")

    chunks = [c async for c in model.stream_text("Weather in Oslo?", tools=[NEUTRAL_TOOL])]
    replay = await model.generate("Weather in Oslo?", tools=[NEUTRAL_TOOL])

    assert chunks == []
    assert server.count() == 1
    assert replay.cached
    assert replay.finish_reason == "tool_calls"
    assert [(c.name, dict(c.arguments)) for c in replay.tool_calls] == [
        ("get_weather", {"city": "Oslo"})
    ]


# -- embeddings ---------------------------------------------------------------------------


async def test_embeddings_miss_then_hit_and_dimensions_change_the_key(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model(EMBED_MODEL)
    texts = ["alpha", "beta", "gamma"]

    first = await model.embed(texts, dimensions=16)
    second = await model.embed(texts, dimensions=16)

    assert (first.cached, second.cached) == (False, True)
    assert second.embeddings == first.embeddings
    assert len(first.embeddings) == 3
    assert {len(vector) for vector in first.embeddings} == {16}
    assert server.count("gemini", "embed") == 1
    assert model.embedding_cache_key(texts, dimensions=16) != model.embedding_cache_key(
        texts, dimensions=32
    )

    other = await model.embed(texts, dimensions=32)

    assert {len(vector) for vector in other.embeddings} == {32}
    assert server.count("gemini", "embed") == 2


async def test_embedding_batch_gives_one_vector_per_text_on_multimodal_models(
    make_model: Any,
) -> None:
    # The SDK turns a bare list of strings into ONE content for models it deems multimodal.
    model = make_model("gemini-embedding-2", pricing=Price(0.2, 0.0))

    response = await model.embed(["one", "two"])

    assert len(response.embeddings) == 2
    assert response.embeddings[0] != response.embeddings[1]


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RateLimitError),
        (500, ProviderServerError),
        (503, ProviderServerError),
        (400, BadRequestError),
        (404, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
    ],
)
async def test_http_errors_are_translated_and_not_cached(
    make_model: Any, server: ProviderServer, status: int, error: type[ProviderError]
) -> None:
    model = make_model()
    server.fail_next(status=status)

    with pytest.raises(error) as caught:
        await model.get_text("Fail once")

    assert type(caught.value) is error
    assert caught.value.status == status
    assert caught.value.provider == "gemini"
    assert isinstance(caught.value.__cause__, genai_errors.APIError)
    assert MODEL in str(caught.value)
    assert "injected by spark.testing" in str(caught.value)
    assert not model.cache_manager.has_entry(model.cache_key("Fail once"))

    assert (await model.get_text("Fail once")).startswith("Answer ")
    assert server.count() == 2


async def test_stream_and_embedding_errors_are_translated(
    make_model: Any, server: ProviderServer
) -> None:
    server.fail_next(status=429)
    with pytest.raises(RateLimitError):
        _ = [chunk async for chunk in make_model().stream_text("Hi")]

    server.fail_next(status=500)
    with pytest.raises(ProviderServerError) as caught:
        await make_model(EMBED_MODEL).embed("Hi")
    assert caught.value.status == 500


async def test_unreachable_server_is_a_connection_error(make_model: Any) -> None:
    model = make_model(base_url="http://127.0.0.1:9")  # the discard port: nothing listens

    with pytest.raises(ProviderConnectionError) as caught:
        await model.get_text("Anyone there?")

    assert caught.value.__cause__ is not None


async def test_timeout_is_a_connection_error(make_model: Any, server: ProviderServer) -> None:
    server.latency = 0.5
    model = make_model(timeout=0.1)

    with pytest.raises(ProviderConnectionError):
        await model.get_text("Too slow")


async def test_unknown_parameter_is_a_config_error(make_model: Any, server: ProviderServer) -> None:
    with pytest.raises(ConfigError) as caught:
        await make_model().get_text("Hi", not_a_gemini_setting=1)

    assert "not_a_gemini_setting" in str(caught.value)
    assert server.count() == 0


async def test_a_value_the_sdk_refuses_is_a_bad_request(
    make_model: Any, server: ProviderServer
) -> None:
    with pytest.raises(BadRequestError):
        await make_model().get_text("Hi", thinking_config={"not_a_field": 1})

    assert server.count() == 0


# -- concurrency --------------------------------------------------------------------------


async def test_concurrent_identical_misses_make_one_request(
    make_model: Any, server: ProviderServer
) -> None:
    server.latency = 0.3
    model = make_model()

    answers = await asyncio.gather(*(model.get_text("Same question") for _ in range(25)))

    assert len(set(answers)) == 1
    assert server.count() == 1


# -- SDK configuration --------------------------------------------------------------------


async def test_sdk_environment_variables_reach_the_server(
    server: ProviderServer, cache_config: CacheConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    model = GeminiModel(MODEL, cache_config=cache_config, max_retries=0)

    text = await model.get_text("Via the environment")

    assert text.startswith("Answer ")
    assert server.count("gemini") == 1


async def test_injected_client_is_used_as_given(
    server: ProviderServer, cache_config: CacheConfig
) -> None:
    client = genai.Client(
        api_key="injected",
        http_options=types.HttpOptions(
            base_url=server.gemini_base_url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    model = GeminiModel(MODEL, client=client, cache_config=cache_config)

    await model.get_text("Through the injected client")

    assert server.count("gemini") == 1
    assert model._sdk_client() is client


async def test_missing_api_key_is_an_authentication_error(cache_config: CacheConfig) -> None:
    model = GeminiModel(MODEL, cache_config=cache_config)

    with pytest.raises(AuthenticationError, match="GOOGLE_API_KEY"):
        await model.get_text("No key anywhere")


@pytest.mark.parametrize(("max_retries", "attempts"), [(None, None), (0, 1), (3, 4)])
async def test_max_retries_sets_sdk_attempts(
    make_model: Any, max_retries: int | None, attempts: int | None
) -> None:
    model = make_model(max_retries=max_retries)

    await model.get_text("Build the client")

    # The SDK keeps no public view of its options; its default (None) means "never retry".
    retry = model._sdk_client()._api_client._http_options.retry_options
    assert (retry.attempts if retry else None) == attempts


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        GeminiModel(MODEL, max_retries=-1)


def test_unknown_constructor_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        GeminiModel(MODEL, region="us-central1")  # type: ignore[call-arg]


def test_model_reused_across_event_loops(make_model: Any, server: ProviderServer) -> None:
    model = make_model(enable_cache=False)

    first = asyncio.run(model.get_text("Loop one"))
    second = asyncio.run(model.get_text("Loop two"))

    assert first != second
    assert server.count() == 2


# -- secrets and encryption ---------------------------------------------------------------


async def _every_kind_of_call(model: GeminiModel, embedder: GeminiModel, server: Any) -> None:
    await model.get_text("Plain secret-scan prompt")
    _ = [chunk async for chunk in model.stream_text("Streamed secret-scan prompt")]
    server.queue_tool_call("get_weather", {"city": "Lima"}, provider="gemini")
    await _weather_loop(model)
    await embedder.embed(["Embedded secret-scan text"])


@pytest.mark.parametrize("encrypt", [False, True])
async def test_no_credentials_in_cache_files(
    server: ProviderServer,
    credentials: dict[str, str],
    cache_files_text: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    encrypt: bool,
) -> None:
    if encrypt:
        from spark.cache import generate_key

        monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "secrets", encrypt=encrypt)
    options = {
        "api_key": credentials["google_api_key"],
        "base_url": server.gemini_base_url,
        "max_retries": 0,
        "cache_config": config,
    }
    model = GeminiModel(MODEL, **options)
    embedder = GeminiModel(EMBED_MODEL, **options)

    await _every_kind_of_call(model, embedder, server)
    stored = cache_files_text(tmp_path / "secrets")

    assert len(list((tmp_path / "secrets").rglob("*.json"))) == 5
    for secret in credentials.values():
        assert secret not in stored
    if encrypt:
        answer = await model.get_text("Plain secret-scan prompt")
        for text in ("secret-scan", "Paris", "Lima", "22 C", answer[:40]):
            assert text not in stored
    else:
        assert "secret-scan" in stored  # the scan reads what was written


# -- laziness -----------------------------------------------------------------------------

_HIT_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    import spark.models.gemini
    from spark.cache import CacheConfig
    assert "google.genai" not in sys.modules, "import loaded the SDK"
    model = spark.models.gemini.GeminiModel(
        sys.argv[2],
        api_key="unused",
        base_url=sys.argv[3],  # a miss would reach the test server, never the internet
        cache_config=CacheConfig(enabled=True, cache_dir=sys.argv[1]),
    )
    response = asyncio.run(model.generate("Prefilled"))
    assert response.cached, "expected a cache hit"
    assert "google.genai" not in sys.modules, "a cache hit loaded the SDK"
    print(response.text)
    """
)


async def test_cache_hit_never_imports_the_sdk(
    make_model: Any, server: ProviderServer, cache_config: CacheConfig
) -> None:
    text = await make_model().get_text("Prefilled")

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _HIT_IN_A_FRESH_PROCESS,
            str(cache_config.cache_dir),
            MODEL,
            server.gemini_base_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == text
    assert server.count() == 1
