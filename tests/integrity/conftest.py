"""Fixtures of the integrity tests: keys, a spark.toml for the CLI, models on the local server,
and a runner that fails a call which hangs instead of hanging the suite.

Everything is black-box: entries are written through Spark (models or ``CacheManager``) and then
damaged as bytes on disk; the helpers live in ``_fuzzlib`` (shared with
``scripts/fuzz_entries.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from _fuzzlib import (
    KEY_ENV,
    OTHER_KEY_ENV,
    SPARK_TOML,
    close_model,
    make_model,
    run_cli,
    unblock_fifos,
    within,
)
from click.testing import Result

from spark.cache import CacheConfig, generate_key
from spark.testing import ProviderServer


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The key the encrypted cache holds (``KEY_ENV``) and one it does not (``OTHER_KEY_ENV``)."""
    chosen = {KEY_ENV: generate_key(), OTHER_KEY_ENV: generate_key()}
    for name, value in chosen.items():
        monkeypatch.setenv(name, value)
    return chosen


@pytest.fixture
def plain_config(tmp_path: Path) -> CacheConfig:
    """A plaintext cache in read_write mode."""
    return CacheConfig(enabled=True, cache_dir=tmp_path / "cache")


@pytest.fixture
def sealed_config(tmp_path: Path, keys: dict[str, str]) -> CacheConfig:
    """An encrypted cache (``encrypt = true``, key in ``KEY_ENV``) in read_write mode."""
    return CacheConfig(enabled=True, cache_dir=tmp_path / "sealed", encrypt=True, key_env=KEY_ENV)


@pytest.fixture
def foreign_config(tmp_path: Path, keys: dict[str, str]) -> CacheConfig:
    """An encrypted cache elsewhere, sealed with a key the others do not hold."""
    return CacheConfig(
        enabled=True, cache_dir=tmp_path / "foreign", encrypt=True, key_env=OTHER_KEY_ENV
    )


@pytest.fixture
def spark_toml(tmp_path: Path) -> Path:
    """A spark.toml with a ``plain`` and a ``sealed`` profile (commands pass ``--dir``)."""
    path = tmp_path / "spark.toml"
    path.write_text(SPARK_TOML, encoding="utf-8")
    return path


Cli = Callable[..., Result]


@pytest.fixture
def spark_cli(spark_toml: Path) -> Cli:
    """``spark --config spark.toml ARGS`` in-process; fails the test on a traceback, an
    unexpected error or an exit code other than 0 and 1 (each command runs in a thread with a
    timeout, so a command that hangs on a FIFO fails instead of hanging the suite)."""

    def invoke(*args: str, input: str | None = None, timeout: float = 30.0) -> Result:
        result, problems = within(
            timeout,
            lambda: run_cli("--config", str(spark_toml), *args, input=input),
            unblock=lambda: unblock_fifos(spark_toml.parent),
        )
        assert not problems, f"spark {' '.join(args)}: " + "; ".join(problems)
        return result

    return invoke


MakeModel = Callable[..., Any]


@pytest.fixture
async def models(server: ProviderServer) -> AsyncIterator[MakeModel]:
    """``models(provider, config, model_id)``: a model on the local server with the real SDK
    (no retries); closed at the end of the test."""
    built: list[Any] = []

    def make(provider: str, config: CacheConfig, model_id: str) -> Any:
        built.append(make_model(server, provider, config, model_id))
        return built[-1]

    yield make
    for model in built:
        await close_model(model)
