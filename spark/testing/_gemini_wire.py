"""Google Gemini's HTTP API as `google-genai` sees it in API-key mode.

`generateContent`, `streamGenerateContent?alt=sse`, `embedContent` and `batchEmbedContents`
under any API version prefix (`/v1`, which google-genai 3.x uses by default, `/v1beta`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from spark.testing import _answers
from spark.testing._exchange import (
    Exchange,
    JsonObject,
    Reply,
    Route,
    Wire,
    json_reply,
    sse_event,
    status_phrase,
    stream_reply,
)

PROVIDER = "gemini"
# The real service separates events with CRLF pairs; the SDK accepts either.
_SSE_SEPARATOR = "\r\n\r\n"
_DEFAULT_DIMENSIONS = 768
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _error_object(status: int, message: str) -> JsonObject:
    fallback = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    return {"code": status, "message": message, "status": _STATUSES.get(status, fallback)}


def error(status: int, message: str) -> Reply:
    """Return Google's error body: `{"error": {code, message, status}}`."""
    return json_reply({"error": _error_object(status, message)}, status=status)


def _stream_error(status: int) -> bytes:
    return sse_event({"error": _error_object(status, status_phrase(status))}, _SSE_SEPARATOR)


def offers_tools(body: Mapping[str, Any]) -> bool:
    """Return whether the request declares functions the model may call."""
    tools = body.get("tools") or []
    declared = any(isinstance(tool, Mapping) and tool.get("functionDeclarations") for tool in tools)
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    return declared and calling.get("mode") != "NONE"


def _tool_result(contents: list[Any]) -> str | None:
    """Return the function responses in the last content, if it carries any."""
    if not contents or not isinstance(contents[-1], Mapping):
        return None
    parts = contents[-1].get("parts") or []
    results = [
        _answers.canonical_json(part["functionResponse"].get("response", {}))
        for part in parts
        if isinstance(part, Mapping) and isinstance(part.get("functionResponse"), Mapping)
    ]
    return " ".join(results) if results else None


def _generate_values(exchange: Exchange) -> tuple[str, str, int]:
    """Return the request seed, answer text and prompt token count of a generate request."""
    body = exchange.body
    contents = body.get("contents") or []
    seed = _answers.request_seed(PROVIDER, exchange.model, body)
    text = _answers.answer_text(
        seed, exchange.plan.answer_chars, tool_result=_tool_result(contents)
    )
    fragments = _answers.collect_text([body.get("systemInstruction"), contents])
    if body.get("tools"):
        fragments.append(_answers.canonical_json(body["tools"]))
    return seed, text, _answers.input_tokens(fragments)


def _usage(prompt_tokens: int, output_text: str | None) -> JsonObject:
    usage: JsonObject = {
        "promptTokenCount": prompt_tokens,
        "totalTokenCount": prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if output_text is not None:
        output_tokens = _answers.token_count(len(output_text))
        usage["candidatesTokenCount"] = output_tokens
        usage["totalTokenCount"] = prompt_tokens + output_tokens
    return usage


def _response(
    exchange: Exchange, seed: str, parts: list[JsonObject], finish: bool, usage: JsonObject
) -> JsonObject:
    candidate: JsonObject = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": exchange.model,
        "responseId": _answers.short_id(seed, 22),
    }


def _function_call_part(exchange: Exchange) -> tuple[JsonObject, str] | None:
    call = exchange.plan.tool_call
    if call is None:
        return None
    part = {"functionCall": {"name": call.name, "args": call.arguments}}
    return part, _answers.canonical_json(call.arguments)


def generate(exchange: Exchange) -> Reply:
    """Answer `POST /{version}/models/{model}:generateContent`."""
    seed, text, prompt_tokens = _generate_values(exchange)
    part: JsonObject = {"text": text}
    function_call = _function_call_part(exchange)
    if function_call is not None:
        part, text = function_call
    usage = _usage(prompt_tokens, text)
    return json_reply(_response(exchange, seed, [part], True, usage))


def generate_stream(exchange: Exchange) -> Reply:
    """Answer `POST /{version}/models/{model}:streamGenerateContent?alt=sse` as SSE events."""
    seed, text, prompt_tokens = _generate_values(exchange)
    function_call = _function_call_part(exchange)
    if function_call is not None:
        part, text = function_call
        parts = [[part]]
    else:
        parts = [[{"text": piece}] for piece in _answers.split_chunks(text)]
    events = [
        sse_event(
            _response(
                exchange,
                seed,
                piece,
                finish=index == len(parts) - 1,
                usage=_usage(prompt_tokens, text if index == len(parts) - 1 else None),
            ),
            _SSE_SEPARATOR,
        )
        for index, piece in enumerate(parts)
    ]
    failure = exchange.plan.stream_failure
    return stream_reply("text/event-stream", [], events, [], failure, _stream_error)


def _embedding(exchange: Exchange, request: Mapping[str, Any]) -> JsonObject:
    text = _answers.text_of(request.get("content"))
    dimensions = int(request.get("outputDimensionality") or _DEFAULT_DIMENSIONS)
    return {"values": _answers.embedding(PROVIDER, exchange.model, text, dimensions)}


def embed(exchange: Exchange) -> Reply:
    """Answer `:embedContent` (one content) and `:batchEmbedContents` (`requests` list)."""
    requests = exchange.body.get("requests")
    if isinstance(requests, list):
        vectors = [_embedding(exchange, request) for request in requests]
        return json_reply({"embeddings": vectors})
    return json_reply({"embedding": _embedding(exchange, exchange.body)})


def _model_route(method: str, operation: str) -> Route:
    return Route(re.compile(rf"^/v1\w*/models/(?P<model>[^/:]+):{method}$"), operation)


WIRE = Wire(
    provider=PROVIDER,
    routes=(
        _model_route("generateContent", "generate"),
        _model_route("streamGenerateContent", "generate_stream"),
        _model_route("embedContent", "embed"),
        _model_route("batchEmbedContents", "embed"),
    ),
    handlers={"generate": generate, "generate_stream": generate_stream, "embed": embed},
    error=error,
    offers_tools=offers_tools,
)
