"""Test isolation: no ambient configuration, credentials or cache directory leaks into a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark.cache.manager import CacheManager

_PREFIXES = ("SPARK_", "OPENAI_", "AWS_", "GOOGLE_", "GEMINI_")
_NAMES = ("ENVIRONMENT", "XDG_CACHE_HOME")


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
