"""`google-genai` (API-key mode) against the local server: generate, streams, tools, embeddings."""

from __future__ import annotations

import json
import math
import urllib.request

import pytest
from google import genai
from google.genai import errors, types

from spark.testing import ProviderServer

MODEL = "gemini-2.0-flash"
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather for a city",
            parameters=types.Schema(
                type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}
            ),
        )
    ]
)


def test_generate_answers_text_with_usage(
    gemini_client: genai.Client, server: ProviderServer
) -> None:
    response = gemini_client.models.generate_content(model=MODEL, contents="Hello there")

    text = response.text or ""
    assert text.startswith("Answer ")
    assert len(text) == server.answer_chars
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == math.ceil(len("Hello there") / 4)
    assert usage.candidates_token_count == math.ceil(len(text) / 4)
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == f"{MODEL}-001"  # the snapshot that answered
    assert server.requests[0].model == MODEL
    assert server.requests[0].operation == "generate"


def test_same_request_same_text_other_request_other_text(gemini_client: genai.Client) -> None:
    def ask(contents: str, **config: object) -> str | None:
        return gemini_client.models.generate_content(
            model=MODEL,
            contents=contents,
            config=types.GenerateContentConfig(**config),
        ).text

    assert ask("one") == ask("one")
    assert ask("one") != ask("two")
    assert ask("one") != ask("one", system_instruction="Be brief.")


def test_stream_has_the_same_text(gemini_client: genai.Client, server: ProviderServer) -> None:
    plain = gemini_client.models.generate_content(model=MODEL, contents="Hello there")
    chunks = list(gemini_client.models.generate_content_stream(model=MODEL, contents="Hello there"))

    assert len(chunks) >= 3
    assert "".join(chunk.text or "" for chunk in chunks) == plain.text
    assert chunks[-1].usage_metadata == plain.usage_metadata
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert server.count(provider="gemini", operation="generate_stream") == 1


def test_function_call_then_function_response_ends_the_loop(
    gemini_client: genai.Client, server: ProviderServer
) -> None:
    server.queue_tool_call("get_weather", {"city": "Paris"}, provider="gemini")
    config = types.GenerateContentConfig(tools=[WEATHER])
    contents: list[types.Content] = [
        types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")])
    ]

    first = gemini_client.models.generate_content(model=MODEL, contents=contents, config=config)

    call = first.function_calls[0]
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    contents.append(first.candidates[0].content)
    response_part = types.Part.from_function_response(name="get_weather", response={"temp": 21})
    contents.append(types.Content(role="user", parts=[response_part]))

    second = gemini_client.models.generate_content(model=MODEL, contents=contents, config=config)

    assert second.function_calls is None
    assert '{"temp":21}' in (second.text or "")


def test_streamed_function_call(gemini_client: genai.Client, server: ProviderServer) -> None:
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    config = types.GenerateContentConfig(tools=[WEATHER])

    chunks = list(
        gemini_client.models.generate_content_stream(model=MODEL, contents="Hi", config=config)
    )

    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [(call.name, call.args) for call in calls] == [("get_weather", {"city": "Oslo"})]


def test_embeddings_batch_and_dimensions(
    gemini_client: genai.Client, server: ProviderServer
) -> None:
    response = gemini_client.models.embed_content(model="text-embedding-004", contents=["a", "b"])
    small = gemini_client.models.embed_content(
        model="text-embedding-004",
        contents="a",
        config=types.EmbedContentConfig(output_dimensionality=64),
    )

    vectors = [embedding.values or [] for embedding in response.embeddings or []]
    assert [len(vector) for vector in vectors] == [768, 768]
    assert vectors[0] != vectors[1]
    assert math.fsum(x * x for x in vectors[0]) == pytest.approx(1.0)
    assert len(small.embeddings[0].values or []) == 64
    assert server.count(provider="gemini", operation="embed") == 2


@pytest.mark.parametrize(
    ("status", "exception", "name"),
    [
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (400, errors.ClientError, "INVALID_ARGUMENT"),
    ],
)
def test_injected_errors_raise_the_sdk_exception(
    gemini_client: genai.Client,
    server: ProviderServer,
    status: int,
    exception: type[errors.APIError],
    name: str,
) -> None:
    server.fail_next(status, provider="gemini")

    with pytest.raises(exception) as caught:
        gemini_client.models.generate_content(model=MODEL, contents="Hi")

    assert caught.value.code == status
    assert caught.value.status == name


def test_mid_stream_error_raises_server_error(
    gemini_client: genai.Client, server: ProviderServer
) -> None:
    server.fail_stream_after(chunks=2)
    received: list[str] = []

    stream = gemini_client.models.generate_content_stream(model=MODEL, contents="Hi")

    with pytest.raises(errors.ServerError) as caught:
        received.extend(chunk.text or "" for chunk in stream)

    assert caught.value.code == 500
    assert len(received) == 2


async def test_async_client_generate_and_stream(gemini_client: genai.Client) -> None:
    plain = await gemini_client.aio.models.generate_content(model=MODEL, contents="Hi")
    stream = await gemini_client.aio.models.generate_content_stream(model=MODEL, contents="Hi")
    pieces = [chunk.text or "" async for chunk in stream]

    assert "".join(pieces) == plain.text


def test_single_embed_content_endpoint(server: ProviderServer) -> None:
    body = {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 16}
    request = urllib.request.Request(
        f"{server.gemini_base_url}/v1beta/models/gemini-embedding-001:embedContent",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "x-goog-api-key": "test"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        payload = json.loads(response.read())

    assert len(payload["embedding"]["values"]) == 16
    assert server.requests[0].model == "gemini-embedding-001"
