"""``render_default_toml``: the starter spark.toml that ``spark config init`` writes."""

from __future__ import annotations

from typing import Any

import tomli_w

__all__ = ["render_default_toml", "starter_document"]


def starter_document() -> dict[str, Any]:
    """The starter configuration as data: the four usual profiles over a cache-off base."""
    return {
        "spark": {"default_profile": "development"},
        "cache": {
            "enabled": False,
            "dir": "~/.cache/spark/llm-responses",
            "ttl_seconds": 86400,
            "max_size_mb": 1024,
            "mode": "read_write",
            "namespace": "",
            "encrypt": False,
            "key_env": "SPARK_CACHE_KEY",
        },
        "models": {
            "gpt-4o": {"provider": "openai", "model_id": "gpt-4o"},
            "embed": {"provider": "openai", "model_id": "text-embedding-3-small"},
        },
        "profiles": {
            "development": {"cache": {"enabled": True, "ttl_seconds": 86400}},
            "testing": {
                "cache": {
                    "enabled": True,
                    "ttl_seconds": 2592000,
                    "dir": "tests/llm_cache",
                    "encrypt": True,
                    "mode": "replay",
                }
            },
            "staging": {"cache": {"enabled": True, "ttl_seconds": 3600}},
            "production": {
                "cache": {"enabled": False},
                "models": {"embed": {"cache": {"enabled": True, "ttl_seconds": 604800}}},
            },
        },
    }


def render_default_toml() -> str:
    """A fresh starter spark.toml (TOML text without comments; tomli-w writes none)."""
    return tomli_w.dumps(starter_document())
