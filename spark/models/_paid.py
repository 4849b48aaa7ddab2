"""What a provider call cost: every answer of a provider is priced here once (docs/costs.md).

``priced`` and ``priced_embedding`` put the cost on an answer (None when the model has no
price, or an embedding's provider reported no token count: unknown, never $0), count the call
for the pytest plugin's report of live calls, and hand it to telemetry.
"""

from __future__ import annotations

import dataclasses

from spark.models._tally import count_provider_call
from spark.models.pricing import PriceTable
from spark.telemetry.hooks import note_paid
from spark.types import EmbeddingResponse, ModelResponse

__all__ = ["priced", "priced_embedding"]


def priced(
    prices: PriceTable,
    provider: str,
    model_id: str,
    priced_as: str,
    response: ModelResponse,
    *,
    counted: bool = False,
) -> ModelResponse:
    """The provider's answer to a text call of ``model_id`` with its cost (``priced_as``: the
    model id the price table knows it by); ``counted``: the call was counted already."""
    if not counted:
        count_provider_call(provider)
    cost = prices.quote(priced_as, response.usage, provider=provider)
    paid = dataclasses.replace(
        response,
        cost_usd=cost.cost_usd,
        provider_cache_saved_usd=cost.provider_cache_saved_usd,
        cached=False,
        provider=provider,
        model_id=model_id,
    )
    return note_paid(paid)


def priced_embedding(
    prices: PriceTable, provider: str, priced_as: str, response: EmbeddingResponse
) -> EmbeddingResponse:
    """The provider's answer to an embeddings call with its cost."""
    count_provider_call(provider)
    usage = response.usage
    counted = usage.total_tokens > 0  # (Gemini's API-key endpoint reports no count)
    cost = prices.cost(priced_as, usage, provider=provider) if counted else None
    return note_paid(EmbeddingResponse(response.embeddings, usage, cost, cached=False))
