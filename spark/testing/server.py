"""`ProviderServer`: a local HTTP server speaking the OpenAI, Bedrock Runtime and Gemini APIs.

The real SDKs talk to it unchanged, with no network: point their base URL here (or apply
`env()`), then assert on `requests`, inject latency, HTTP errors, broken streams and tool calls.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote

from spark.testing import _bedrock_wire, _gemini_wire, _openai_wire
from spark.testing._exchange import (
    Exchange,
    JsonObject,
    RawAnswer,
    Reply,
    Route,
    StreamFailure,
    ToolCall,
    UsageScript,
    Wire,
    json_reply,
    status_phrase,
)
from spark.testing._http import HttpServer
from spark.testing._state import (
    DEFAULT_ANSWER_CHARS,
    RecordedRequest,
    ServerState,
    check_provider,
    recorded_headers,
)

if TYPE_CHECKING:
    from spark.models.base import Model

logger = logging.getLogger("spark")

_WIRES: tuple[Wire, ...] = (_openai_wire.WIRE, _bedrock_wire.WIRE, _gemini_wire.WIRE)
_ROUTES: tuple[tuple[Wire, Route], ...] = tuple(
    (wire, route) for wire in _WIRES for route in wire.routes
)
# How often the serve loop checks for stop(); bounds how long stop() takes.
_POLL_SECONDS = 0.02
# Dummy credentials: the SDKs refuse to start without some, and none is ever checked.
_DUMMY_ENV = {
    "OPENAI_API_KEY": "sk-spark-testing",
    "AWS_ACCESS_KEY_ID": "AKIASPARKTESTING",
    "AWS_SECRET_ACCESS_KEY": "spark-testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "GOOGLE_API_KEY": "spark-testing",
}


class ProviderServer:
    """A local fake of the three providers' HTTP APIs, for tests and offline demos.

    Use it as a context manager (or `start()` / `stop()`). Answers are deterministic per
    request; `latency` and `answer_chars` shape them; `fail_next`, `fail_stream_after`,
    `queue_tool_call` and `queue_raw` script what the next matching requests get.
    """

    def __init__(
        self, *, latency: float = 0.0, answer_chars: int = DEFAULT_ANSWER_CHARS, port: int = 0
    ) -> None:
        self._state = ServerState(latency=latency, answer_chars=answer_chars)
        self._port = port
        self._httpd: HttpServer | None = None
        self._thread: threading.Thread | None = None

    #: The servers started in this process and not yet stopped (``serving()``).
    _serving: ClassVar[set[int]] = set()

    @classmethod
    def serving(cls) -> bool:
        """Whether any ``ProviderServer`` serves in this process right now (the pytest plugin
        does not count calls to a local fake as calls to a live provider)."""
        return bool(cls._serving)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ProviderServer:
        """Bind 127.0.0.1 (a free port unless one was given) and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("ProviderServer is already started")
        self._httpd = HttpServer(self._port, self._dispatch)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name="spark-provider-server",
            daemon=True,
        )
        self._thread.start()
        ProviderServer._serving.add(id(self))
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and release the port; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        ProviderServer._serving.discard(id(self))
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where the SDKs should connect -----------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root URL, `http://127.0.0.1:PORT`."""
        if self._httpd is None:
            raise RuntimeError("ProviderServer is not started; use start() or a with block")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        """The `base_url` for `openai.OpenAI` (the root URL plus `/v1`)."""
        return f"{self.url}/v1"

    @property
    def bedrock_endpoint_url(self) -> str:
        """The `endpoint_url` for `boto3.client("bedrock-runtime", ...)`."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """The `HttpOptions(base_url=...)` for `google.genai.Client`."""
        return self.url

    def model(self, provider: str, model_id: str, **options: Any) -> Model:
        """A Spark model of ``provider`` pointed at this server, with dummy credentials and the
        SDK's retries off; ``options`` go to the model's constructor (and win)."""
        from spark.models.registry import model_class  # the layer this one tests

        defaults: dict[str, Any] = {"max_retries": 0}
        if provider == "echo":  # offline: it needs no server
            return model_class(provider)(model_id, **options)
        if provider == "openai":
            defaults |= {"base_url": self.openai_base_url, "api_key": _DUMMY_ENV["OPENAI_API_KEY"]}
        elif provider == "bedrock":
            defaults |= {
                "endpoint_url": self.bedrock_endpoint_url,
                "region": _DUMMY_ENV["AWS_DEFAULT_REGION"],
                "aws_access_key_id": _DUMMY_ENV["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": _DUMMY_ENV["AWS_SECRET_ACCESS_KEY"],
            }
        else:
            defaults |= {"base_url": self.gemini_base_url, "api_key": _DUMMY_ENV["GOOGLE_API_KEY"]}
        return model_class(provider)(model_id, **{**defaults, **options})

    def env(self) -> dict[str, str]:
        """Return environment variables that point each SDK here, with dummy credentials."""
        return {
            **_DUMMY_ENV,
            "OPENAI_BASE_URL": self.openai_base_url,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.bedrock_endpoint_url,
            "GOOGLE_GEMINI_BASE_URL": self.gemini_base_url,
        }

    # -- what happened ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        return self._state.requests()

    def count(self, provider: str | None = None, operation: str | None = None) -> int:
        """Return how many received requests match `provider` and `operation` (None = any)."""
        check_provider(provider)
        return self._state.count(provider, operation)

    def reset(self) -> None:
        """Clear the request log and every pending injection (settings stay)."""
        self._state.reset()

    # -- how to answer ---------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added before each answer."""
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    @property
    def answer_chars(self) -> int:
        """Length in characters of each generated answer text."""
        return self._state.answer_chars

    @answer_chars.setter
    def answer_chars(self, chars: int) -> None:
        self._state.answer_chars = chars

    def fail_next(self, status: int = 429, count: int = 1, provider: str | None = None) -> None:
        """Answer the next `count` requests (of `provider`, or any) with HTTP error `status`.

        Each provider's own error format is used, so the SDK raises its usual exception class.
        """
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._state.add_failure(status, count, provider)

    def fail_stream_after(
        self,
        chunks: int = 2,
        count: int = 1,
        provider: str | None = None,
        *,
        status: int = 500,
        disconnect: bool = False,
    ) -> None:
        """Break the next `count` streamed answers after `chunks` content pieces.

        By default the stream then carries the provider's in-stream error for `status` (an SSE
        error event; a Bedrock exception frame); with `disconnect=True` the connection drops.
        """
        if chunks < 0:
            raise ValueError("chunks must be >= 0")
        failure = StreamFailure(chunks, status, disconnect, provider)
        self._state.add_stream_failure(failure, count)

    def queue_text(self, text: str, provider: str | None = None) -> None:
        """Answer the next text request (of `provider`, or any) with exactly `text`.

        Texts queue up in order, one per request. Without one, a request that asks for a JSON
        schema (structured output) gets JSON that fits it, and any other a generated text.
        """
        self._state.add_text(str(text), provider)

    def queue_refusal(self, refusal: str) -> None:
        """Make the next OpenAI text answer (chat completions or the Responses API) a refusal:
        `refusal` in the message's `refusal` field (a `refusal` content part on Responses), no
        text. Streamed, it comes as refusal deltas."""
        self._state.add_refusal(str(refusal))

    def queue_cut_off(self, provider: str | None = None) -> None:
        """Make the next text answer (of `provider`, or any) stop at the token limit: half its
        text, or of a tool call's arguments as JSON text (OpenAI, a Bedrock stream), and the
        provider's own reason (`length`, an `incomplete` Responses status with
        `max_output_tokens`, Gemini's `MAX_TOKENS`, Bedrock's `max_tokens`)."""
        self._state.add_cut_off(provider)

    def queue_usage(
        self,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        provider: str | None = None,
        count: int = 1,
    ) -> None:
        """Make the next `count` text answers (of `provider`, or any) report prompt tokens
        served from (`cache_read_tokens`) or written to (`cache_write_tokens`) the provider's
        prompt cache, and `reasoning_tokens`, in each provider's own usage fields.

        The cached tokens are prompt tokens on top of the request's own; each provider reports
        them its way: OpenAI's `prompt_tokens_details.cached_tokens` / `cache_write_tokens`
        (within `prompt_tokens`; the Responses API's `input_tokens_details`), Bedrock's
        `cacheReadInputTokens` / `cacheWriteInputTokens` (outside `inputTokens`), Gemini's
        `cachedContentTokenCount` (within `promptTokenCount`). Reasoning tokens are OpenAI's
        `completion_tokens_details.reasoning_tokens` (within `completion_tokens`; Responses:
        `output_tokens_details`) and Gemini's `thoughtsTokenCount`; Bedrock reports none.
        Gemini reports no cache writes.
        """
        counts = (cache_read_tokens, cache_write_tokens, reasoning_tokens)
        if any(type(n) is not int or n < 0 for n in counts):
            raise ValueError("token counts must be integers >= 0")
        script = UsageScript(cache_read_tokens, cache_write_tokens, reasoning_tokens, provider)
        self._state.add_usage(script, count)

    def queue_raw(self, payload: Any, provider: str | None = None) -> None:
        """Answer the next request (of `provider`, or any) with `payload` exactly, HTTP 200,
        whatever it asks: as the JSON body, or for a streamed request `payload` is the list of
        its events, each sent in the provider's framing (an SSE `data:` event on OpenAI and
        Gemini, a string such as `"[DONE]"` as it is; on Bedrock one event-stream frame per
        `{event_type: payload}`). For answers no provider should send: how does a client cope?
        """
        self._state.add_raw(RawAnswer(payload, provider))

    def queue_tool_call(
        self, name: str, arguments: dict[str, Any], provider: str | None = None
    ) -> None:
        """Answer the next request that offers tools with a call of tool `name`.

        Calls queue up in order, one per request. Without a queued call, a request whose last
        message is a tool result gets a text answer quoting that result.
        """
        self._state.add_tool_call(ToolCall(name, dict(arguments), provider))

    # -- serving ---------------------------------------------------------------------------

    def _dispatch(
        self, method: str, target: str, raw_body: bytes, headers: dict[str, str]
    ) -> Reply:
        """Route one request, log it, apply the plan, and build the provider's reply."""
        path = target.partition("?")[0]
        found = _match_route(path)
        if found is None or method != "POST":
            return _not_found(method, path)
        wire, route, match = found
        try:
            body = _parse_body(raw_body)
        except ValueError as exc:
            return wire.error(400, f"The request body is not a JSON object: {exc}")
        groups = match.groupdict()
        model = unquote(groups["model"]) if "model" in groups else str(body.get("model", ""))
        operation = route.operation_for(body)
        plan = self._state.admit(
            RecordedRequest(wire.provider, operation, model, path, body, recorded_headers(headers)),
            streamed=operation.endswith("_stream"),
            offers_tools=wire.offers_tools(body),
        )
        if plan.latency:
            time.sleep(plan.latency)
        if plan.fail_status is not None:
            return wire.error(plan.fail_status, status_phrase(plan.fail_status))
        if plan.raw is not None:
            payload = plan.raw.payload
            return (
                wire.raw_stream(payload) if operation.endswith("_stream") else json_reply(payload)
            )
        exchange = Exchange(wire.provider, operation, model, body, plan)
        try:
            return wire.handlers[operation](exchange)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            logger.debug("spark.testing: cannot answer %s %s", method, path, exc_info=True)
            return wire.error(400, f"The local provider server cannot read this request: {exc}")


def _match_route(path: str) -> tuple[Wire, Route, re.Match[str]] | None:
    for wire, route in _ROUTES:
        match = route.pattern.match(path)
        if match is not None:
            return wire, route, match
    return None


def _parse_body(raw_body: bytes) -> JsonObject:
    body = json.loads(raw_body or b"{}")
    if not isinstance(body, dict):
        raise ValueError(f"expected an object, got {type(body).__name__}")
    return body


def _not_found(method: str, path: str) -> Reply:
    message = f"spark.testing.ProviderServer has no route for {method} {path}"
    return json_reply({"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, 404)
