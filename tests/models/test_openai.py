"""OpenAIModel against the local provider server with the real SDK: text calls, keys, pricing,
errors, concurrency, configuration from options, environment and an injected client."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

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
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer
from spark.types import Price

MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Hello there"}]
PRICE = Price(input_per_million=1.5, output_per_million=6.0)

MakeModel = Callable[..., OpenAIModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """OpenAIModels on the local server (``tests/models/conftest.py``: ``models``)."""
    return lambda model_id=MODEL, **options: models("openai", model_id, **options)


def chats(server: ProviderServer) -> int:
    return server.count(provider="openai", operation="chat")


# -- text, usage, cost ----------------------------------------------------------------------


async def test_miss_then_hit_returns_the_same_text_without_a_request(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    first = await model.get_text(HELLO)
    second = await model.get_text(HELLO)

    assert first.startswith("Answer ")
    assert second == first
    assert chats(server) == 1


async def test_generate_reports_usage_cost_and_cached(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(pricing=PRICE)

    miss = await model.generate(HELLO)
    hit = await model.generate(HELLO)

    # The server bills ceil(chars / 4) tokens: "Hello there" in, 200 answer characters out.
    assert (miss.usage.input_tokens, miss.usage.output_tokens) == (3, 50)
    assert miss.cost_usd == pytest.approx((3 * 1.5 + 50 * 6.0) / 1_000_000)
    assert miss.finish_reason == "stop"
    assert (miss.cached, hit.cached) == (False, True)
    assert (hit.text, hit.usage, hit.cost_usd) == (miss.text, miss.usage, miss.cost_usd)
    assert (hit.provider, hit.model_id) == ("openai", MODEL)
    stats = model.cache_manager.get_stats()
    assert stats["saved_cost_usd"] == pytest.approx(miss.cost_usd)
    assert chats(server) == 1


async def test_unpriced_model_costs_none_with_one_warning(
    make_model: MakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model(f"my-finetune-{uuid.uuid4().hex[:8]}")

    with caplog.at_level(logging.WARNING, logger="spark"):
        first = await model.generate("one")
        second = await model.generate("two")

    assert first.cost_usd is None
    assert second.cost_usd is None
    warnings = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(warnings) == 1
    assert model.model_id in warnings[0].getMessage()


async def test_sampling_params_reach_the_wire_in_openai_names(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    await model.get_text(
        HELLO,
        temperature=0.2,
        max_tokens=64,
        stop="END",
        seed=7,
        reasoning_effort="low",
        extra_body={"top_k": 5},
    )

    body = server.requests[-1].body
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body
    assert body["temperature"] == 0.2
    assert body["stop"] == ["END"]
    assert body["seed"] == 7
    assert body["reasoning_effort"] == "low"
    assert body["top_k"] == 5  # unknown to the SDK: merged into the body by extra_body
    assert "extra_body" not in body
    assert "stream" not in body


async def test_non_text_parts_pass_through_in_openai_format(
    make_model: MakeModel, server: ProviderServer
) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]

    await make_model().get_text(messages)

    assert server.requests[-1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}
    ]


# -- keys -----------------------------------------------------------------------------------


async def test_manager_key_equals_model_key_and_is_stored(make_model: MakeModel) -> None:
    model = make_model()
    kwargs: dict[str, Any] = {"temperature": 0.3, "max_tokens": 64, "system_prompt": "Be brief."}

    key = model.cache_manager.generate_cache_key("openai", MODEL, HELLO, **kwargs)
    assert key == model.cache_key(HELLO, **kwargs)
    assert not model.cache_manager.has_entry(key)

    await model.get_text(HELLO, **kwargs)

    assert model.cache_manager.has_entry(key)
    assert key != model.cache_key(HELLO, **{**kwargs, "temperature": 0.4})


async def test_equivalent_spellings_share_one_entry(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    spellings: list[tuple[list[dict[str, Any]], str | None]] = [
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], None),
        ([{"role": "user", "content": "Hi"}], "Be brief."),
        ([{"role": "user", "content": [{"text": "Hi"}]}], "Be brief."),
        ([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "Be brief."),
        (
            [
                {"role": "system", "content": [{"text": "Be brief."}]},
                {"role": "user", "content": "Hi"},
            ],
            None,
        ),
    ]

    answers = {
        await model.get_text(messages, system_prompt=system) for messages, system in spellings
    }

    assert len(answers) == 1
    assert chats(server) == 1
    assert server.requests[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


# -- errors ---------------------------------------------------------------------------------


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
async def test_http_errors_map_to_spark_errors_and_are_not_cached(
    make_model: MakeModel, server: ProviderServer, status: int, error: type[ProviderError]
) -> None:
    model = make_model()
    server.fail_next(status=status)

    with pytest.raises(error) as caught:
        await model.get_text(HELLO)

    assert type(caught.value) is error
    assert caught.value.status == status
    assert caught.value.provider == "openai"
    assert isinstance(caught.value.__cause__, openai.APIStatusError)
    assert caught.value.__cause__.status_code == status
    assert MODEL in str(caught.value)
    assert "injected by spark.testing" in str(caught.value)  # the provider's own message
    assert await model.get_text(HELLO)
    assert await model.get_text(HELLO)
    assert chats(server) == 2  # the failure, the retry; the third call is a hit


async def test_unreachable_server_is_a_connection_error(make_model: MakeModel) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = make_model(base_url=f"http://127.0.0.1:{port}/v1", timeout=2.0)

    with pytest.raises(ProviderConnectionError) as caught:
        await model.get_text(HELLO)

    assert isinstance(caught.value.__cause__, openai.APIConnectionError)
    assert caught.value.status is None


async def test_missing_api_key_is_an_authentication_error(
    server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = OpenAIModel(MODEL, base_url=server.openai_base_url, cache_config=cache_config)

    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        await model.get_text(HELLO)
    assert chats(server) == 0


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_identical_misses_make_one_request(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.latency = 0.3

    answers = await asyncio.gather(*(model.get_text(HELLO) for _ in range(25)))

    assert len(set(answers)) == 1
    assert chats(server) == 1


def test_one_model_works_under_successive_event_loops(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    first_loop = asyncio.new_event_loop()
    first = first_loop.run_until_complete(model.get_text(HELLO))
    first_client = model._clients[first_loop]  # white box: the client built for that loop
    first_loop.close()  # closes the loop the SDK's pooled sockets belong to

    second = asyncio.run(model.get_text(HELLO))

    assert first == second
    assert chats(server) == 2
    # Closed when a new client was built, so the SDK never schedules a doomed close on a later
    # loop (which asyncio would log as "Task exception was never retrieved").
    assert first_client.is_closed()
    assert first_loop not in model._clients


def test_threads_with_their_own_loops_share_one_model(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    server.latency = 0.2

    def ask(question: str) -> str:
        return asyncio.run(model.get_text(question))

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(ask, ["one", "two", "three"]))

    assert len(set(answers)) == 3
    assert chats(server) == 3


# -- configuration --------------------------------------------------------------------------


async def test_sdk_environment_variables_point_the_model_at_the_server(
    server: ProviderServer, cache_config: CacheConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    model = OpenAIModel(MODEL, max_retries=0, cache_config=cache_config)

    assert await model.get_text(HELLO)
    assert chats(server) == 1
    await model.aclose()


async def test_injected_client_is_used_as_given(
    server: ProviderServer, cache_config: CacheConfig, credentials: dict[str, str]
) -> None:
    client = openai.AsyncOpenAI(
        base_url=server.openai_base_url, api_key=credentials["openai_api_key"], max_retries=0
    )
    model = OpenAIModel(MODEL, client=client, cache_config=cache_config)

    assert await model.get_text(HELLO)
    assert chats(server) == 1
    await client.close()


def test_a_synchronous_client_is_refused() -> None:
    with pytest.raises(ConfigError, match="AsyncOpenAI"):
        OpenAIModel(MODEL, client=openai.OpenAI(api_key="sk-x"))  # type: ignore[arg-type]


def test_unknown_options_are_a_type_error() -> None:
    with pytest.raises(TypeError):
        OpenAIModel(MODEL, region="us-east-1")  # type: ignore[call-arg]


async def test_cache_disabled_every_call_reaches_the_server(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)

    first = await model.generate(HELLO)
    second = await model.generate(HELLO)
    chunks = [chunk async for chunk in model.stream_text(HELLO)]

    assert first.text == second.text == "".join(chunks)
    assert (first.cached, second.cached) == (False, False)
    assert chats(server) == 2
    assert server.count(provider="openai", operation="chat_stream") == 1
    assert not list(Path(model.cache_config.resolved_dir).rglob("*.json"))


async def test_a_hit_in_a_fresh_process_never_imports_the_sdk(
    make_model: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    expected = await make_model().get_text(HELLO)
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import spark.models.openai
        from spark.models.openai import OpenAIModel
        assert "openai" not in sys.modules, "imported by the module"
        model = OpenAIModel({MODEL!r}, enable_cache=True, cache_dir={str(cache_config.resolved_dir)!r})
        text = asyncio.run(model.get_text({HELLO!r}))
        assert "openai" not in sys.modules, "imported by a cache hit"
        print(text)
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
    assert chats(server) == 1
