"""What a call costs: prices from the ``genai-prices`` package at the call's date, with
``[pricing."<model_id>"]`` (spark.toml) or ``pricing=`` (a model) on top (docs/costs.md).

A model with no known price costs ``None`` — "price unknown" — and logs one warning per model
per process; never a made-up number, never $0. Prompt caching is priced: cache-read and
cache-write tokens at their own rates, and what the cache-read tokens saved is reported apart.
Nothing else in Spark imports ``genai-prices`` (``spark.models._prices_package`` does).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from spark.models._prices_package import (
    PROVIDER_IDS,
    UnusableUsageError,
    known_model_ids,
    package_price,
    package_quote,
)
from spark.types import Price, Usage

__all__ = ["BUILTIN_PRICES", "CallCost", "PriceTable", "default_price_table", "dollars_unknown"]

logger = logging.getLogger("spark.models.pricing")
# Bedrock's cross-region inference profile prefixes: an override of the plain id covers them.
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.")
_UNKNOWN = "unknown"
_UNUSABLE = "unusable"


@dataclass(frozen=True, slots=True)
class CallCost:
    """What one paid call cost and what the provider's prompt cache took off it (USD; both
    None when the price is unknown)."""

    cost_usd: float | None
    provider_cache_saved_usd: float | None


_UNPRICED = CallCost(None, None)


class PriceTable:
    """Prices by model id: the package's, with ``overrides`` (USD per 1M tokens) on top."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self.overrides: dict[str, Price] = dict(overrides or {})

    @classmethod
    def of_model(cls, model_id: str, pricing: Price | Mapping[str, Price] | None) -> PriceTable:
        """The table of a model built with ``pricing=``: the default table when None, one
        price for ``model_id``, or prices by model id."""
        if pricing is None:
            return default_price_table()
        return cls({model_id: pricing}) if isinstance(pricing, Price) else cls(pricing)

    def price(
        self, model_id: str, *, provider: str | None = None, when: dt.datetime | None = None
    ) -> Price | None:
        """The rates of ``model_id`` at ``when`` (now when None): an override, else the
        package's (the base tier of a tiered price); None when unknown."""
        override = self._override(model_id)
        if override is not None:
            return override
        return package_price(model_id, provider, when or _now())

    def cost(
        self,
        model_id: str,
        usage: Usage,
        *,
        provider: str | None = None,
        when: dt.datetime | None = None,
    ) -> float | None:
        """USD for ``usage`` on ``model_id``, or None (with one warning) when unpriced."""
        return self.quote(model_id, usage, provider=provider, when=when).cost_usd

    def quote(
        self,
        model_id: str,
        usage: Usage,
        *,
        provider: str | None = None,
        when: dt.datetime | None = None,
    ) -> CallCost:
        """The cost of ``usage`` on ``model_id`` at ``when`` (now when None) and what its
        cache-read tokens saved against the full input rate."""
        override = self._override(model_id)
        if override is not None:
            cost, saved = override.cost(usage), override.cache_saving(usage)
            return CallCost(round(cost, 10), round(saved, 10))
        try:
            quoted = package_quote(model_id, usage, provider, when or _now())
        except UnusableUsageError as exc:
            _warn_once(_UNUSABLE, model_id, str(exc))
            return _UNPRICED
        if quoted is None:
            _warn_once(_UNKNOWN, model_id, "")
            return _UNPRICED
        return CallCost(round(quoted.cost_usd, 10), round(quoted.provider_cache_saved_usd, 10))

    def _override(self, model_id: str) -> Price | None:
        found = self.overrides.get(model_id)
        if found is None and self.overrides:
            for prefix in _PROFILE_PREFIXES:
                if model_id.startswith(prefix):
                    return self.overrides.get(model_id.removeprefix(prefix))
        return found


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(topic: str, model_id: str, detail: str) -> None:
    """One warning per model and topic in this process."""
    with _warned_lock:
        if (topic, model_id) in _warned:
            return
        _warned.add((topic, model_id))
    if topic == _UNKNOWN:
        logger.warning(
            "no price known for model %r: its cost is reported as None (price unknown); add "
            '[pricing."%s"] input/output (USD per 1M tokens) to spark.toml',
            model_id,
            model_id,
        )
    else:
        logger.warning(
            "cannot price a call of model %r (%s): its cost is reported as None", model_id, detail
        )


_DEFAULT = PriceTable()


def default_price_table() -> PriceTable:
    """The process-wide table: the package's prices, no overrides."""
    return _DEFAULT


class _PackagePrices(Mapping[str, Price]):
    """Read-only ``{model_id: Price}`` of the package's prices today, by the ids of the three
    providers Spark speaks (kept for code that read the former built-in table)."""

    def __getitem__(self, model_id: str) -> Price:
        found = _DEFAULT.price(model_id)
        if found is None:
            raise KeyError(model_id)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(known_model_ids(tuple(PROVIDER_IDS)))

    def __len__(self) -> int:
        return sum(1 for _ in self)


#: The package's prices as a mapping by model id (looked up when read).
BUILTIN_PRICES: Mapping[str, Price] = _PackagePrices()


def dollars_unknown(
    provider: str, model_id: str, calls: int, dollars: float, pricing: Mapping[str, Price]
) -> bool:
    """Whether a model's ``calls`` were counted with no dollars because their cost is not
    known: no price for it (here or in ``pricing``), or calls that could not be priced (an
    embedding whose provider reported no token count). Their sums show as "price unknown",
    never as $0 (docs/costs.md). A call of a known price costs more than $0; a free model
    (EchoModel, a price of 0) is known to cost nothing."""
    if not calls or dollars or provider == "echo":
        return False
    price = PriceTable(pricing).price(model_id, provider=provider)
    return price is None or bool(price.input_per_million or price.output_per_million)
