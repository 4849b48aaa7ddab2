"""OpenAI's HTTP API as the `openai` SDK sees it: chat completions (plain, SSE) and embeddings."""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from collections.abc import Callable, Mapping
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

PROVIDER = "openai"
_DEFAULT_DIMENSIONS = {"text-embedding-3-large": 3072}
_FALLBACK_DIMENSIONS = 1536
_ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_value"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error(status: int, message: str) -> Reply:
    """Return OpenAI's error body: `{"error": {message, type, param, code}}`."""
    return json_reply({"error": _error_object(status, message)}, status=status)


def _error_object(status: int, message: str) -> JsonObject:
    kind, code = _ERROR_KINDS.get(status, ("server_error", None))
    return {"message": message, "type": kind, "param": None, "code": code}


def _stream_error(status: int) -> bytes:
    return sse_event({"error": _error_object(status, status_phrase(status))})


def offers_tools(body: Mapping[str, Any]) -> bool:
    """Return whether the request lets the model call a tool."""
    return bool(body.get("tools")) and body.get("tool_choice") != "none"


def _tool_result(messages: list[Any]) -> str | None:
    """Return the content of the trailing tool messages, if the conversation ends with them."""
    results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") != "tool":
            break
        results.insert(0, _answers.text_of(message.get("content")))
    return " ".join(results) if results else None


def _chat_values(exchange: Exchange) -> tuple[str, str, int]:
    """Return the request seed, answer text and input token count of a chat request."""
    body = exchange.body
    messages = body.get("messages") or []
    seed = _answers.request_seed(PROVIDER, exchange.model, body)
    text = _answers.answer_text(
        seed, exchange.plan.answer_chars, tool_result=_tool_result(messages)
    )
    fragments = _answers.collect_text(messages)
    if body.get("tools"):
        fragments.append(_answers.canonical_json(body["tools"]))
    return seed, text, _answers.input_tokens(fragments)


def _usage(prompt_tokens: int, completion_tokens: int) -> JsonObject:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _envelope(seed: str, model: str, kind: str) -> JsonObject:
    return {
        "id": f"chatcmpl-{_answers.short_id(seed)}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_spark_testing",
        "service_tier": "default",
    }


def chat(exchange: Exchange) -> Reply:
    """Answer `POST /v1/chat/completions` without streaming."""
    seed, text, prompt_tokens = _chat_values(exchange)
    message: JsonObject = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    finish = "stop"
    call = exchange.plan.tool_call
    if call is not None:
        arguments = json.dumps(call.arguments)
        message["content"] = None
        message["tool_calls"] = [_tool_call_object(seed, call.name, arguments)]
        finish, text = "tool_calls", arguments
    payload = _envelope(seed, exchange.model, "chat.completion")
    payload["choices"] = [
        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    ]
    payload["usage"] = _usage(prompt_tokens, _answers.token_count(len(text)))
    return json_reply(payload)


def _tool_call_object(seed: str, name: str, arguments: str) -> JsonObject:
    call_id = f"call_{_answers.short_id(seed)}"
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_stream(exchange: Exchange) -> Reply:
    """Answer `POST /v1/chat/completions` with `stream: true` as server-sent events."""
    seed, text, prompt_tokens = _chat_values(exchange)
    envelope = _envelope(seed, exchange.model, "chat.completion.chunk")
    options = exchange.body.get("stream_options") or {}
    with_usage = isinstance(options, Mapping) and options.get("include_usage") is True

    def chunk(delta: JsonObject, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        extra = {"usage": None} if with_usage else {}
        return sse_event({**envelope, "choices": [choice], **extra})

    head = [chunk({"role": "assistant", "content": "", "refusal": None})]
    call = exchange.plan.tool_call
    if call is None:
        pieces = [chunk({"content": piece}) for piece in _answers.split_chunks(text)]
        finish = "stop"
    else:
        text = json.dumps(call.arguments)
        pieces = _tool_call_chunks(seed, call.name, text, chunk)
        finish = "tool_calls"
    tail = [chunk({}, finish)]
    if with_usage:
        usage = _usage(prompt_tokens, _answers.token_count(len(text)))
        tail.append(sse_event({**envelope, "choices": [], "usage": usage}))
    tail.append(sse_event("[DONE]"))
    failure = exchange.plan.stream_failure
    return stream_reply("text/event-stream", head, pieces, tail, failure, _stream_error)


def _tool_call_chunks(
    seed: str, name: str, arguments: str, chunk: Callable[[JsonObject], bytes]
) -> list[bytes]:
    first = _tool_call_object(seed, name, "")
    pieces: list[bytes] = [chunk({"tool_calls": [{"index": 0, **first}]})]
    for part in _answers.split_arguments(arguments):
        pieces.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
    return pieces


def embeddings(exchange: Exchange) -> Reply:
    """Answer `POST /v1/embeddings` in `float` or (the SDK's default) `base64` encoding."""
    body = exchange.body
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) and not _is_tokens(raw) else [raw]
    texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
    default = _DEFAULT_DIMENSIONS.get(exchange.model, _FALLBACK_DIMENSIONS)
    dimensions = int(body.get("dimensions") or default)
    encode = _base64_floats if body.get("encoding_format") == "base64" else list
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode(_answers.embedding(PROVIDER, exchange.model, text, dimensions)),
        }
        for index, text in enumerate(texts)
    ]
    tokens = sum(_answers.token_count(len(text)) for text in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_reply({"object": "list", "data": data, "model": exchange.model, "usage": usage})


def _is_tokens(items: list[Any]) -> bool:
    """Return whether an embeddings input list is one text given as token ids."""
    return bool(items) and all(isinstance(item, int) for item in items)


def _base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


WIRE = Wire(
    provider=PROVIDER,
    routes=(
        Route(re.compile(r"^/v1/chat/completions$"), "chat", streamed="chat_stream"),
        Route(re.compile(r"^/v1/embeddings$"), "embeddings"),
    ),
    handlers={"chat": chat, "chat_stream": chat_stream, "embeddings": embeddings},
    error=error,
    offers_tools=offers_tools,
)
