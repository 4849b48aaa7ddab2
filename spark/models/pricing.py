"""What a call costs: a built-in table of list prices (USD per 1M tokens, dated), overridable.

A model with no known price costs ``None`` (and logs one warning) — never a made-up number.
Prices change: each entry carries the date it was read; ``[pricing."<model_id>"]`` in spark.toml
or ``pricing=`` on a model overrides them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from spark.types import Price, Usage

__all__ = ["BUILTIN_PRICES", "PriceTable", "default_price_table"]

logger = logging.getLogger("spark.models")

# Public list prices for standard (non-batch, non-cached-input) usage, at the date given.
BUILTIN_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o": Price(2.50, 10.00, "2024-08-06"),
    "gpt-4o-mini": Price(0.15, 0.60, "2024-07-18"),
    "gpt-4.1": Price(2.00, 8.00, "2025-04-14"),
    "gpt-4.1-mini": Price(0.40, 1.60, "2025-04-14"),
    "gpt-4.1-nano": Price(0.10, 0.40, "2025-04-14"),
    "o3-mini": Price(1.10, 4.40, "2025-01-31"),
    "text-embedding-3-small": Price(0.02, 0.0, "2024-01-25"),
    "text-embedding-3-large": Price(0.13, 0.0, "2024-01-25"),
    # AWS Bedrock (us-east-1, on-demand)
    "anthropic.claude-3-5-sonnet-20240620-v1:0": Price(3.00, 15.00, "2024-06-20"),
    "anthropic.claude-3-haiku-20240307-v1:0": Price(0.25, 1.25, "2024-03-07"),
    "amazon.titan-embed-text-v2:0": Price(0.02, 0.0, "2024-04-30"),
    # Google Gemini (paid tier, prompts up to 128k/200k tokens)
    "gemini-2.0-flash": Price(0.10, 0.40, "2025-02-05"),
    "gemini-2.5-flash": Price(0.30, 2.50, "2025-06-17"),
    "gemini-2.5-pro": Price(1.25, 10.00, "2025-06-17"),
    "gemini-1.5-flash": Price(0.075, 0.30, "2024-10-01"),
    "gemini-embedding-001": Price(0.15, 0.0, "2025-07-14"),
}


class PriceTable:
    """Prices by model id: the built-in table with overrides on top."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self.prices: dict[str, Price] = {**BUILTIN_PRICES, **(overrides or {})}
        self._warned: set[str] = set()

    def price(self, model_id: str) -> Price | None:
        """The price of ``model_id``; Bedrock's regional prefixes (``us.``, ``eu.``) are ignored."""
        found = self.prices.get(model_id)
        if found is None and (model_id[:3] in ("us.", "eu.") or model_id[:5] == "apac."):
            found = self.prices.get(model_id.split(".", 1)[1])
        return found

    def cost(self, model_id: str, usage: Usage) -> float | None:
        """USD for ``usage`` on ``model_id``, or None (with one warning) when unpriced."""
        price = self.price(model_id)
        if price is None:
            if model_id not in self._warned:
                self._warned.add(model_id)
                logger.warning(
                    "no price known for model %r: its cost is reported as None; add "
                    '[pricing."%s"] input/output (USD per 1M tokens) to spark.toml',
                    model_id,
                    model_id,
                )
            return None
        return round(price.cost(usage), 10)


_DEFAULT = PriceTable()


def default_price_table() -> PriceTable:
    """The process-wide built-in table."""
    return _DEFAULT
