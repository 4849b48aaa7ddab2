"""The figures of a cache report, gathered once as plain JSON-ready data.

The HTML page draws from this dict and embeds it unchanged, so what a reader sees and what a
script reads back (``<script id="spark-data">``) can never disagree; ``spark cache report
--json`` can print it as is.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from spark.cache import admin
from spark.cache.codec import CorruptEntryError
from spark.cache.ledger import LedgerRow
from spark.cache.manager import CacheManager
from spark.errors import ConfigError
from spark.models.pricing import dollars_unknown
from spark.types import Price

__all__ = ["REPORT_SCHEMA", "collect_report_data"]

REPORT_SCHEMA = 1
_DIGITS = 10  # dollars: enough for a fraction of a cent per call, without float noise
_PREVIEW_CHARS = 60


def collect_report_data(
    cache: str | Path | CacheManager,
    *,
    top: int = 20,
    encrypted: bool = False,
    pricing: Mapping[str, Price] | None = None,
) -> dict[str, Any]:
    """Everything the report shows about a cache directory (or a manager's cache, e.g. a Redis
    one), as JSON-ready data.

    Keys: ``schema``, ``generated_at``, ``cache_dir`` (the directory, or the Redis URL and
    prefix), ``totals``, ``days`` (per day, all models), ``ledger`` (per day and model, as the
    ledger holds it), ``providers`` and ``models`` (entries and bytes stored, with the ledger's
    all-time figures), ``top_requests`` (each with its key, provider, model, hits, dollars
    saved, last hit, ``recorded_at`` and ``sealed`` from its entry — None when the entry is
    gone — and a ``preview`` of the question, only from a plaintext entry of a cache that does
    not encrypt: a report of an encrypted cache shows no text of it).
    ``encrypted`` says the cache's rules encrypt (a manager's own rules count too). Each model
    and top request says ``price_known``: false when its calls were counted with no dollars
    because their cost is not known (``pricing``: spark.toml's overrides), never shown as $0.
    A directory that does not exist is a ``ConfigError`` (an empty one gives empty figures).
    """
    manager = cache if isinstance(cache, CacheManager) else _manager_of(cache)
    sealed_cache = encrypted or manager.config.encrypt
    stats = manager.get_stats()
    ledger = manager.counters.ledger
    rows = ledger.rows(by_day=True)
    models = _models(stats, rows)
    unknown = set()
    for model in models:
        calls, dollars = model["hits"] + model["misses"], model["saved_usd"] + model["spent_usd"]
        model["price_known"] = not dollars_unknown(
            model["provider"], model["model_id"], calls, dollars, pricing or {}
        )
        if not model["price_known"]:
            unknown.add((model["provider"], model["model_id"]))
    return {
        "schema": REPORT_SCHEMA,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cache_dir": manager.store.describe(),
        "totals": _totals(stats, rows),
        "days": _days(rows),
        "ledger": [_ledger_row(row) for row in rows],
        "providers": _providers(stats),
        "models": models,
        "top_requests": [
            {
                "key": row.key,
                "provider": row.provider,
                "model_id": row.model_id,
                "hits": row.hits,
                "saved_usd": _usd(row.saved_usd),
                "price_known": (row.provider, row.model_id) not in unknown,
                "last_hit": row.last_hit,
                **_entry_facts(manager, row.key, show_text=not sealed_cache),
            }
            for row in ledger.top_requests(limit=top)
        ],
    }


def _entry_facts(manager: CacheManager, key: str, *, show_text: bool) -> dict[str, Any]:
    """When the entry of ``key`` was recorded, whether it is sealed, and what it asked (only
    for a plaintext entry of a cache that does not encrypt)."""
    facts: dict[str, Any] = {"recorded_at": None, "sealed": None, "preview": None}
    try:
        path = manager.store.find(key)
        content = admin.entry_content(manager.store, path, None) if path else None
    except (OSError, CorruptEntryError):  # gone or damaged: the ledger's figures still stand
        return facts
    if content is None:
        return facts
    facts["recorded_at"], facts["sealed"] = content.meta.created_at, content.meta.sealed
    if show_text and not content.meta.sealed and content.payload is not None:
        facts["preview"] = preview(content.payload.get("request"))
    return facts


def preview(request: Any) -> str | None:
    """The start of a stored request's last message (or first input), on one line:
    ``What is the capital of France?``; None when it holds no text."""
    body = request.get("body") if isinstance(request, Mapping) else None
    if not isinstance(body, Mapping):
        return None
    turns = body.get("messages") or body.get("contents")
    if isinstance(turns, list) and turns:
        source: Any = turns[-1]
    else:
        source = body.get("input") or body.get("inputText") or body.get("texts")
    text = " ".join(re.sub(r"\s+", " ", part).strip() for part in _texts(source)).strip()
    if not text:
        return None
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def _texts(value: Any) -> Iterator[str]:
    """The strings of a message: itself, its ``content``/``text``/``parts``, in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, Mapping):
        for name in ("content", "text", "parts"):
            if name in value:
                yield from _texts(value[name])


