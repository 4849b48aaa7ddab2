"""``GeminiModel``: Spark's cache in front of Google Gemini (``google-genai``, API-key mode).

Requests are prepared by ``_gemini_convert`` (pure) and answers read by ``_gemini_answers``.

The SDK is imported lazily, when the first provider call builds the client: importing this
module or answering from the cache never loads it. SDK exceptions become Spark errors in one
place, ``_provider_errors``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from spark.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    SparkError,
    error_class_for_status,
)
from spark.models import _gemini_convert as convert
from spark.models._answer_checks import malformed_answer
from spark.models._gemini_answers import PROVIDER, ResponseAssembler, embedding_response
from spark.models._loop_clients import LoopClients
from spark.models.base import Messages, Model, ModelOptions, StreamPiece
from spark.types import EmbeddingResponse, ModelResponse

if TYPE_CHECKING:
    from google.genai import Client

    from spark.models.wire import WireCall

__all__ = ["GeminiModel"]

_INSTALL_HINT = (
    "GeminiModel needs the google-genai SDK: pip install google-genai (in a Spark checkout: pip"
    " install -e '.[gemini]')"
)
# Transport failures are recognised by class name, so one table serves whichever HTTP stack
# the SDK runs on (httpx, httpx2 or aiohttp) without importing any of them here.
_CONNECT_FAILURES = frozenset(
    {"ConnectError", "TimeoutException", "ClientConnectorError", "ServerTimeoutError"}
)
_STREAM_BREAKS = frozenset(
    {"ProtocolError", "ReadError", "ServerDisconnectedError", "ClientPayloadError"}
)
_NETWORK_FAILURES = frozenset({"NetworkError", "TransportError", "ClientConnectionError"})


class GeminiModel(Model):
    """A Gemini chat or embedding model behind Spark's cache.

    Provider options left as ``None`` keep the SDK's own behaviour: ``google-genai`` (3.x) reads
    ``GOOGLE_API_KEY`` (or ``GEMINI_API_KEY``) and ``GOOGLE_GEMINI_BASE_URL`` itself, so Spark
    never reads or overrides them; ``base_url`` given here wins over the variable. ``timeout``
    is in seconds (the SDK takes milliseconds); ``max_retries=N`` means N retries after the
    first attempt (``HttpRetryOptions(attempts=N + 1)``), and without it the SDK's default
    (no retries) stays. ``client`` injects a ready ``google.genai.Client``, used as given.

    Per call, every ``GenerateContentConfig`` field is accepted (snake or camel case) and sent
    where the SDK sends it, besides Spark's own names (``max_tokens``, ``stop``, ``n``,
    ``output_schema``, ...); ``timeout`` (seconds), ``headers`` and ``http_options`` are
    transport, never keyed. See docs/models.md ("Gemini") for the field table.
    """

    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        model_id: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        client: Client | None = None,
        **model_options: Unpack[ModelOptions],
    ) -> None:
        super().__init__(model_id, **model_options)
        if max_retries is not None and max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._max_retries = max_retries
        self._injected_client = client
        self._clients: LoopClients[Client] = LoopClients(self._build_client, _close_client)

    # -- the SDK client -------------------------------------------------------------------

    def _sdk_client(self) -> Client:
        """The injected client, else the client of the running event loop (built on first use,
        closed when that loop shuts down: see ``spark.models._loop_clients``). The SDK's async
        connection pool belongs to one loop, so a second ``asyncio.run`` gets its own client."""
        if self._injected_client is not None:
            return self._injected_client
        return self._clients.current()

    async def _client(self) -> Client:
        """``_sdk_client``, after closing the clients of loops closed without shutting down."""
        client = self._sdk_client()
        await self._clients.close_stale()
        return client

    async def aclose(self) -> None:
        """Close the SDK client(s) this model built; an injected client is left to its owner.

        Optional: the client of a loop is closed when that loop shuts down (``asyncio.run``
        returns), so scripts need not call it; long-lived loops may, to release connections.
        """
        await self._clients.close_current()
        await self._clients.close_stale()

    def _build_client(self) -> Client:
        try:
            from google import genai
            from google.genai import types
        except ImportError as exc:
            raise ConfigError(_INSTALL_HINT) from exc
        options: dict[str, Any] = {}
        if self._base_url is not None:
            options["base_url"] = self._base_url
        if self._timeout is not None:
            options["timeout"] = round(self._timeout * 1000)
        if self._max_retries is not None:
            options["retry_options"] = types.HttpRetryOptions(attempts=self._max_retries + 1)
        try:
            return genai.Client(api_key=self._api_key, http_options=types.HttpOptions(**options))
        except ValueError as exc:  # e.g. no api_key and no GOOGLE_API_KEY
            raise AuthenticationError(
                f"cannot set up Gemini model {self.model_id!r}: {exc} (pass api_key= or set "
                "GOOGLE_API_KEY)",
                provider=PROVIDER,
            ) from exc

    # -- what the base class asks of a provider -----------------------------------------

    def _cache_model_id(self) -> str:
        return convert.cache_model_id(self.model_id)

    def _prepare_chat(self, messages: Messages, params: Mapping[str, Any]) -> WireCall:
        return convert.prepare_chat(self.model_id, messages, params)

    def _prepare_embedding(self, texts: list[str], params: Mapping[str, Any]) -> WireCall:
        return convert.prepare_embedding(self.model_id, texts, params)

    async def _complete(self, call: WireCall) -> ModelResponse:
        """One ``generate_content`` call: every candidate, usage."""
        client = await self._client()
        with _provider_errors(self.model_id):
            response = await client.aio.models.generate_content(**call.arguments)
        assembler = ResponseAssembler()
        assembler.feed(response)
        return assembler.result()

    async def _stream(self, call: WireCall) -> AsyncIterator[StreamPiece]:
        """Stream a ``generate_content_stream`` call: the first candidate's text pieces, then the
        whole answer (every candidate, kept apart by index).

        A stream that errors, drops or ends without a finish reason raises
        ``ProviderServerError`` (or the error its in-stream status maps to).
        """
        client = await self._client()
        with _provider_errors(self.model_id):
            stream = await client.aio.models.generate_content_stream(**call.arguments)
        assembler = ResponseAssembler()
        chunks = aiter(stream)
        try:
            while True:
                # Only the SDK's I/O is wrapped, never our ``yield``: an exception the caller
                # throws into this generator must not be mistaken for a provider error.
                with _provider_errors(self.model_id, streaming=True, started=assembler.started):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                for piece in assembler.feed(chunk):
                    yield piece
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:  # the caller stopped early: release the HTTP response
                await close()
        if not assembler.finished:
            raise ProviderServerError(
                f"Gemini model {self.model_id!r}: the stream ended before the answer finished",
                provider=PROVIDER,
            )
        yield assembler.result()

    async def _embed(self, call: WireCall) -> EmbeddingResponse:
        """One ``embed_content`` call for a batch."""
        client = await self._client()
        with _provider_errors(self.model_id):
            response = await client.aio.models.embed_content(**call.arguments)
        return embedding_response(response, len(call.arguments["contents"]))


async def _close_client(client: Client) -> None:
    """Close both halves of a google-genai client: the async pool, then the sync one."""
    try:
        await client.aio.aclose()
    finally:
        client.close()


@contextmanager
def _provider_errors(
    model_id: str, *, streaming: bool = False, started: bool = False
) -> Iterator[None]:
    """Translate the SDK's exceptions into Spark's, once, keeping the SDK's as ``__cause__``.

    While a stream is being read (``streaming``; the SDK sends the request on the first read),
    a dropped connection is a broken stream (a server-side failure), not a failure to connect;
    ``started`` says whether answer text had arrived. Request validation is a bad request.
    """
    try:
        yield
    except SparkError:
        raise
    except Exception as exc:
        what = "the stream broke off" if started else "call failed"
        raise _translate(exc, model_id, streaming, what) from exc


def _translate(exc: Exception, model_id: str, streaming: bool, what: str) -> ProviderError:
    # The SDK raised this, so it is loaded: look it up rather than import (an injected client
    # may be a stand-in with no SDK installed).
    errors = sys.modules.get("google.genai.errors")
    if errors is not None and isinstance(exc, errors.APIError):
        status = exc.code if isinstance(exc.code, int) else None
        cls = _status_error(status, exc.status)
        message = _message(model_id, exc.message or str(exc), what, status, exc.status)
        return cls(message, provider=PROVIDER, status=status)
    names = {klass.__name__ for klass in type(exc).__mro__}
    if "ValidationError" in names and str(getattr(exc, "title", "")).endswith("Response"):
        return malformed_answer(PROVIDER, model_id, exc)  # the SDK cannot read the answer
    if names & _CONNECT_FAILURES or isinstance(exc, TimeoutError):
        cls = ProviderConnectionError
    elif names & _STREAM_BREAKS and streaming:
        cls = ProviderServerError
    elif names & _NETWORK_FAILURES or isinstance(exc, ConnectionError):
        cls = ProviderServerError if streaming else ProviderConnectionError
    elif errors is not None and isinstance(exc, errors.UnknownApiResponseError):
        cls = ProviderServerError
    elif "ValidationError" in names or isinstance(exc, ValueError):
        cls = BadRequestError
    else:
        cls = ProviderError
    if streaming and cls is ProviderServerError:
        what = "the stream broke off"
    detail = str(exc) or type(exc).__name__
    return cls(_message(model_id, detail, what, None, None), provider=PROVIDER)


def _status_error(status: int | None, word: str | None) -> type[ProviderError]:
    if word == "RESOURCE_EXHAUSTED":
        return RateLimitError
    if status is None:
        return ProviderError
    return error_class_for_status(status)


def _message(model_id: str, detail: str, what: str, status: int | None, word: str | None) -> str:
    """Which model failed and how, with the provider's own message (never credentials)."""
    code = ""
    if status is not None:
        code = f" with HTTP {status} {word}" if word else f" with HTTP {status}"
    return f"Gemini model {model_id!r}: {what}{code}: {detail}"
