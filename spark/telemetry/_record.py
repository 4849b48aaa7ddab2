"""What one observed model call did, and the span and counter attributes that say it.

Pure: no OpenTelemetry import. The model layer notes the cache a call used, the cache's answer
and the provider's priced answer into the call's record (``hooks.py``); the attribute names are
those of docs/telemetry.md (the OpenTelemetry GenAI conventions plus ``spark.*``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spark.cache import BoundCache, CacheRequest
    from spark.types import EmbeddingResponse, ModelResponse

__all__ = [
    "COUNTER_NAME",
    "CURRENT_CALL",
    "PROVIDER_NAMES",
    "SCOPE_NAME",
    "CallRecord",
    "error_type",
    "provider_name",
]

#: The instrumentation scope (tracer and meter name) of Spark's spans and metrics.
SCOPE_NAME = "spark"
#: The counter of model calls by cache result (``spark.cache.result``: hit, miss, bypass).
COUNTER_NAME = "spark.cache.requests"

#: Spark's provider names -> ``gen_ai.provider.name`` values of the GenAI conventions.
PROVIDER_NAMES: Mapping[str, str] = {
    "openai": "openai",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "echo": "spark.echo",  # Spark's offline model: no convention value, so Spark's own namespace
}

#: The record of the observed call running in this context (None: no call is observed).
CURRENT_CALL: ContextVar[CallRecord | None] = ContextVar("spark_telemetry_call", default=None)

Attributes = dict[str, str | bool | int | float]


def provider_name(provider: str) -> str:
    """The ``gen_ai.provider.name`` of a Spark provider (unknown ones keep their name)."""
    return PROVIDER_NAMES.get(provider, provider)


@dataclass(slots=True)
class CallRecord:
    """One model call as telemetry sees it.

    ``noted`` turns true when the call chose its cache (``cache`` None: made uncached);
    ``cached``/``stored`` come from the cache's answer, ``paid`` from the provider's priced
    answer; ``error`` is what the call raised.
    """

    operation: str  # "chat" | "embeddings"
    provider: str
    model_id: str
    noted: bool = False
    cache: BoundCache | None = None
    request: CacheRequest | None = None
    cached: bool | None = None
    stored: Mapping[str, Any] | None = None
    paid: ModelResponse | EmbeddingResponse | None = None
    error: BaseException | None = None
    called: bool = False  # it reached the provider (``note_called``)
    sealed: bool = False  # the model's cache encrypts: no text of the call goes in the span

    @property
    def span_name(self) -> str:
        """``{gen_ai.operation.name} {gen_ai.request.model}``."""
        return f"{self.operation} {self.model_id}"

    @property
    def result(self) -> str | None:
        """``hit``, ``miss`` or ``bypass``; None when the call failed before choosing its cache
        (bad arguments: not a cache request at all).

        A cached call with no cache answer noted (a stream) is a hit unless the provider was
        called or the call failed.
        """
        if not self.noted:
            return None
        if self.cache is None:
            return "bypass"
        if self.cached is not None:
            return "hit" if self.cached else "miss"
        reached = self.called or self.paid is not None or self.error is not None
        return "miss" if reached else "hit"

    def start_attributes(self) -> Attributes:
        """What is known before the call runs."""
        return {
            "gen_ai.operation.name": self.operation,
            "gen_ai.provider.name": provider_name(self.provider),
            "gen_ai.request.model": self.model_id,
        }

    def counter_attributes(self, result: str) -> Attributes:
        """The attributes of this call's ``spark.cache.requests`` increment."""
        attributes = self.start_attributes()
        attributes["spark.cache.result"] = result
        if self.error is not None:
            attributes["error.type"] = error_type(self.error)
        return attributes

    def end_attributes(self) -> Attributes:
        """What the call did: cache result and mode, tokens, cost and saved cost."""
        result = self.result
        if result is None:
            return {}
        mode = self.cache.policy.mode if self.cache is not None else "off"
        attributes: Attributes = {"spark.cache.hit": result == "hit", "spark.cache.mode": mode}
        if self.error is not None:
            return attributes
        answered = getattr(self.paid, "response_model", None) or (self.stored or {}).get(
            "response_model"
        )
        if isinstance(answered, str):  # the model that answered (docs/telemetry.md)
            attributes["gen_ai.response.model"] = answered
        if result == "hit":  # nothing reached the provider: no tokens, nothing paid
            attributes.update(self._tokens({}))
            attributes["spark.cost.usd"] = 0.0
            saved = _amount(self.stored.get("cost_usd") if self.stored is not None else None)
            if saved is not None:
                attributes["spark.cost.saved_usd"] = saved
            return attributes
        usage, cost = self._paid_usage_and_cost()
        if usage is not None:  # (unknown, as for a stream stopped early: no counts, not zeros)
            attributes.update(self._tokens(usage))
        if cost is not None:  # an unknown price is left out, never reported as $0
            attributes["spark.cost.usd"] = cost
        attributes["spark.cost.saved_usd"] = 0.0
        return attributes

    def _paid_usage_and_cost(self) -> tuple[Mapping[str, Any] | None, float | None]:
        if self.paid is not None:
            usage = self.paid.usage
            counts = {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_tokens": getattr(usage, "cache_read_tokens", 0),
            }
            return counts, _amount(self.paid.cost_usd)
        if self.stored is not None:
            return self.stored.get("usage") or {}, _amount(self.stored.get("cost_usd"))
        return None, None  # (a stream stopped early: the provider's usage never came)

    def _tokens(self, usage: Mapping[str, Any]) -> Attributes:
        tokens: Attributes = {"gen_ai.usage.input_tokens": _count(usage.get("input_tokens"))}
        if self.operation == "chat":  # an embeddings call has no output tokens
            tokens["gen_ai.usage.output_tokens"] = _count(usage.get("output_tokens"))
            read = _count(usage.get("cache_read_tokens"))
            tokens["gen_ai.usage.cache_read.input_tokens"] = read
        return tokens


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class name (``ProviderError``, ``CacheMissError``)."""
    return type(error).__qualname__


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _amount(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