def _manager_of(cache_dir: str | Path) -> CacheManager:
    path = Path(cache_dir).expanduser().absolute()
    if not path.is_dir():
        raise ConfigError(f"no cache directory at {path}")
    # The process-wide manager, not a new one: get_stats() flushes its pending ledger counts, so
    # calls this process made a moment ago are in the report.
    return CacheManager.get_instance(path)


def _figures(
    hits: int, misses: int, saved: float, spent: float, prompt_cache_saved: float
) -> dict[str, Any]:
    """Lookups and the three sums: what hits saved, what misses paid, and what the provider's
    prompt caching took off those paid calls (docs/costs.md)."""
    lookups = hits + misses
    return {
        "hits": hits,
        "misses": misses,
        "hit_rate": hits / lookups if lookups else 0.0,
        "saved_usd": _usd(saved),
        "spent_usd": _usd(spent),
        "provider_cache_saved_usd": _usd(prompt_cache_saved),
    }


def _sum_figures(rows: Iterable[LedgerRow]) -> dict[str, Any]:
    hits = misses = 0
    saved = spent = prompt_cache_saved = 0.0
    for row in rows:
        hits, misses = hits + row.hits, misses + row.misses
        saved, spent = saved + row.saved_usd, spent + row.spent_usd
        prompt_cache_saved += row.provider_cache_saved_usd
    return _figures(hits, misses, saved, spent, prompt_cache_saved)


def _totals(stats: Mapping[str, Any], rows: list[LedgerRow]) -> dict[str, Any]:
    return {
        "entries": int(stats.get("total_entries", 0)),
        "size_bytes": int(stats.get("total_size_bytes", 0)),
        **_sum_figures(rows),
    }


def _days(rows: list[LedgerRow]) -> list[dict[str, Any]]:
    by_day: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        by_day[row.day].append(row)
    return [{"day": day, **_sum_figures(by_day[day])} for day in sorted(by_day)]


def _ledger_row(row: LedgerRow) -> dict[str, Any]:
    return {
        "day": row.day,
        "provider": row.provider,
        "model_id": row.model_id,
        **_figures(
            row.hits, row.misses, row.saved_usd, row.spent_usd, row.provider_cache_saved_usd
        ),
    }


def _providers(stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries: Mapping[str, int] = stats.get("entries_by_provider") or {}
    sizes: Mapping[str, int] = stats.get("bytes_by_provider") or {}
    return [
        {
            "provider": name,
            "entries": int(entries.get(name, 0)),
            "size_bytes": int(sizes.get(name, 0)),
        }
        for name in sorted(set(entries) | set(sizes))
    ]


def _models(stats: Mapping[str, Any], rows: list[LedgerRow]) -> list[dict[str, Any]]:
    """One row per provider and model that has entries on disk or figures in the ledger."""
    entries = _per_model(stats.get("entries_by_model"))
    sizes = _per_model(stats.get("bytes_by_model"))
    ledger: dict[tuple[str, str], list[LedgerRow]] = defaultdict(list)
    for row in rows:
        ledger[(row.provider, row.model_id)].append(row)
    names = sorted(set(entries) | set(sizes) | set(ledger))
    return [
        {
            "provider": provider,
            "model_id": model_id,
            "entries": entries.get((provider, model_id), 0),
            "size_bytes": sizes.get((provider, model_id), 0),
            **_sum_figures(ledger.get((provider, model_id), [])),
        }
        for provider, model_id in names
    ]


def _per_model(nested: Any) -> dict[tuple[str, str], int]:
    """``{provider: {model_id: n}}`` flattened to ``{(provider, model_id): n}``."""
    flat: dict[tuple[str, str], int] = {}
    for provider, by_model in (nested or {}).items():
        for model_id, count in by_model.items():
            flat[(str(provider), str(model_id))] = int(count)
    return flat


def _usd(value: float) -> float:
    return round(float(value), _DIGITS)
