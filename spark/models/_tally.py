"""How many calls this process made to each provider (not answered by a cache).

The pytest plugin reads it to say when a test run reached a live provider (docs/testing.md).
The offline ``echo`` provider is not counted: it never leaves the process.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["count_provider_call", "provider_calls"]

#: Provider name -> calls made to it by this process (cache hits are not calls).
provider_calls: Counter[str] = Counter()


def count_provider_call(provider: str) -> None:
    """Note one call that went to ``provider`` (every model's provider call comes here)."""
    if provider != "echo":
        provider_calls[provider] += 1
