"""``spark cache stats``: what a cache holds and what it has saved, by provider and model.

Entries and bytes come from walking the directory (or a Redis's index sets); hits, misses and
dollars from its ledger, which every process that used the cache adds to (``spark.cache.ledger``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from spark.cache.ledger import LedgerRow
from spark.cache.stores.maintenance import scan_stats
from spark.cli._context import (
    CliState,
    EntryFilter,
    dir_option,
    filtered_target,
    note_missing_cache,
    pass_state,
    profile_option,
)
from spark.cli._output import (
    echo_json,
    format_rate,
    format_size,
    format_usd,
    json_option,
    print_table,
    say,
)
from spark.cli._output import (
    entries as n_entries,
)
from spark.models.pricing import dollars_unknown
from spark.types import Price

__all__ = ["StatsRow", "stats"]


@dataclass
class StatsRow:
    """One provider's model (or a total): what is on disk and what the ledger counted."""

    provider: str
    model_id: str
    entries: int = 0
    size_bytes: int = 0
    hits: int = 0
    misses: int = 0
    saved_usd: float = 0.0
    spent_usd: float = 0.0
    provider_cache_saved_usd: float = 0.0

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups; None before any lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    def add(self, other: StatsRow) -> None:
        """Add ``other``'s counts to this row."""
        self.entries += other.entries
        self.size_bytes += other.size_bytes
        self.hits += other.hits
        self.misses += other.misses
        self.saved_usd += other.saved_usd
        self.spent_usd += other.spent_usd
        self.provider_cache_saved_usd += other.provider_cache_saved_usd

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the hit rate (0-1, null before any lookup)."""
        data = asdict(self)
        data["hit_rate"] = self.hit_rate
        for name in ("saved_usd", "spent_usd", "provider_cache_saved_usd"):
            data[name] = round(data[name], 10)
        return data


def combine(
    disk: dict[str, Any], ledger: Iterable[LedgerRow], only: EntryFilter | None = None
) -> list[StatsRow]:
    """One row per (provider, model id) found on disk or in the ledger, sorted; ``only`` keeps
    the rows of one provider and/or model id."""
    rows: dict[tuple[str, str], StatsRow] = {}

    def row(provider: str, model_id: str) -> StatsRow:
        return rows.setdefault((provider, model_id), StatsRow(provider, model_id))

    for provider, models in disk["entries_by_model"].items():
        for model_id, count in models.items():
            found = row(provider, model_id)
            found.entries = count
            found.size_bytes = disk["bytes_by_model"][provider][model_id]
    for item in ledger:
        row(item.provider, item.model_id).add(
            StatsRow(
                "",
                "",
                0,
                0,
                item.hits,
                item.misses,
                item.saved_usd,
                item.spent_usd,
                item.provider_cache_saved_usd,
            )
        )
    return [rows[k] for k in sorted(rows) if only is None or _selected(k, only)]


def _selected(row: tuple[str, str], only: EntryFilter) -> bool:
    provider, model_id = row
    return only.provider in (None, provider) and only.model_id in (None, model_id)


def totals(rows: Iterable[StatsRow], provider: str = "", model_id: str = "") -> StatsRow:
    """The sum of ``rows``."""
    total = StatsRow(provider, model_id)
    for item in rows:
        total.add(item)
    return total


@click.command(short_help="Entries, size, hit rate and dollars saved.")
@profile_option
@click.option("--provider", metavar="NAME", help="Only this provider's models.")
@click.option(
    "--model",
    metavar="MODEL",
    help="Only this model: an alias of spark.toml (in its cache dir) or a model id.",
)
@dir_option
@json_option
@pass_state
def stats(
    state: CliState,
    profile: str | None,
    provider: str | None,
    model: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Show entries and size, hit rate and dollars saved, by provider and model.

    Entries and size are what the cache holds now. Hits, misses, dollars saved (the
    recorded cost of the calls that hits replaced) and spent add up every process that used
    the cache, from its ledger (a file beside the entries, or hashes in the Redis). Once a
    provider's own prompt caching has cut the price of paid calls, what it saved is shown
    below the table, apart from Spark's savings (docs/costs.md).
    """
    target, only = filtered_target(state, profile, cache_dir, provider, model)
    note = note_missing_cache(state, target, profile)
    if note:
        say(note, err=True)
    sink = target.store.ledger_sink()
    has_ledger = sink.exists()
    rows = combine(
        scan_stats(target.store, keep_summary=target.writes).as_dict(), sink.rows(), only
    )
    total = totals(rows)
    unpriced = _unpriced(rows, target.settings.pricing)
    if as_json:
        found = _json(target.cache_dir, rows, total, has_ledger)
        for entry in found["by_model"]:
            entry["price_known"] = (entry["provider"], entry["model_id"]) not in unpriced
        echo_json({"store": target.where, **found})
        return
    _print(target.where, rows, total, has_ledger, unpriced)


