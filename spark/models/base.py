"""``Model``: what every provider model shares — cache settings, keys, the cached call paths.

A provider supplies a pure translation module (``prepare_chat`` / ``prepare_embedding``, see
``spark.models.wire``) and the SDK calls. The cache key is made from the prepared call's
``body`` — the request as the SDK puts it on the wire, less what cannot change the answer — so
what is sent is exactly what is keyed (docs/models.md, "Keys").
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, TypedDict

from spark.cache import BoundCache, CacheConfig, CacheManager, CacheRequest, CacheResult
from spark.cache.bound import make_request
from spark.errors import ConfigError, StructuredOutputError
from spark.models._answer_checks import check_shape, checked_stream, malformed_answers
from spark.models._controls import CallControls, pop_controls, warn_bypass
from spark.models._paid import priced, priced_embedding
from spark.models._tally import count_provider_call
from spark.models.pricing import PriceTable
from spark.models.structured import StructuredSchema, structured_schema
from spark.models.wire import WireCall, call_params
from spark.telemetry.hooks import note_cache, note_called, note_result, observed, observed_stream
from spark.types import EmbeddingResponse, ModelResponse, Price

__all__ = [
    "Messages",
    "Model",
    "ModelOptions",
    "StreamPiece",
    "resolve_cache_config",
]

Messages = str | Sequence[Mapping[str, Any]]
StreamPiece = str | ModelResponse  # text chunks (of the first choice), then the whole response


class ModelOptions(TypedDict, total=False):
    """The constructor arguments every model takes besides its provider's options."""

    enable_cache: bool | None
    cache_config: CacheConfig | None
    cache_ttl_seconds: float | None
    cache_dir: Any
    pricing: Price | Mapping[str, Price] | None
    default_params: Mapping[str, Any] | None
    params: Mapping[str, Any] | None
    telemetry: bool


def resolve_cache_config(
    enable_cache: bool | None,
    cache_config: CacheConfig | None,
    cache_ttl_seconds: float | None,
    cache_dir: Any,
) -> CacheConfig:
    """Explicit ``enable_cache``/``cache_ttl_seconds``/``cache_dir`` win over ``cache_config``;
    with ``enable_cache=None`` the config decides (default off)."""
    base = cache_config or CacheConfig()
    return base.with_overrides(
        enabled=enable_cache, ttl_seconds=cache_ttl_seconds, cache_dir=cache_dir
    )


