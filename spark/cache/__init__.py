"""The cache engine: keys, policy, envelope and crypto, the stores (disk, Redis, two tiers) and
``CacheManager``.

Nothing here imports a provider SDK; models hand the provider call in as a callable.
"""

from __future__ import annotations

from spark.cache.bound import BoundCache, CacheRequest, CacheResult
from spark.cache.config import CacheConfig, CacheMode, default_cache_dir
from spark.cache.crypto import KeyRing, generate_key, load_keyring
from spark.cache.keys import KEY_SCHEMA_VERSION, create_key
from spark.cache.manager import CacheManager

__all__ = [
    "KEY_SCHEMA_VERSION",
    "BoundCache",
    "CacheConfig",
    "CacheManager",
    "CacheMode",
    "CacheRequest",
    "CacheResult",
    "KeyRing",
    "create_key",
    "default_cache_dir",
    "generate_key",
    "load_keyring",
]