def _unpriced(rows: list[StatsRow], pricing: Mapping[str, Price]) -> set[tuple[str, str]]:
    """The models whose calls were counted with no dollars because their cost is not known
    (``dollars_unknown``): their sums show as "price unknown", never as $0."""
    return {
        (row.provider, row.model_id)
        for row in rows
        if dollars_unknown(
            row.provider,
            row.model_id,
            row.hits + row.misses,
            row.saved_usd + row.spent_usd,
            pricing,
        )
    }


def _json(cache_dir: Path, rows: list[StatsRow], total: StatsRow, has_ledger: bool) -> Any:
    by_provider = {
        provider: totals(r for r in rows if r.provider == provider).to_dict()
        for provider in dict.fromkeys(r.provider for r in rows)
    }
    summary = total.to_dict()
    return {
        "cache_dir": cache_dir,
        "ledger": has_ledger,
        "total_entries": total.entries,
        "total_size_bytes": total.size_bytes,
        **{k: summary[k] for k in _JSON_SUMS},
        "by_provider": {
            p: {**{k: v for k, v in d.items() if k != "model_id"}, "provider": p}
            for p, d in by_provider.items()
        },
        "by_model": [r.to_dict() for r in rows],
    }


_JSON_SUMS = ("hits", "misses", "hit_rate", "saved_usd", "spent_usd", "provider_cache_saved_usd")


def _print(
    where: str,
    rows: list[StatsRow],
    total: StatsRow,
    has_ledger: bool,
    unpriced: set[tuple[str, str]],
) -> None:
    say(f"{where}: {n_entries(total.entries)}, {format_size(total.size_bytes)}")
    if not rows:
        return
    lines: list[StatsRow | None] = []
    for provider in dict.fromkeys(r.provider for r in rows):
        group = [r for r in rows if r.provider == provider]
        lines += group
        if len(group) > 1:
            lines.append(totals(group, provider, "(all models)"))
        lines.append(None)
    lines.append(totals(rows, "total", ""))
    print_table(_COLUMNS, [None if r is None else _cells(r, has_ledger, unpriced) for r in lines])
    if has_ledger and unpriced:
        say(
            f"{_UNKNOWN}: price unknown (no price for the model, or calls without token "
            'counts: add [pricing."<id>"])'
        )
    if total.provider_cache_saved_usd > 0:
        _print_prompt_cache(rows, total)
    if not has_ledger:
        say("no ledger yet: hit rate and dollars appear once a model has used this cache")


def _print_prompt_cache(rows: list[StatsRow], total: StatsRow) -> None:
    """The third sum, below the table (an 80-column table has no room for a tenth column):
    what the providers' own prompt caching took off the paid calls, by model."""
    say(
        f"\nProviders' prompt caching saved {format_usd(total.provider_cache_saved_usd)}"
        " on paid calls (not in Saved):"
    )
    for row in rows:
        if row.provider_cache_saved_usd > 0:
            amount = format_usd(row.provider_cache_saved_usd)
            say(f"  {row.provider}  {row.model_id}  {amount}")


_COLUMNS = ("Provider", "Model", "Entries", "Size", "Hits", "Misses", "Hit rate", "Saved", "Spent")


_UNKNOWN = "?"


def _cells(row: StatsRow, has_ledger: bool, unpriced: set[tuple[str, str]]) -> tuple[Any, ...]:
    if not has_ledger:
        counted: tuple[Any, ...] = ("-",) * 5
    else:
        rate = format_rate(row.hits, row.misses)
        if (row.provider, row.model_id) in unpriced:
            saved = spent = _UNKNOWN
        else:
            saved, spent = format_usd(row.saved_usd), format_usd(row.spent_usd)
        counted = (row.hits, row.misses, rate, saved, spent)
    return (row.provider, row.model_id, row.entries, format_size(row.size_bytes), *counted)
