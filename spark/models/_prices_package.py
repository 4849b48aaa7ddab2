"""The one module that reads ``genai-prices``: a model's rates and a usage's cost at a date.

The package is imported on the first price asked for (it takes about 0.3 s to import, and
``import spark`` must stay quick). Its bundled data is used as shipped: Spark never starts its
``UpdatePrices`` downloader, so no price is fetched over the network (docs/costs.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spark.types import Price, Usage

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, Provider

__all__ = [
    "PROVIDER_IDS",
    "PackageQuote",
    "UnusableUsageError",
    "known_model_ids",
    "package_price",
    "package_quote",
    "package_version",
]

#: Spark's provider names -> the package's provider ids.
PROVIDER_IDS = {"openai": "openai", "bedrock": "aws", "gemini": "google"}
# Tried in turn when the provider is not known (a bare ``PriceTable().cost("gpt-4o", ...)``).
_GUESS_ORDER = ("openai", "aws", "google")
# Bedrock's cross-region inference profiles. The package knows ``global.`` and some regional
# ids itself; the others are priced as the plain model id.
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "ca.", "jp.", "au.")


class UnusableUsageError(ValueError):
    """The package refused a usage (its cached counts exceed its input, say)."""


@dataclass(frozen=True, slots=True)
class PackageQuote:
    """What one call cost by the package's prices, and what its prompt-cache reads saved."""

    cost_usd: float
    provider_cache_saved_usd: float
    model_ref: str  # the package's id of the model that priced it


def package_version() -> str:
    """The installed ``genai-prices`` version."""
    import genai_prices

    return str(genai_prices.__version__)


def package_quote(
    model_id: str, usage: Usage, provider: str | None, when: dt.datetime
) -> PackageQuote | None:
    """The cost of ``usage`` on ``model_id`` at ``when``, or None when the package has no price.

    The saving is the cost of the same call with its cache-read tokens at the full input rate,
    less its cost (same total input, so the same price tier).
    """
    found = _find(model_id, provider)
    if found is None:
        return None
    provider_info, model = found
    cost = _calc(model, provider_info, _package_usage(usage), when)
    saved = Decimal(0)
    if usage.cache_read_tokens:
        full = _calc(model, provider_info, _package_usage(usage, cache_read=False), when)
        saved = max(full - cost, Decimal(0))
    return PackageQuote(float(cost), float(saved), model.id)


def package_price(model_id: str, provider: str | None, when: dt.datetime) -> Price | None:
    """The rates of ``model_id`` at ``when`` (a tiered rate's base tier), or None."""
    found = _find(model_id, provider)
    if found is None:
        return None
    prices = found[1].get_prices(when)
    input_rate = _base(prices.input_mtok)
    if input_rate is None:
        return None
    return Price(
        input_rate,
        _base(prices.output_mtok) or 0.0,
        when.date().isoformat(),
        _base(prices.cache_read_mtok),
        _base(prices.cache_write_mtok),
    )


def known_model_ids(providers: tuple[str, ...]) -> list[str]:
    """The model ids the package prices for Spark's ``providers``: each model's id and the
    exact spellings it matches, sorted."""
    snapshot = _snapshot()
    wanted = {PROVIDER_IDS[name] for name in providers if name in PROVIDER_IDS}
    found: set[str] = set()
    for provider in snapshot.providers:
        if provider.id in wanted:
            for model in provider.models:
                found.add(model.id)
                found.update(_exact_spellings(model.match))
    return sorted(found)


def _exact_spellings(clause: Any) -> list[str]:
    """The ``equals`` strings of a match clause and the ``or`` clauses under it."""
    equals = getattr(clause, "equals", None)
    if isinstance(equals, str):
        return [equals]
    children = getattr(clause, "or_", None) or []
    return [spelling for child in children for spelling in _exact_spellings(child)]


def _base(rate: Any) -> float | None:
    if rate is None:
        return None
    return float(getattr(rate, "base", rate))


def _calc(model: ModelInfo, provider: Provider, usage: Any, when: dt.datetime) -> Decimal:
    try:
        total: Decimal = model.calc_price(usage, provider, genai_request_timestamp=when).total_price
    except ValueError as exc:
        raise UnusableUsageError(str(exc)) from exc
    return total


def _package_usage(usage: Usage, *, cache_read: bool = True) -> Any:
    """The package's ``Usage`` of Spark's (same meanings: input and output are totals)."""
    counts = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens if cache_read else 0,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens,
    }
    from genai_prices import Usage as PackageUsage

    return PackageUsage(**{name: count for name, count in counts.items() if count})


def _find(model_id: str, provider: str | None) -> tuple[Provider, ModelInfo] | None:
    ref = _model_ref(model_id)
    known = PROVIDER_IDS.get(provider or "")
    candidates = (known,) if known else _GUESS_ORDER
    for provider_id in candidates:
        for spelling in _spellings(ref, provider_id):
            found = _lookup(spelling, provider_id)
            if found is not None:
                return found
    return None


def _model_ref(model_id: str) -> str:
    """The model id the package may know: a Bedrock ARN's last part, Gemini's without
    ``models/``."""
    if model_id.startswith("arn:"):
        model_id = model_id.rsplit("/", 1)[-1]
    return model_id.removeprefix("models/")


def _spellings(ref: str, provider_id: str) -> tuple[str, ...]:
    if provider_id == "aws":
        for prefix in _PROFILE_PREFIXES:
            if ref.startswith(prefix):
                return (ref, ref.removeprefix(prefix))
    return (ref,)


def _lookup(ref: str, provider_id: str) -> tuple[Provider, ModelInfo] | None:
    """The package's provider and model of ``ref`` (the package remembers what it found)."""
    snapshot = _snapshot()
    try:
        return snapshot.find_provider_model(ref, None, provider_id, None)
    except LookupError:
        return None


def _snapshot() -> DataSnapshot:
    """The package's price data: its bundled data (unless the application itself started the
    package's ``UpdatePrices``; Spark never does)."""
    from genai_prices import data_snapshot  # heavy: imported when a price is first needed

    return data_snapshot.get_snapshot()
