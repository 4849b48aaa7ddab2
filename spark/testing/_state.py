"""The server's memory: the request log, the answer settings and the queued fault injections.

Pure and thread-safe (one lock); the HTTP threads ask it for a `Plan` per request, which records
the request and consumes the matching injections in one step.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from spark.testing._exchange import (
    JsonObject,
    Plan,
    RawAnswer,
    StreamFailure,
    ToolCall,
    UsageScript,
)

PROVIDERS = ("openai", "bedrock", "gemini")
DEFAULT_ANSWER_CHARS = 200

_T = TypeVar("_T")
# The operations answered with text (the Responses API's route too, when it is served).
_TEXT_OPERATIONS = frozenset(
    {
        "chat",
        "chat_stream",
        "converse",
        "converse_stream",
        "generate",
        "generate_stream",
        "responses",
        "responses_stream",
    }
)


# Headers that carry credentials: recorded as "<redacted>", never their values.
_SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "x-amz-security-token", "cookie"}
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received: its body, path and headers (names lower-cased; the
    values of credential headers are replaced by ``"<redacted>"``)."""

    provider: str
    operation: str
    model: str
    path: str
    body: JsonObject
    headers: Mapping[str, str] = field(default_factory=dict)


def recorded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as recorded: lower-cased names, credentials redacted."""
    return {
        name.lower(): "<redacted>" if name.lower() in _SECRET_HEADERS else value
        for name, value in headers.items()
    }


@dataclass
class _Injection(Generic[_T]):
    """A queued fault or scripted answer and how many more requests it applies to."""

    value: _T
    provider: str | None
    remaining: int


def check_provider(provider: str | None) -> None:
    """Raise `ValueError` unless `provider` is None or a provider this server speaks."""
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")


class ServerState:
    """Request log, settings and injections shared by all request threads."""

    def __init__(self, *, latency: float = 0.0, answer_chars: int = DEFAULT_ANSWER_CHARS) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: list[_Injection[int]] = []
        self._stream_failures: list[_Injection[StreamFailure]] = []
        self._tool_calls: list[_Injection[ToolCall]] = []
        self._texts: list[_Injection[str]] = []
        self._refusals: list[_Injection[str]] = []
        self._cut_offs: list[_Injection[bool]] = []
        self._usages: list[_Injection[UsageScript]] = []
        self._raws: list[_Injection[RawAnswer]] = []
        self.latency = latency
        self.answer_chars = answer_chars

    @property
    def latency(self) -> float:
        """Seconds the server waits before each answer."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0 seconds")
        self._latency = float(seconds)

    @property
    def answer_chars(self) -> int:
        """Length in characters of each generated answer text."""
        return self._answer_chars

    @answer_chars.setter
    def answer_chars(self, chars: int) -> None:
        if chars < 1:
            raise ValueError("answer_chars must be >= 1")
        self._answer_chars = int(chars)

    def requests(self) -> list[RecordedRequest]:
        """Return a copy of the request log, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, provider: str | None = None, operation: str | None = None) -> int:
        """Return how many logged requests match the provider and operation (None = any)."""
        with self._lock:
            return sum(
                1
                for request in self._requests
                if provider in (None, request.provider) and operation in (None, request.operation)
            )

    def reset(self) -> None:
        """Forget every logged request and every pending injection."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._stream_failures.clear()
            self._tool_calls.clear()
            for pending in (
                self._texts,
                self._refusals,
                self._cut_offs,
                self._usages,
                self._raws,
            ):
                pending.clear()

    def add_failure(self, status: int, count: int, provider: str | None) -> None:
        """Make the next `count` matching requests fail with HTTP `status`."""
        self._add(self._failures, status, count, provider)

    def add_stream_failure(self, failure: StreamFailure, count: int) -> None:
        """Make the next `count` matching streamed answers break as `failure` says."""
        self._add(self._stream_failures, failure, count, failure.provider)

    def add_text(self, text: str, provider: str | None) -> None:
        """Make the next matching request that is answered with text answer exactly `text`."""
        self._add(self._texts, text, 1, provider)

    def add_refusal(self, refusal: str) -> None:
        """Make the next OpenAI text answer (chat or Responses) refuse with `refusal`."""
        self._add(self._refusals, refusal, 1, "openai")

    def add_cut_off(self, provider: str | None) -> None:
        """Make the next text answer (of `provider`, or any) stop at the token limit."""
        self._add(self._cut_offs, True, 1, provider)

    def add_usage(self, usage: UsageScript, count: int) -> None:
        """Make the next `count` matching text answers report `usage`'s extra token counts."""
        self._add(self._usages, usage, count, usage.provider)

    def add_raw(self, raw: RawAnswer) -> None:
        """Make the next matching request get ``raw.payload`` exactly, whatever it asks."""
        self._add(self._raws, raw, 1, raw.provider)

    def add_tool_call(self, call: ToolCall) -> None:
        """Make the next matching request that offers tools answer with `call`."""
        self._add(self._tool_calls, call, 1, call.provider)

    def _add(
        self, queue: list[_Injection[_T]], value: _T, count: int, provider: str | None
    ) -> None:
        check_provider(provider)
        if count < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            queue.append(_Injection(value, provider, count))

    def admit(self, request: RecordedRequest, *, streamed: bool, offers_tools: bool) -> Plan:
        """Log `request` and decide how to answer it, consuming the injections it matches.

        A request that fails consumes nothing else, so its retry still gets the scripted answer.
        """
        with self._lock:
            self._requests.append(request)
            plan = Plan(answer_chars=self._answer_chars, latency=self._latency)
            status = _take(self._failures, request.provider)
            if status is not None:
                return replace(plan, fail_status=status)
            raw = _take(self._raws, request.provider)
            if raw is not None:  # sent as given: no other injection applies
                return replace(plan, raw=raw)
            failure = _take(self._stream_failures, request.provider) if streamed else None
            call = _take(self._tool_calls, request.provider) if offers_tools else None
            answers_text = call is None and request.operation in _TEXT_OPERATIONS
            refusal = _take(self._refusals, request.provider) if answers_text else None
            answers_text = answers_text and refusal is None
            text = _take(self._texts, request.provider) if answers_text else None
            in_text = request.operation in _TEXT_OPERATIONS
            usage = _take(self._usages, request.provider) if in_text else None
            cut_off = _take(self._cut_offs, request.provider) if in_text else None
            return replace(
                plan,
                stream_failure=failure,
                tool_call=call,
                text=text,
                usage=usage,
                refusal=refusal,
                cut_off=cut_off is True,
            )


def _take(queue: list[_Injection[_T]], provider: str) -> _T | None:
    """Consume one use of the first injection in `queue` that matches `provider`."""
    for index, injection in enumerate(queue):
        if injection.provider in (None, provider):
            injection.remaining -= 1
            if injection.remaining == 0:
                del queue[index]
            return injection.value
    return None