class Model(ABC):
    """A provider model with Spark's cache in front of it. All calls are async."""

    provider: ClassVar[str]

    def __init__(
        self,
        model_id: str,
        *,
        enable_cache: bool | None = None,
        cache_config: CacheConfig | None = None,
        cache_ttl_seconds: float | None = None,
        cache_dir: Any = None,
        pricing: Price | Mapping[str, Price] | None = None,
        default_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        telemetry: bool = True,
    ) -> None:
        if params is not None and default_params is not None:
            raise ConfigError("give the default parameters as default_params= or params=, not both")
        self.model_id = model_id
        self.telemetry = telemetry  # a span per call once an OpenTelemetry SDK is configured
        self.cache_config = resolve_cache_config(
            enable_cache, cache_config, cache_ttl_seconds, cache_dir
        )
        self.cache_manager = CacheManager.get_instance(
            self.cache_config.resolved_dir, self.cache_config
        )
        # Binding loads the keys now: a missing key is an error at construction, not mid-call.
        self._cache: BoundCache | None = (
            self.cache_manager.bind(self.cache_config) if self.cache_config.enabled else None
        )
        # (``params=``: the original framework's name for them)
        self.default_params: dict[str, Any] = dict(default_params or params or {})
        self.prices = PriceTable.of_model(self._cache_model_id(), pricing)

    def __repr__(self) -> str:
        state = "on" if self._cache else "off"
        return f"{type(self).__name__}({self.model_id!r}, cache={state})"

    async def aclose(self) -> None:
        """Release provider clients the model built (an injected client is left open)."""
        return None  # nothing to release unless a provider overrides it

    async def __aenter__(self) -> Model:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- keys -----------------------------------------------------------------------------

    def cache_key(self, messages: Messages, **kwargs: Any) -> str:
        """The key ``get_text(messages, **kwargs)`` reads and writes (namespace and defaults in;
        per-call cache controls are not part of it)."""
        pop_controls(kwargs)
        return self._chat_call(messages, kwargs)[0].key

    def embedding_cache_key(self, texts: str | Sequence[str], **params: Any) -> str:
        """The key ``embed(texts, **params)`` reads and writes."""
        pop_controls(params)
        return self._embedding_call(texts, params)[0].key

    def _chat_call(
        self, messages: Messages, kwargs: Mapping[str, Any]
    ) -> tuple[CacheRequest, WireCall]:
        """The prepared provider call of a text call and its cache request."""
        call = self._prepare_chat(messages, call_params(self.default_params, kwargs))
        return self._request("chat", call), call

    def _embedding_call(
        self, texts: str | Sequence[str], kwargs: Mapping[str, Any]
    ) -> tuple[CacheRequest, WireCall]:
        batch = [texts] if isinstance(texts, str) else list(texts)
        call = self._prepare_embedding(batch, call_params(self.default_params, kwargs))
        return self._request("embedding", call), call

    def _request(self, kind: str, call: WireCall) -> CacheRequest:
        namespace = self._cache.namespace if self._cache else self.cache_config.namespace
        return make_request(kind, self.provider, self._cache_model_id(), namespace, call.body)

    def _chat(
        self, messages: Messages, kwargs: dict[str, Any]
    ) -> tuple[BoundCache | None, CacheRequest, WireCall]:
        """A text call's cache (None: made uncached), its request and its prepared call."""
        controls = pop_controls(kwargs)
        request, call = self._chat_call(messages, kwargs)
        cache, call = self._call_cache(controls, call)
        return note_cache(cache, request), request, call

    def _call_cache(
        self, controls: CallControls, call: WireCall
    ) -> tuple[BoundCache | None, WireCall]:
        """The cache one call uses: the model's, or its per-call rules' (docs/caching.md);
        the call, marked as a bypass when it is made past the cache with ``cache_mode="off"``."""
        if call.bypass:  # the answer depends on state the provider holds
            warn_bypass(call.bypass)
            self.cache_manager.counters.record_bypass()
            return None, call
        if controls.mode is None and controls.ttl_seconds is None:
            return self._cache, call
        config = controls.config(self.cache_config, self._cache is not None)
        if config is None:
            if controls.mode == "off":  # (a bypass too: what it spends is counted)
                self.cache_manager.counters.record_bypass()
                return None, call._replace(bypass="cache_mode")
            return None, call
        return self.cache_manager.bind(config), call

    # -- text -----------------------------------------------------------------------------

    @observed("chat")
    async def get_text(
        self,
        messages: Messages,
        *,
        system_prompt: str | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: Any = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **params: Any,
    ) -> str:
        """The answer text (cached per the model's cache settings)."""
        params.update(
            system_prompt=system_prompt,
            tools=tools,
            tool_choice=tool_choice,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        cache, request, call = self._chat(messages, params)
        if cache is None:
            return (await self._answer(call)).text
        result = await self._cached_call(cache, request, call)
        return result.response.get("text") or ""  # the hit path: no response object needed

    @observed("chat")
    async def generate(self, messages: Messages, **kwargs: Any) -> ModelResponse:
        """The whole answer: every choice, tool calls, finish reason, usage, cost, ``cached``.

        Takes the same arguments as ``get_text``.
        """
        cache, request, call = self._chat(messages, kwargs)
        if cache is None:
            return await self._answer(call)
        result = await self._cached_call(cache, request, call)
        return ModelResponse.from_dict(
            result.response, cached=result.cached, provider=self.provider, model_id=self.model_id
        )

    @observed("chat")
    async def get_json(self, schema: Any, messages: Messages, **kwargs: Any) -> Any:
        """The answer as structured data: an instance of ``schema`` (a pydantic ``BaseModel``
        subclass) or the parsed object (``schema`` a JSON-schema dict).

        The provider's native structured output is asked for (docs/models.md, "Structured
        output"); the schema is part of the key. The answer is checked before it is stored: one
        that does not fit raises ``StructuredOutputError`` (with ``raw_text``) and is never
        cached; a stored answer that no longer fits is a miss. Takes ``get_text``'s arguments.
        """
        structured = structured_schema(schema)
        response, value = await self.structured_call(structured, messages, kwargs)
        if response.tool_calls:
            raise StructuredOutputError(
                "the model answered with a tool call, not JSON: get_json reads a text answer"
                " (run tool loops with spark.agents.Agent.run_json)",
                raw_text=response.text,
            )
        return value

    @observed("chat")
    async def structured_call(
        self, structured: StructuredSchema, messages: Messages, kwargs: dict[str, Any]
    ) -> tuple[ModelResponse, Any]:
        """``generate`` asking for ``structured``'s schema: the response and its checked value
        (None for an answer of tool calls, which has no text to check). A text answer that does
        not fit raises ``StructuredOutputError`` and is not stored; a stored one is a miss."""
        for name in ("output_schema", "response_format"):
            if kwargs.get(name) is not None:
                raise ConfigError(f"get_json asks for its schema's format: leave out {name}=")
        kwargs["output_schema"] = structured.spec
        cache, request, call = self._chat(messages, kwargs)

        def value_of(stored: Mapping[str, Any]) -> Any:
            return None if stored.get("tool_calls") else structured.parse(stored.get("text") or "")

        if cache is None:
            response = await self._answer(call)
            return response, value_of(response.to_dict())
        checked: list[Any] = []

        def accept(stored: Mapping[str, Any]) -> bool:
            try:
                checked.append(value_of(stored))
            except StructuredOutputError:
                return False
            return True

        async def answer() -> dict[str, Any]:
            fresh = (await self._answer(call)).to_dict()
            checked.append(value_of(fresh))  # (raises: not stored)
            return fresh

        result = note_result(await cache.get_or_call(request, answer, accept))
        value = checked[-1] if checked else value_of(result.response)
        response = ModelResponse.from_dict(
            result.response, cached=result.cached, provider=self.provider, model_id=self.model_id
        )
        return response, value

    async def _cached_call(
        self, cache: BoundCache, request: CacheRequest, call: WireCall
    ) -> CacheResult:
        async def answer() -> dict[str, Any]:
            return (await self._answer(call)).to_dict()

        return note_result(await cache.get_or_call(request, answer))

    @observed_stream("chat")
    async def stream_text(self, messages: Messages, **kwargs: Any) -> AsyncIterator[str]:
        """Yield the answer (its first choice) in text chunks; a cached answer is replayed as
        the very chunks the provider sent. Streams take the plain calls' cache path (one
        provider call for identical concurrent calls; a plain and a streamed call share an
        entry); the entry is stored only when the stream completes."""
        cache, request, call = self._chat(messages, kwargs)
        if cache is None:
            count_provider_call(self.provider)
            async for piece in checked_stream(self.provider, self.model_id, self._stream(call)):
                if isinstance(piece, str):
                    yield piece
                else:
                    paid = self._priced(piece, counted=True)
                    self._spent(call, paid.cost_usd, paid.provider_cache_saved_usd)
            return
        chunks = cache.stream_or_call(request, lambda: self._stored_stream(call))
        async with contextlib.aclosing(chunks):  # (a stream closed early ends its call now)
            async for chunk in chunks:
                yield chunk

    async def _stored_stream(self, call: WireCall) -> AsyncIterator[str | dict[str, Any]]:
        """The provider's stream: text chunks, then the stored form of the whole answer."""
        note_called()
        chunks: list[str] = []
        final: ModelResponse | None = None
        async for piece in checked_stream(self.provider, self.model_id, self._stream(call)):
            if isinstance(piece, str):
                chunks.append(piece)
                yield piece
            else:
                final = piece
        stored = self._priced(final or ModelResponse(text="".join(chunks))).to_dict()
        stored["chunks"] = chunks
        yield stored

    # -- embeddings -----------------------------------------------------------------------

    @observed("embeddings")
    async def embed(self, texts: str | Sequence[str], **params: Any) -> EmbeddingResponse:
        """Vectors for one text or a batch (the batch is one cache entry)."""
        controls = pop_controls(params)
        request, call = self._embedding_call(texts, params)
        cache, call = self._call_cache(controls, call)
        cache = note_cache(cache, request)
        if cache is None:
            return await self._vectors(call)

        async def answer() -> dict[str, Any]:
            return (await self._vectors(call)).to_dict()

        result = note_result(await cache.get_or_call(request, answer))
        return EmbeddingResponse.from_dict(result.response, cached=result.cached)

    # -- the provider's answers, checked (docs/models.md, "Errors") ------------------------

    async def _answer(self, call: WireCall) -> ModelResponse:
        """The provider's answer to a text call, priced; a malformed one is an error, and so is
        one of a shape the cache's reader would refuse (text not a string, ...)."""
        with malformed_answers(self.provider, self.model_id):
            response = await self._complete(call)
            check_shape(response.to_dict())
        paid = self._priced(response)
        self._spent(call, paid.cost_usd, paid.provider_cache_saved_usd)
        return paid

    async def _vectors(self, call: WireCall) -> EmbeddingResponse:
        """The provider's answer to an embeddings call, priced; a malformed one is an error."""
        with malformed_answers(self.provider, self.model_id):
            response = await self._embed(call)
            check_shape(response.to_dict(), "embedding")
        paid = priced_embedding(self.prices, self.provider, self._cache_model_id(), response)
        self._spent(call, paid.cost_usd)
        return paid

    def _priced(self, response: ModelResponse, *, counted: bool = False) -> ModelResponse:
        """The provider's answer with its cost (``counted``: the call was counted already)."""
        model_ids = (self.model_id, self._cache_model_id())
        return priced(self.prices, self.provider, *model_ids, response, counted=counted)

    def _spent(self, call: WireCall, cost: float | None, saved: float | None = None) -> None:
        """A call made past the cache (a bypass, not a miss) spent ``cost`` all the same."""
        if call.bypass:
            counters = self.cache_manager.counters
            counters.record_paid_past_cache(self.provider, self._cache_model_id(), cost, saved)

    # -- cost -----------------------------------------------------------------------------

    # -- what a provider implements -------------------------------------------------------

    def _cache_model_id(self) -> str:
        """The model id entries are keyed and filed under (one spelling per model)."""
        return self.model_id

    @abstractmethod
    def _prepare_chat(self, messages: Messages, params: Mapping[str, Any]) -> WireCall:
        """The SDK call of a text call (``params``: every keyword, ``None``s removed)."""

    @abstractmethod
    def _prepare_embedding(self, texts: list[str], params: Mapping[str, Any]) -> WireCall:
        """The SDK call of an embeddings call."""

    @abstractmethod
    async def _complete(self, call: WireCall) -> ModelResponse:
        """Make a prepared text call (no cache involved): every choice, usage."""

    @abstractmethod
    def _stream(self, call: WireCall) -> AsyncIterator[StreamPiece]:
        """Stream a prepared text call: the first choice's text chunks, then the response."""

    @abstractmethod
    async def _embed(self, call: WireCall) -> EmbeddingResponse:
        """Make a prepared embeddings call."""
