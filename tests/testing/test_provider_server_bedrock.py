"""`boto3`'s bedrock-runtime client against the local server: Converse, streams, Titan, faults."""

from __future__ import annotations

import json
import math
from typing import Any

import botocore.exceptions
import pytest

from spark.testing import ProviderServer

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
HELLO = [{"role": "user", "content": [{"text": "Hello there"}]}]
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {}}}},
            }
        }
    ]
}


def _text(response: dict[str, Any]) -> str:
    return str(response["output"]["message"]["content"][0]["text"])


def _events(client: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return list(client.converse_stream(modelId=MODEL, **kwargs)["stream"])


def test_converse_answers_text_with_usage(bedrock_client: Any, server: ProviderServer) -> None:
    response = bedrock_client.converse(
        modelId=MODEL, messages=HELLO, system=[{"text": "Be brief."}]
    )

    text = _text(response)
    assert text.startswith("Answer ")
    assert response["stopReason"] == "end_turn"
    assert response["usage"] == {
        "inputTokens": math.ceil(len("Be brief.Hello there") / 4),
        "outputTokens": math.ceil(len(text) / 4),
        "totalTokens": response["usage"]["inputTokens"] + response["usage"]["outputTokens"],
    }
    recorded = server.requests[0]
    assert (recorded.provider, recorded.operation, recorded.model) == ("bedrock", "converse", MODEL)
    assert recorded.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"


def test_same_request_same_text_other_request_other_text(bedrock_client: Any) -> None:
    def ask(text: str, **kwargs: Any) -> str:
        messages = [{"role": "user", "content": [{"text": text}]}]
        return _text(bedrock_client.converse(modelId=MODEL, messages=messages, **kwargs))

    assert ask("one") == ask("one")
    assert ask("one") != ask("two")
    assert ask("one") != ask("one", inferenceConfig={"maxTokens": 50})


def test_stream_events_carry_the_same_text(bedrock_client: Any, server: ProviderServer) -> None:
    plain = bedrock_client.converse(modelId=MODEL, messages=HELLO)
    events = _events(bedrock_client, messages=HELLO)

    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert len(deltas) >= 3
    assert "".join(deltas) == _text(plain)
    assert list(events[0]) == ["messageStart"]
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"] == plain["usage"]
    assert server.count(operation="converse_stream") == 1


def test_tool_use_then_tool_result_ends_the_loop(
    bedrock_client: Any, server: ProviderServer
) -> None:
    server.queue_tool_call("get_weather", {"city": "Paris"}, provider="bedrock")
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": "Weather?"}]}]

    first = bedrock_client.converse(modelId=MODEL, messages=messages, toolConfig=TOOLS)

    assert first["stopReason"] == "tool_use"
    tool_use = first["output"]["message"]["content"][0]["toolUse"]
    assert (tool_use["name"], tool_use["input"]) == ("get_weather", {"city": "Paris"})
    messages.append(first["output"]["message"])
    result = {"toolUseId": tool_use["toolUseId"], "content": [{"json": {"temp": 21}}]}
    messages.append({"role": "user", "content": [{"toolResult": result}]})

    second = bedrock_client.converse(modelId=MODEL, messages=messages, toolConfig=TOOLS)

    assert second["stopReason"] == "end_turn"
    assert '{"temp":21}' in _text(second)


def test_streamed_tool_use(bedrock_client: Any, server: ProviderServer) -> None:
    server.queue_tool_call("get_weather", {"city": "Oslo"})
    events = _events(bedrock_client, messages=HELLO, toolConfig=TOOLS)

    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "contentBlockDelta" in e
    ]
    assert json.loads("".join(pieces)) == {"city": "Oslo"}
    assert {"messageStop": {"stopReason": "tool_use"}} in events


def test_titan_embeddings(bedrock_client: Any) -> None:
    def embed(**body: Any) -> dict[str, Any]:
        response = bedrock_client.invoke_model(modelId=TITAN, body=json.dumps(body))
        return json.loads(response["body"].read())

    default = embed(inputText="hello world")
    small = embed(inputText="hello world", dimensions=256, normalize=True)

    assert len(default["embedding"]) == 1024
    assert len(small["embedding"]) == 256
    assert default["inputTextTokenCount"] == math.ceil(len("hello world") / 4)
    assert math.fsum(x * x for x in default["embedding"]) == pytest.approx(1.0)
    assert embed(inputText="hello world") == default
    assert embed(inputText="bye")["embedding"] != default["embedding"]


def test_invoke_of_a_text_model_is_a_validation_error(bedrock_client: Any) -> None:
    with pytest.raises(bedrock_client.exceptions.ValidationException):
        bedrock_client.invoke_model(modelId=MODEL, body=json.dumps({"prompt": "hi"}))


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "ThrottlingException"), (500, "InternalServerException"), (400, "ValidationException")],
)
def test_injected_errors_raise_modeled_exceptions(
    bedrock_client: Any, server: ProviderServer, status: int, code: str
) -> None:
    server.fail_next(status, provider="bedrock")

    with pytest.raises(getattr(bedrock_client.exceptions, code)) as caught:
        bedrock_client.converse(modelId=MODEL, messages=HELLO)

    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert bedrock_client.converse(modelId=MODEL, messages=HELLO)["stopReason"] == "end_turn"


def test_errors_apply_to_streams_too(bedrock_client: Any, server: ProviderServer) -> None:
    server.fail_next(429)

    with pytest.raises(bedrock_client.exceptions.ThrottlingException):
        bedrock_client.converse_stream(modelId=MODEL, messages=HELLO)


@pytest.mark.parametrize(
    ("status", "code"), [(500, "internalServerException"), (424, "modelStreamErrorException")]
)
def test_mid_stream_exception_frame_raises_event_stream_error(
    bedrock_client: Any, server: ProviderServer, status: int, code: str
) -> None:
    server.fail_stream_after(chunks=2, status=status)
    received: list[dict[str, Any]] = []

    stream = bedrock_client.converse_stream(modelId=MODEL, messages=HELLO)["stream"]

    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        received.extend(stream)  # extend() keeps the events read before the error

    assert caught.value.response["Error"]["Code"] == code
    assert len([event for event in received if "contentBlockDelta" in event]) == 2
