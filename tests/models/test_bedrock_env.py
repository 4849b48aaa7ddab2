"""``BedrockModel`` around the calls: errors, single flight, SDK environment variables, injected
clients, secrets on disk, a disabled cache, and no boto3 import on a hit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from spark.cache import CacheConfig, generate_key
from spark.errors import (
    AuthenticationError,
    BadRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
)
from spark.models.bedrock import BedrockModel
from spark.testing import ProviderServer

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}

MakeModel = Callable[..., BedrockModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """BedrockModels on the local server (``tests/models/conftest.py``: ``models``)."""
    return lambda model_id=MODEL, **options: models("bedrock", model_id, **options)


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RateLimitError),
        (500, ProviderServerError),
        (503, ProviderServerError),
        (400, BadRequestError),
        (404, BadRequestError),
        (403, AuthenticationError),
    ],
)
async def test_http_errors_map_to_spark_errors_and_are_not_cached(
    make_model: MakeModel, server: ProviderServer, status: int, error: type[ProviderError]
) -> None:
    model = make_model()
    server.fail_next(status=status, provider="bedrock")

    with pytest.raises(error) as caught:
        await model.get_text(HELLO)

    assert caught.value.status == status
    assert caught.value.provider == "bedrock"
    assert MODEL in str(caught.value)
    assert isinstance(caught.value.__cause__, botocore.exceptions.ClientError)
    assert not model.cache_manager.has_entry(model.cache_key(HELLO))
    assert (await model.get_text(HELLO)).startswith("Answer ")
    assert server.count("bedrock") == 2


async def test_stream_refused_before_it_starts(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.fail_next(status=429, provider="bedrock")

    with pytest.raises(RateLimitError) as caught:
        _ = [chunk async for chunk in model.stream_text(HELLO)]

    assert caught.value.status == 429


async def test_embedding_errors_are_mapped(make_model: MakeModel, server: ProviderServer) -> None:
    model = make_model(TITAN)
    server.fail_next(status=429, provider="bedrock")

    with pytest.raises(RateLimitError):
        await model.embed("hello")

    assert len((await model.embed("hello")).embeddings[0]) == 1024


async def test_unreachable_endpoint_is_a_connection_error(make_model: MakeModel) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = make_model(endpoint_url=f"http://127.0.0.1:{port}", timeout=2.0)

    with pytest.raises(ProviderConnectionError) as caught:
        await model.get_text(HELLO)

    assert isinstance(caught.value.__cause__, botocore.exceptions.EndpointConnectionError)


async def test_no_region_anywhere_is_a_clear_provider_error(cache_config: CacheConfig) -> None:
    model = BedrockModel(MODEL, cache_config=cache_config, aws_access_key_id="a")

    with pytest.raises(ProviderError, match="region"):
        await model.get_text(HELLO)


# -- one call for many callers -----------------------------------------------------------------


async def test_concurrent_identical_misses_make_one_request(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.latency = 0.3

    answers = await asyncio.gather(*(model.get_text(HELLO) for _ in range(20)))

    assert len(set(answers)) == 1
    assert server.count("bedrock") == 1


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_slow_call_leaves_the_event_loop_free(
    make_model: MakeModel, server: ProviderServer, streamed: bool
) -> None:
    model = make_model()
    server.latency = 0.3
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    if streamed:
        _ = [chunk async for chunk in model.stream_text(HELLO)]
    else:
        await model.get_text(HELLO)
    ticker.cancel()

    assert ticks >= 10  # a blocked loop would not tick at all while the server waits


async def test_abandoned_stream_stores_nothing(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    async with contextlib.aclosing(model.stream_text(HELLO)) as stream:
        async for _chunk in stream:
            break

    assert not model.cache_manager.has_entry(model.cache_key(HELLO))
    assert len([chunk async for chunk in model.stream_text(HELLO)]) >= 3
    assert server.count("bedrock", "converse_stream") == 2


# -- configuration from the SDK's environment and injected clients -----------------------------


async def test_sdk_environment_variables_reach_the_server(
    server: ProviderServer, cache_config: CacheConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    model = BedrockModel(MODEL, cache_config=cache_config, max_retries=0)

    assert (await model.get_text(HELLO)).startswith("Answer ")
    assert server.count("bedrock") == 1


async def test_aws_region_variable_is_the_last_region_fallback(
    server: ProviderServer,
    cache_config: CacheConfig,
    credentials: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.bedrock_endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["aws_secret_access_key"])
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    model = BedrockModel(MODEL, cache_config=cache_config, max_retries=0)

    assert (await model.get_text(HELLO)).startswith("Answer ")
    assert server.count("bedrock") == 1


async def test_bearer_token_variable_is_read_by_boto3(
    server: ProviderServer, cache_config: CacheConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.bedrock_endpoint_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # botocore itself reads AWS_DEFAULT_REGION only
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-test")
    model = BedrockModel(MODEL, cache_config=cache_config, max_retries=0)

    # boto3 sends bearer tokens over HTTPS only and the local server is plain HTTP, so its
    # refusal is the proof that the variable (not SigV4 without credentials) was used.
    with pytest.raises(ProviderError, match="Bearer authorization requires an HTTPS endpoint"):
        await model.get_text(HELLO)
    assert server.count("bedrock") == 0


async def test_injected_client_is_used_as_given(
    server: ProviderServer, cache_config: CacheConfig
) -> None:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=server.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    # No region or endpoint anywhere else: a client of the model's own could not be built.
    model = BedrockModel(MODEL, client=client, cache_config=cache_config)

    assert (await model.get_text(HELLO)).startswith("Answer ")
    assert len([c async for c in model.stream_text("streamed")]) >= 3
    assert server.count("bedrock") == 2


async def test_disabled_cache_calls_every_time(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)

    first = await model.generate(HELLO)
    second = await model.generate(HELLO)
    _ = [chunk async for chunk in model.stream_text(HELLO)]

    assert first.text == second.text
    assert (first.cached, second.cached) == (False, False)
    assert server.count("bedrock") == 3


# -- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encrypt", [False, True])
async def test_no_secret_reaches_a_cache_file(
    server: ProviderServer,
    credentials: dict[str, str],
    cache_files_text: Callable[[Path], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encrypt: bool,
) -> None:
    if encrypt:
        monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "secret-scan", encrypt=encrypt)
    secrets = {
        "aws_access_key_id": credentials["aws_access_key_id"],
        "aws_secret_access_key": credentials["aws_secret_access_key"],
        "aws_session_token": "session-token-SECRET-0123456789",
    }
    options: dict[str, Any] = {
        "region": "us-east-1",
        "endpoint_url": server.bedrock_endpoint_url,
        "max_retries": 0,
        "cache_config": config,
        **secrets,
    }
    model = BedrockModel(MODEL, **options)
    server.queue_tool_call("get_weather", {"city": "Lima"}, provider="bedrock")

    plain = await model.get_text("plain prompt xyzzy")
    streamed = "".join([c async for c in model.stream_text("streamed prompt plugh")])
    tool = await model.generate("tool prompt frobozz", tools=[WEATHER])
    await BedrockModel(TITAN, **options).embed("embedded text quux")

    written = cache_files_text(config.resolved_dir)
    assert model.cache_manager.get_stats()["total_entries"] == 4
    for secret in secrets.values():
        assert secret not in written
    private = ["xyzzy", "plugh", "frobozz", "quux", "Lima", plain, streamed]
    assert tool.tool_calls
    if encrypt:
        assert not [text for text in private if text in written]
    else:
        assert all(text in written for text in private)


# -- a hit needs no SDK ------------------------------------------------------------------------

_HIT_IN_FRESH_PROCESS = """
import asyncio, json, sys
import spark.models.bedrock
from spark.models.bedrock import BedrockModel

assert "boto3" not in sys.modules and "botocore" not in sys.modules
model = BedrockModel({model!r}, cache_dir={cache_dir!r}, enable_cache=True)
text = asyncio.run(model.get_text({messages!r}))
print(json.dumps({{"text": text, "loaded": sorted(m for m in ("boto3", "botocore") if m in sys.modules)}}))
"""


async def test_hit_in_a_fresh_process_never_imports_boto3(
    make_model: MakeModel, cache_config: CacheConfig
) -> None:
    text = await make_model().get_text(HELLO)
    script = _HIT_IN_FRESH_PROCESS.format(
        model=MODEL, cache_dir=str(cache_config.resolved_dir), messages=HELLO
    )

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"text": text, "loaded": []}
