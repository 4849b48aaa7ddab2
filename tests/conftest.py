"""Test isolation: no ambient configuration, credentials or cache directory leaks into a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark.cache import CacheConfig
from spark.cache.ledger import close_all_ledgers
from spark.cache.manager import CacheManager
from spark.testing import ProviderServer
from spark.testing._state import DEFAULT_ANSWER_CHARS

_PREFIXES = ("SPARK_", "OPENAI_", "AWS_", "GOOGLE_", "GEMINI_")
_NAMES = ("ENVIRONMENT", "XDG_CACHE_HOME", "COLUMNS")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Clear Spark/provider variables, point HOME at tmp, and forget process-wide managers."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    CacheManager.reset_instances()
    yield
    CacheManager.reset_instances()
    close_all_ledgers()  # no test's background flush may land in the next test


@pytest.fixture(scope="module")
def module_server() -> Iterator[ProviderServer]:
    """One local provider server per test module (SDK clients are the slow part, not it)."""
    with ProviderServer() as server:
        yield server


@pytest.fixture
def server(module_server: ProviderServer) -> ProviderServer:
    """The module's server with an empty log, no injections and default settings."""
    module_server.reset()
    module_server.latency = 0.0
    module_server.answer_chars = DEFAULT_ANSWER_CHARS
    return module_server


@pytest.fixture
def cache_config(tmp_path: Path) -> CacheConfig:
    """Caching on, in a fresh directory under tmp_path."""
    return CacheConfig(enabled=True, cache_dir=tmp_path / "llm-cache")
