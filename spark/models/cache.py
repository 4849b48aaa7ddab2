"""Re-exports of the cache API at the import path users know (``spark.models.cache``)."""

from __future__ import annotations

from spark.cache import CacheConfig, CacheManager

__all__ = ["CacheConfig", "CacheManager"]
