"""Values passed between the HTTP layer, the server state and the per-provider wire modules.

A wire module turns an `Exchange` (the parsed request plus what the server decided to do with
it) into a `Reply` (bytes to send); it never touches a socket, so it can be tested directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A scripted tool call the next request that offers tools answers with."""

    name: str
    arguments: JsonObject
    provider: str | None = None


@dataclass(frozen=True)
class StreamFailure:
    """How a streamed answer breaks: after `chunks` content pieces, with `status` or a drop."""

    chunks: int
    status: int = 500
    disconnect: bool = False
    provider: str | None = None


@dataclass(frozen=True)
class UsageScript:
    """Token counts the next text answer reports beyond its own (``ProviderServer.queue_usage``):
    prompt tokens read from or written to the provider's prompt cache, reasoning tokens."""

    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    provider: str | None = None


@dataclass(frozen=True)
class RawAnswer:
    """An answer sent exactly as given (``ProviderServer.queue_raw``): the JSON body, or the
    events of a streamed answer."""

    payload: Any
    provider: str | None = None


@dataclass(frozen=True)
class Plan:
    """What the server decided for one request before any answer is built."""

    answer_chars: int
    latency: float = 0.0
    fail_status: int | None = None
    stream_failure: StreamFailure | None = None
    tool_call: ToolCall | None = None
    text: str | None = None  # the answer's exact text (``ProviderServer.queue_text``)
    usage: UsageScript | None = None  # extra token counts (``ProviderServer.queue_usage``)
    refusal: str | None = None  # OpenAI's refusal instead of text (``queue_refusal``)
    cut_off: bool = False  # stopped at the token limit (``ProviderServer.queue_cut_off``)
    raw: RawAnswer | None = None  # the answer exactly as given (``ProviderServer.queue_raw``)


@dataclass(frozen=True)
class Exchange:
    """One routed request: who it is for, what it asks, and the plan for answering."""

    provider: str
    operation: str
    model: str
    body: JsonObject
    plan: Plan


@dataclass(frozen=True)
class Reply:
    """Bytes to send back: a whole body, or stream pieces sent as they are (chunked).

    `disconnect` drops the connection after the pieces instead of ending the stream cleanly.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    stream: tuple[bytes, ...] | None = None
    disconnect: bool = False


Handler = Callable[[Exchange], Reply]


@dataclass(frozen=True)
class Route:
    """A request path pattern and the operation it names (`streamed` when the body says so).

    The pattern matches the raw (still percent-encoded) path; a `model` group names the model,
    otherwise the body's `model` field does.
    """

    pattern: re.Pattern[str]
    operation: str
    streamed: str | None = None

    def operation_for(self, body: Mapping[str, Any]) -> str:
        """Return the operation name, taking a body-level `stream: true` into account."""
        if self.streamed is not None and body.get("stream") is True:
            return self.streamed
        return self.operation


@dataclass(frozen=True)
class Wire:
    """Everything the server needs to speak one provider's HTTP API."""

    provider: str
    routes: tuple[Route, ...]
    handlers: Mapping[str, Handler]
    error: Callable[[int, str], Reply]
    offers_tools: Callable[[Mapping[str, Any]], bool]
    raw_stream: Callable[[Sequence[Any]], Reply] = lambda events: sse_stream(events)


def json_reply(payload: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """Return a JSON reply with the given status and extra headers."""
    body = _json_text(payload).encode("utf-8")
    return Reply(status=status, headers=(("Content-Type", "application/json"), *headers), body=body)


def _json_text(payload: Any) -> str:
    """JSON as the services send it: UTF-8 text, a lone surrogate (which UTF-8 cannot hold)
    as its ``\\u`` escape."""
    text = json.dumps(payload, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload)
    return text


def sse_event(payload: Any, separator: str = "\n\n") -> bytes:
    """Return one server-sent event carrying `payload` as JSON (or a literal string)."""
    data = payload if isinstance(payload, str) else _json_text(payload)
    return f"data: {data}{separator}".encode()


def sse_stream(events: Sequence[Any]) -> Reply:
    """A stream of server-sent events as given: each item one event's JSON (a string as it is,
    such as ``"[DONE]"``)."""
    pieces = tuple(sse_event(event) for event in events)
    return Reply(headers=(("Content-Type", "text/event-stream"),), stream=pieces)


def stream_reply(
    content_type: str,
    head: list[bytes],
    pieces: list[bytes],
    tail: list[bytes],
    failure: StreamFailure | None,
    error_event: Callable[[int], bytes],
) -> Reply:
    """Return a streamed reply, broken after `failure.chunks` content pieces when asked."""
    headers = (("Content-Type", content_type),)
    if failure is None:
        return Reply(headers=headers, stream=(*head, *pieces, *tail))
    sent = (*head, *pieces[: failure.chunks])
    if failure.disconnect:
        return Reply(headers=headers, stream=sent, disconnect=True)
    return Reply(headers=headers, stream=(*sent, error_event(failure.status)))


def status_phrase(status: int) -> str:
    """Return a short human message for an injected HTTP error status."""
    return _PHRASES.get(status, f"Injected error with status {status}.")


_PHRASES = {
    400: "The request was invalid (injected by spark.testing).",
    401: "Invalid credentials (injected by spark.testing).",
    403: "Access denied (injected by spark.testing).",
    404: "The model was not found (injected by spark.testing).",
    429: "Rate limit exceeded, please retry later (injected by spark.testing).",
    500: "The server had an internal error (injected by spark.testing).",
    503: "The service is temporarily unavailable (injected by spark.testing).",
}
