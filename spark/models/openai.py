"""``OpenAIModel``: Spark's cache in front of OpenAI Chat Completions (or the Responses API,
``api="responses"``) and Embeddings.

The ``openai`` SDK is imported lazily, when the first provider call builds the client: importing
this module or answering from the cache never loads it. SDK exceptions become Spark errors in
one place, ``_provider_errors``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from spark.errors import (
    AuthenticationError,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
    error_class_for_status,
)
from spark.models import _openai_answers as answers
from spark.models import _openai_convert as convert
from spark.models import _openai_responses as responses
from spark.models import _responses_answers as responses_answers
from spark.models._loop_clients import LoopClients
from spark.models.base import Messages, Model, ModelOptions, StreamPiece

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from spark.models.wire import WireCall
    from spark.types import EmbeddingResponse, ModelResponse

__all__ = ["OpenAIModel"]

PROVIDER = "openai"
#: The text APIs an ``OpenAIModel`` can call (docs/models.md, "Responses API").
APIS = ("chat", "responses")
_INSTALL_HINT = (
    "OpenAIModel needs the openai SDK: pip install openai (in a Spark checkout: pip install -e"
    " '.[openai]')"
)


class OpenAIModel(Model):
    """An OpenAI chat or embedding model (or any OpenAI-compatible server) behind Spark's cache.

    Provider options left as ``None`` keep the SDK's own defaults, including its environment
    variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``) and its retries.
    ``client`` injects a ready ``openai.AsyncOpenAI``, used exactly as given. ``api`` picks the
    text API: ``"chat"`` (``chat.completions.create``, the default) or ``"responses"``
    (``responses.create``).
    """

    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        model_id: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        client: AsyncOpenAI | None = None,
        api: str = "chat",
        **model_options: Unpack[ModelOptions],
    ) -> None:
        if api not in APIS:
            allowed = " or ".join(repr(name) for name in APIS)
            raise ConfigError(f"OpenAIModel api must be {allowed}, got {api!r}")
        self.api = api
        super().__init__(model_id, **model_options)
        _check_async_client(client)
        options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "organization": organization,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        # Only what was given: passing None would override the SDK's env lookup and defaults
        # (``timeout=None`` even means "no timeout" to the SDK).
        self._client_options = {name: value for name, value in options.items() if value is not None}
        self._injected_client = client
        self._clients: LoopClients[AsyncOpenAI] = LoopClients(self._build_client, _close_client)

    # -- the SDK client -------------------------------------------------------------------

    async def _sdk_client(self) -> AsyncOpenAI:
        """The injected client, else the client of the running event loop (built on first use,
        closed when that loop shuts down: see ``spark.models._loop_clients``)."""
        if self._injected_client is not None:
            return self._injected_client
        client = self._clients.current()
        await self._clients.close_stale()
        return client

    def _build_client(self) -> AsyncOpenAI:
        try:
            import openai
        except ImportError as exc:
            raise ConfigError(_INSTALL_HINT) from exc
        try:
            return openai.AsyncOpenAI(**self._client_options)
        except openai.OpenAIError as exc:  # e.g. no api_key and no OPENAI_API_KEY
            raise AuthenticationError(
                f"cannot set up OpenAI model {self.model_id!r}: {exc}", provider=PROVIDER
            ) from exc

    async def aclose(self) -> None:
        """Close the SDK client(s) this model built; an injected client is left to its owner.

        Optional: the client of a loop is closed when that loop shuts down (``asyncio.run``
        returns), so scripts need not call it; long-lived loops may, to release connections.
        """
        await self._clients.close_current()
        await self._clients.close_stale()

    # -- provider calls -------------------------------------------------------------------

    def _prepare_chat(self, messages: Messages, params: Mapping[str, Any]) -> WireCall:
        """The ``chat.completions.create`` call (docs/models.md, "OpenAI"), or with
        ``api="responses"`` the ``responses.create`` call."""
        if self.api == "responses":
            return responses.prepare_chat(self.model_id, messages, params)
        return convert.prepare_chat(self.model_id, messages, params)

    def _prepare_embedding(self, texts: list[str], params: Mapping[str, Any]) -> WireCall:
        """The ``embeddings.create`` call."""
        return convert.prepare_embedding(self.model_id, texts, params)

    async def _complete(self, call: WireCall) -> ModelResponse:
        """One Chat Completions call: every choice, logprobs when asked for, usage."""
        client = await self._sdk_client()
        if self.api == "responses":
            with _provider_errors(self.model_id):
                answer = await client.responses.create(**call.arguments)
            return responses_answers.response_from_responses(answer)
        with _provider_errors(self.model_id):
            completion = await client.chat.completions.create(**call.arguments)
        return answers.response_from_completion(completion)

    async def _stream(self, call: WireCall) -> AsyncIterator[StreamPiece]:
        """Stream a Chat Completions call: the first choice's text deltas, then the assembled
        response with every choice.

        A stream that errors or ends without a finish reason raises ``ProviderServerError``.
        """
        if self.api == "responses":
            async for piece in self._stream_responses(call):
                yield piece
            return
        client = await self._sdk_client()
        with _provider_errors(self.model_id):
            stream = await client.chat.completions.create(
                **call.arguments, stream=True, stream_options={"include_usage": True}
            )
        assembler = answers.StreamAssembler()
        async with stream:  # closes the HTTP response if the caller stops early
            chunks = aiter(stream)
            while True:
                # Only the SDK's I/O is wrapped, never our ``yield``: an exception the caller
                # throws into this generator must not be mistaken for a provider error.
                with _provider_errors(self.model_id, streaming=True):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                text = assembler.feed(chunk)
                if text:
                    yield text
        if not assembler.finished:
            raise ProviderServerError(
                f"OpenAI model {self.model_id!r}: the stream ended before the answer finished",
                provider=PROVIDER,
            )
        yield assembler.result()

    async def _stream_responses(self, call: WireCall) -> AsyncIterator[StreamPiece]:
        """Stream a Responses API call: its ``output_text`` deltas, then the response of its
        ``response.completed`` event."""
        client = await self._sdk_client()
        with _provider_errors(self.model_id):
            stream = await client.responses.create(**call.arguments, stream=True)
        assembler = responses_answers.ResponsesStreamAssembler(self.model_id)
        async with stream:
            events = aiter(stream)
            while True:
                with _provider_errors(self.model_id, streaming=True):
                    event = await anext(events, None)
                if event is None:
                    break
                text = assembler.feed(event)
                if text:
                    yield text
        if not assembler.finished:
            raise ProviderServerError(
                f"OpenAI model {self.model_id!r}: the stream ended before the answer finished",
                provider=PROVIDER,
            )
        yield assembler.result()

    async def _embed(self, call: WireCall) -> EmbeddingResponse:
        """One Embeddings call for a batch of texts."""
        client = await self._sdk_client()
        with _provider_errors(self.model_id):
            response = await client.embeddings.create(**call.arguments)
        return answers.embedding_response(response)


async def _close_client(client: AsyncOpenAI) -> None:
    await client.close()


def _check_async_client(client: Any) -> None:
    """Refuse a synchronous ``openai.OpenAI`` early (its calls cannot be awaited)."""
    sdk = sys.modules.get("openai")  # a client was built, so the SDK is loaded: no import here
    if client is not None and sdk is not None and isinstance(client, sdk.OpenAI):
        raise ConfigError(
            f"OpenAIModel needs an openai.AsyncOpenAI client, got {type(client).__name__}"
        )


@contextmanager
def _provider_errors(model_id: str, *, streaming: bool = False) -> Iterator[None]:
    """Translate the SDK's exceptions into Spark's, once, keeping the SDK's as ``__cause__``.

    While a stream is being read, a dropped connection is a broken stream (a server-side
    failure), not a failure to connect.
    """
    import openai

    try:
        yield
    except openai.APIStatusError as exc:
        status = exc.status_code
        cls = error_class_for_status(status)
        raise cls(_message(model_id, exc, status), provider=PROVIDER, status=status) from exc
    except openai.APIConnectionError as exc:  # timeouts included
        if streaming:
            message = _message(model_id, exc, None, "the stream broke off")
            raise ProviderServerError(message, provider=PROVIDER) from exc
        raise ProviderConnectionError(_message(model_id, exc, None), provider=PROVIDER) from exc
    except openai.APIError as exc:  # an error event inside a stream (no HTTP status)
        cls = RateLimitError if exc.code == "rate_limit_exceeded" else ProviderServerError
        message = _message(model_id, exc, None, "the stream broke off")
        raise cls(message, provider=PROVIDER) from exc
    except openai.OpenAIError as exc:
        raise ProviderError(_message(model_id, exc, None), provider=PROVIDER) from exc


def _message(model_id: str, exc: Exception, status: int | None, what: str = "call failed") -> str:
    """Which model failed and how, with the provider's own message (never credentials)."""
    body = getattr(exc, "body", None)
    detail = body.get("message") if isinstance(body, Mapping) else None
    detail = detail or getattr(exc, "message", None) or str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause):
        detail = f"{detail} ({cause})"
    code = f" with HTTP {status}" if status is not None else ""
    return f"OpenAI model {model_id!r}: {what}{code}: {detail}"
