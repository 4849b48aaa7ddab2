"""`ProviderServer` itself: lifecycle, log, settings, injections, env(), speed, the CLI entry."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
import openai
import pytest
from google import genai

import spark.testing
from spark.testing import ProviderServer, RecordedRequest, _openai_wire
from spark.testing.fixtures import provider_server

__all__ = ["provider_server"]

HELLO = [{"role": "user", "content": "Hello"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_public_surface() -> None:
    assert spark.testing.__all__ == ["ProviderServer", "RecordedRequest"]
    for name in spark.testing.__all__:
        assert getattr(spark.testing, name) is not None


def test_shipped_fixture_yields_a_started_server(provider_server: ProviderServer) -> None:
    assert provider_server.url.startswith("http://127.0.0.1:")
    assert provider_server.openai_base_url == provider_server.url + "/v1"
    assert provider_server.bedrock_endpoint_url == provider_server.url
    assert provider_server.gemini_base_url == provider_server.url


def test_lifecycle_start_stop_and_port_release() -> None:
    server = ProviderServer(latency=0.01, answer_chars=50)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    server.start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    url = server.url
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="t", max_retries=0)
    assert (
        len(
            client.chat.completions.create(model="m", messages=HELLO).choices[0].message.content
            or ""
        )
        == 50
    )

    server.stop()
    server.stop()

    with pytest.raises(openai.APIConnectionError):  # the kept-alive connection was cut too
        client.chat.completions.create(model="m", messages=HELLO)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=1)


def test_log_counts_and_reset(openai_client: openai.OpenAI, server: ProviderServer) -> None:
    openai_client.chat.completions.create(model="m", messages=HELLO)
    openai_client.chat.completions.create(model="m", messages=HELLO, stream=True).close()
    openai_client.embeddings.create(model="e", input="x")

    assert server.count() == 3
    assert server.count(provider="openai", operation="chat") == 1
    assert server.count(operation="chat_stream") == 1
    assert server.count(provider="gemini") == 0
    first = server.requests[0]
    assert first == RecordedRequest(
        "openai", "chat", "m", "/v1/chat/completions", first.body, first.headers
    )
    assert first.body["messages"] == HELLO
    assert {field.name for field in dataclasses.fields(RecordedRequest)} == {
        "provider",
        "operation",
        "model",
        "path",
        "body",
        "headers",
    }
    # Headers are recorded (names lower-cased), credentials never: the SDK sent its key.
    assert first.headers["content-type"] == "application/json"
    assert first.headers["authorization"] == "<redacted>"
    assert all("sk-" not in value for value in first.headers.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.model = "other"
    server.fail_next(500)

    server.reset()

    assert server.requests == []
    assert openai_client.chat.completions.create(model="m", messages=HELLO).choices


def test_latency_is_added_before_each_answer(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.latency = 0.2
    started = time.perf_counter()
    openai_client.chat.completions.create(model="m", messages=HELLO)

    assert time.perf_counter() - started >= 0.2


def test_requests_are_fast_thanks_to_keep_alive_and_no_nagle(
    openai_client: openai.OpenAI, bedrock_client: Any, gemini_client: genai.Client
) -> None:
    calls = {
        "openai": lambda: openai_client.chat.completions.create(model="m", messages=HELLO),
        "bedrock": lambda: bedrock_client.converse(
            modelId="m", messages=[{"role": "user", "content": [{"text": "Hello"}]}]
        ),
        "gemini": lambda: gemini_client.models.generate_content(model="m", contents="Hello"),
        "openai-stream": lambda: list(
            openai_client.chat.completions.create(model="m", messages=HELLO, stream=True)
        ),
    }
    for name, call in calls.items():
        call()  # connect first
        timings = []
        for _ in range(10):
            started = time.perf_counter()
            call()
            timings.append(time.perf_counter() - started)
        assert statistics.median(timings) < 0.02, name


def test_concurrent_requests_are_all_logged(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    def ask(index: int) -> None:
        openai_client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": str(index)}]
        )

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert server.count(provider="openai", operation="chat") == 16


async def test_a_burst_of_connections_is_queued_not_reset(server: ProviderServer) -> None:
    """A suite's ``asyncio.gather`` opens dozens of connections at once: every one is answered
    (a listen backlog of 5 reset most of them: ConnectionResetError in the SDK)."""
    model = server.model("openai", "gpt-4o")  # (no cache: every call reaches the server)
    answers = await asyncio.gather(
        *(model.get_text(f"question {i}") for i in range(64)), return_exceptions=True
    )
    failed = [answer for answer in answers if isinstance(answer, BaseException)]
    assert not failed, failed[:3]
    assert server.count("openai") == 64
    await model.aclose()


def test_injections_match_their_provider_and_kind(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.queue_tool_call("f", {}, provider="gemini")
    server.fail_stream_after(chunks=0, provider="openai")

    answered = openai_client.chat.completions.create(model="m", messages=HELLO, tools=[TOOL])
    assert answered.choices[0].finish_reason == "stop"  # the tool call waits for Gemini
    assert openai_client.chat.completions.create(model="m", messages=HELLO).choices  # not a stream
    with pytest.raises(openai.APIError):
        list(openai_client.chat.completions.create(model="m", messages=HELLO, stream=True))


def test_a_failed_request_keeps_the_queued_tool_call_for_its_retry(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.queue_tool_call("f", {"x": 1})
    server.fail_next(503)

    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="m", messages=HELLO, tools=[TOOL])
    retried = openai_client.chat.completions.create(model="m", messages=HELLO, tools=[TOOL])

    assert retried.choices[0].finish_reason == "tool_calls"


def test_queued_tool_calls_answer_in_order(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    server.queue_tool_call("first", {})
    server.queue_tool_call("second", {})

    names = [
        openai_client.chat.completions.create(model="m", messages=HELLO, tools=[TOOL])
        .choices[0]
        .message.tool_calls[0]
        .function.name
        for _ in range(2)
    ]

    assert names == ["first", "second"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.fail_next(200), "status"),
        (lambda s: s.fail_next(429, count=0), "count"),
        (lambda s: s.fail_next(429, provider="anthropic"), "provider"),
        (lambda s: s.queue_tool_call("f", {}, provider="azure"), "provider"),
        (lambda s: s.fail_stream_after(chunks=-1), "chunks"),
        (lambda s: setattr(s, "answer_chars", 0), "answer_chars"),
        (lambda s: setattr(s, "latency", -1), "latency"),
        (lambda s: s.count(provider="nope"), "provider"),
    ],
)
def test_invalid_arguments_are_refused(server: ProviderServer, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(server)


def test_unknown_route_and_bad_body(server: ProviderServer) -> None:
    status, body = _post(server.url + "/v2/unknown", b"{}")
    assert status == 404
    assert "no route" in body["error"]["message"]

    status, body = _post(server.openai_base_url + "/chat/completions", b"not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"

    status, body = _post(server.openai_base_url + "/chat/completions", b'{"messages": 3}')
    assert status == 400
    assert server.count() == 1  # the unparseable body was never routed to a model


def test_env_points_every_sdk_here(server: ProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE"):
        monkeypatch.delenv(name, raising=False)
    env = server.env()
    assert set(env) == {
        "OPENAI_BASE_URL", "OPENAI_API_KEY", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
        "GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY",
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    # Keep each client referenced: a google-genai Client closes its connections when collected.
    openai_client = openai.OpenAI(max_retries=0)
    bedrock_client = boto3.client("bedrock-runtime")
    gemini_client = genai.Client()

    openai_client.chat.completions.create(model="m", messages=HELLO)
    bedrock_client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    gemini_client.models.generate_content(model="m", contents="Hello")

    assert [request.provider for request in server.requests] == ["openai", "bedrock", "gemini"]


def test_module_entry_point_prints_exports_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "spark.testing", "--answer-chars", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(8)]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert all(line.startswith("export ") for line in lines)
        client = openai.OpenAI(base_url=exports["OPENAI_BASE_URL"], api_key="t", max_retries=0)
        answer = client.chat.completions.create(model="m", messages=HELLO)
        assert len(answer.choices[0].message.content or "") == 40
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0


def test_a_server_bug_is_an_http_500_not_a_hang(
    openai_client: openai.OpenAI, server: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(exchange: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(_openai_wire.WIRE.handlers, "chat", broken)  # fault injection only

    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="m", messages=HELLO)


@pytest.mark.parametrize(
    ("provider", "model_id"),
    [
        ("openai", "gpt-4o"),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("gemini", "gemini-2.0-flash"),
    ],
)
async def test_server_model_builds_a_model_pointed_at_the_server(
    provider: str, model_id: str, server: ProviderServer
) -> None:
    model = server.model(provider, model_id, default_params={"temperature": 0.5})
    assert model.provider == provider
    assert model.default_params == {"temperature": 0.5}, "the caller's options reach the model"
    assert await model.get_text("Hello")
    (recorded,) = server.requests
    assert (recorded.provider, recorded.model) == (provider, model_id)
    await model.aclose()


async def test_server_model_builds_an_echo_model_that_needs_no_server(
    server: ProviderServer,
) -> None:
    model = server.model("echo", "echo")
    assert model.provider == "echo"
    assert "Hello" in await model.get_text("Hello")
    assert server.requests == []


def test_reset_forgets_every_pending_injection(
    openai_client: openai.OpenAI, server: ProviderServer
) -> None:
    """A refusal or cut-off queued by one test must not answer the next test's first call."""
    server.queue_refusal("I can't help with that.")
    server.queue_cut_off()
    server.queue_text("scripted")
    server.queue_usage(cache_read_tokens=10)
    server.reset()
    answer = openai_client.chat.completions.create(model="m", messages=HELLO)
    assert answer.choices[0].message.refusal is None
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content != "scripted"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 0
