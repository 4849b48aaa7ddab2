"""The ledger: hits, misses, dollars spent and saved per provider and model, across processes.

``Ledger`` batches the counts of one cache in memory (``batch``) and flushes them to a sink:
SQLite beside a disk cache (``sqlite``) or the Redis of a Redis cache (``redis``). ``usage`` is
the record of which entries a run used (``spark cache prune --unused``). See docs/caching.md.
"""

from __future__ import annotations

from spark.cache.ledger.base import LedgerRow, LedgerSink, RequestRow, UsageRow
from spark.cache.ledger.batch import Ledger, close_all_ledgers
from spark.cache.ledger.sqlite import LEDGER_NAME, SQLiteLedger, read_ledger, read_top_requests

__all__ = [
    "LEDGER_NAME",
    "Ledger",
    "LedgerRow",
    "LedgerSink",
    "RequestRow",
    "SQLiteLedger",
    "UsageRow",
    "close_all_ledgers",
    "read_ledger",
    "read_top_requests",
]
