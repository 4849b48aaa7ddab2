"""``Model``: what every provider model shares — cache settings, keys, the cached call paths.

A provider subclass only translates: it receives the *normalized request* (the very dict the
cache key is made from, see ``spark.cache.keys``) and returns neutral values. So what is sent is
exactly what is keyed, and the three providers cache alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, TypedDict

from spark.cache import BoundCache, CacheConfig, CacheManager, CacheRequest, CacheResult
from spark.cache.keys import (
    EXCLUDED_PARAMS,
    create_key,
    normalize_embedding_request,
    normalize_request,
)
from spark.errors import ConfigError
from spark.models.pricing import PriceTable, default_price_table
from spark.types import EmbeddingResponse, ModelResponse, Price, ToolSpec

__all__ = ["Messages", "Model", "ModelOptions", "StreamPiece", "resolve_cache_config"]

_NO_OPTIONS: dict[str, Any] = {}
# Decided by which method is called (or meaningless per call), never forwarded.
_CHOSEN_BY_THE_CALL = frozenset({"stream", "stream_options", "encoding_format"})

Messages = str | Sequence[Mapping[str, Any]]
StreamPiece = str | ModelResponse  # text chunks, then one final assembled response


class ModelOptions(TypedDict, total=False):
    """The constructor arguments every model takes besides its provider's options."""

    enable_cache: bool | None
    cache_config: CacheConfig | None
    cache_ttl_seconds: float | None
    cache_dir: Any
    pricing: Price | Mapping[str, Price] | None
    default_params: Mapping[str, Any] | None


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
    ) -> None:
        self.model_id = model_id
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
        self.default_params: dict[str, Any] = dict(default_params or {})
        self.prices = _price_table(model_id, pricing)

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
        """The key ``get_text(messages, **kwargs)`` reads and writes (namespace and defaults in)."""
        return self._chat_request(messages, kwargs)[0].key

    def _chat_request(
        self, messages: Messages, kwargs: dict[str, Any]
    ) -> tuple[CacheRequest, dict[str, Any]]:
        """The cache request, and the per-call options that go to the provider unkeyed."""
        if self.default_params:
            kwargs = {**self.default_params, **kwargs}
        options = self._call_options(kwargs) if kwargs.keys() & EXCLUDED_PARAMS else _NO_OPTIONS
        tools = kwargs.get("tools")
        if tools:
            kwargs["tools"] = [t.to_dict() if isinstance(t, ToolSpec) else t for t in tools]
        cache = self._cache
        if cache is not None:
            return cache.chat_request(self.provider, self.model_id, messages, **kwargs), options
        kwargs.setdefault("namespace", self.cache_config.namespace)
        normalized = normalize_request(self.provider, self.model_id, messages, **kwargs)
        return CacheRequest(self.provider, self.model_id, "", normalized), options

    def _call_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Pop the options that never change the answer (``user``, ``metadata``, ``timeout``,
        headers, ...) so they reach the provider without entering the key."""
        options: dict[str, Any] = {}
        for name in list(kwargs.keys() & EXCLUDED_PARAMS):
            value = kwargs.pop(name)
            if value is None or name in _CHOSEN_BY_THE_CALL:
                continue
            if name not in self.call_options:
                supported = ", ".join(sorted(self.call_options)) or "none"
                raise ConfigError(
                    f"{name} is not a per-call option of {self.provider} models (per-call options:"
                    f" {supported}); credentials, endpoints and retries go to the constructor"
                )
            options[name] = value
        return options

    # -- text -----------------------------------------------------------------------------

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
        request, options = self._chat_request(messages, params)
        if self._cache is None:
            return self._priced(await self._complete(request.normalized, options)).text
        result = await self._cached_call(self._cache, request, options)
        return result.response.get("text") or ""  # the hit path: no response object needed

    async def generate(self, messages: Messages, **kwargs: Any) -> ModelResponse:
        """The whole answer: text, tool calls, finish reason, usage, cost, ``cached``.

        Takes the same arguments as ``get_text``.
        """
        request, options = self._chat_request(messages, kwargs)
        if self._cache is None:
            return self._priced(await self._complete(request.normalized, options))
        result = await self._cached_call(self._cache, request, options)
        return ModelResponse.from_dict(
            result.response, cached=result.cached, provider=self.provider, model_id=self.model_id
        )

    async def _cached_call(
        self, cache: BoundCache, request: CacheRequest, options: Mapping[str, Any]
    ) -> CacheResult:
        async def call() -> dict[str, Any]:
            return self._priced(await self._complete(request.normalized, options)).to_dict()

        return await cache.get_or_call(request, call)

    async def stream_text(self, messages: Messages, **kwargs: Any) -> AsyncIterator[str]:
        """Yield the answer in text chunks; a cached answer is replayed chunk by chunk.

        The entry is stored only when the stream completes: a stream that fails or is abandoned
        half-way stores nothing. A plain call and a streamed call of one request share an entry.
        """
        request, options = self._chat_request(messages, kwargs)
        cache = self._cache
        if cache is not None and cache.policy.reads:
            response = cache.lookup(request)
            if response is not None:
                cache.count_hit(request, response)
                for chunk in response.get("chunks") or [response.get("text") or ""]:
                    yield chunk
                return
            if cache.policy.replay:
                cache.count_miss(request, None)
                raise cache.replay_miss(request)
        chunks: list[str] = []
        final: ModelResponse | None = None
        async for piece in self._stream(request.normalized, options):
            if isinstance(piece, str):
                chunks.append(piece)
                yield piece
            else:
                final = piece
        if cache is not None:
            if final is None:
                final = ModelResponse(text="".join(chunks))
            stored = self._priced(final).to_dict()
            stored["chunks"] = chunks
            cache.count_miss(request, stored)
            cache.save(request, stored)

    # -- embeddings -----------------------------------------------------------------------

    async def embed(self, texts: str | Sequence[str], **params: Any) -> EmbeddingResponse:
        """Vectors for one text or a batch (the batch is one cache entry)."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        cache = self._cache
        clean = {k: v for k, v in params.items() if v is not None and k not in EXCLUDED_PARAMS}
        if cache is None:
            return self._priced_embedding(await self._embed(batch, clean))
        request = cache.embedding_request(self.provider, self.model_id, batch, **clean)

        async def call() -> dict[str, Any]:
            return self._priced_embedding(await self._embed(batch, clean)).to_dict()

        result = await cache.get_or_call(request, call)
        return EmbeddingResponse.from_dict(result.response, cached=result.cached)

    def embedding_cache_key(self, texts: str | Sequence[str], **params: Any) -> str:
        """The key ``embed(texts, **params)`` reads and writes."""
        normalized = normalize_embedding_request(
            self.provider, self.model_id, texts, namespace=self.cache_config.namespace, **params
        )
        return create_key(normalized)

    # -- cost -----------------------------------------------------------------------------

    def _priced(self, response: ModelResponse) -> ModelResponse:
        cost = self.prices.cost(self.model_id, response.usage)
        return ModelResponse(
            text=response.text,
            tool_calls=response.tool_calls,
            finish_reason=response.finish_reason,
            usage=response.usage,
            cost_usd=cost,
            cached=False,
            provider=self.provider,
            model_id=self.model_id,
        )

    def _priced_embedding(self, response: EmbeddingResponse) -> EmbeddingResponse:
        # No token count (Gemini's API-key endpoint reports none): the cost is unknown, not 0.
        counted = response.usage.total_tokens > 0
        cost = self.prices.cost(self.model_id, response.usage) if counted else None
        return EmbeddingResponse(response.embeddings, response.usage, cost, cached=False)

    # -- what a provider implements -------------------------------------------------------

    #: Per-call options this provider accepts (excluded from keys, passed to the SDK call).
    call_options: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    async def _complete(
        self, request: Mapping[str, Any], options: Mapping[str, Any]
    ) -> ModelResponse:
        """Call the provider for a normalized chat request (no cache involved)."""

    @abstractmethod
    def _stream(
        self, request: Mapping[str, Any], options: Mapping[str, Any]
    ) -> AsyncIterator[StreamPiece]:
        """Stream a normalized chat request: text chunks, then the assembled response."""

    @abstractmethod
    async def _embed(self, texts: list[str], params: Mapping[str, Any]) -> EmbeddingResponse:
        """Embed a batch of texts."""


def _price_table(model_id: str, pricing: Price | Mapping[str, Price] | None) -> PriceTable:
    if pricing is None:
        return default_price_table()
    if isinstance(pricing, Price):
        return PriceTable({model_id: pricing})
    return PriceTable(pricing)
