"""The pytest fixtures Spark's plugin registers: ``provider_server`` and ``spark_cache``.

They are available in every test once Spark is installed (the plugin is a ``pytest11`` entry
point); no import or ``pytest_plugins`` line is needed (docs/testing.md, "The plugin").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spark.cache import CacheConfig, CacheManager
from spark.config import Settings, load_settings
from spark.testing.server import ProviderServer

__all__ = ["SparkCacheHandle", "provider_server", "spark_cache"]


@pytest.fixture
def provider_server() -> Iterator[ProviderServer]:
    """Yield a started `ProviderServer` and stop it when the test ends."""
    with ProviderServer() as server:
        yield server


@dataclass(frozen=True)
class SparkCacheHandle:
    """The cache a test's models built with ``from_profile`` use: the active profile's
    ``[cache]`` rules, after ``--spark-cache``, the test's marker and ``SPARK_*``.

    ``mode`` is the cache mode (``replay``, ``read_write``, ``read_only``, ``refresh``), or
    ``off`` when the cache is disabled; ``dir`` the absolute cache directory; ``settings`` the
    whole resolved configuration (``settings.cache_config("embed")`` for one alias's rules).
    """

    profile: str
    mode: str
    dir: Path
    config: CacheConfig = field(repr=False)
    settings: Settings = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkCacheHandle:
        """The handle of ``settings``' ``[cache]`` rules."""
        config = settings.cache_config()
        mode = config.mode if config.enabled else "off"
        return cls(settings.profile, mode, config.resolved_dir, config, settings)

    def manager(self) -> CacheManager:
        """The process-wide manager of this cache: the one the test's models share."""
        return CacheManager.get_instance(self.dir, self.config)


@pytest.fixture
def spark_cache() -> SparkCacheHandle:
    """This test's cache: profile, mode, directory and manager (read when the test starts, so
    a ``spark_cache`` marker and ``--spark-cache`` are applied)."""
    return SparkCacheHandle.from_settings(load_settings())
