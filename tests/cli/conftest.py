"""Fixtures for the command-line tests: a project with a real spark.toml, real cache entries.

Commands run through click's ``CliRunner`` against the real ``spark.cli.cli`` group; entries are
written by the real cache engine (``BoundCache.save``), so the CLI reads what the SDK writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.admin import write_key_file
from spark.cli import cli

SPARK_TOML = """\
[spark]
default_profile = "dev"

[cache]
dir = "cache"
ttl_seconds = 3600

[models.gpt]
provider = "openai"
model_id = "gpt-4o-mini"

[models.claude]
provider = "bedrock"
model_id = "anthropic.claude-3-haiku-20240307-v1:0"

[profiles.dev.cache]
enabled = true

[profiles.ci.cache]
enabled = true
encrypt = true
mode = "replay"
key_file = "secrets/cache.key"

[profiles.vault.cache]
enabled = true
encrypt = true
"""

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]


@pytest.fixture
def spark() -> Invoke:
    """Run ``spark ARGS...`` in-process; stdout and stderr are kept apart."""

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding the test spark.toml, made the current directory."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "spark.toml").write_text(SPARK_TOML, encoding="utf-8")
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def cache_dir(project: Path) -> Path:
    """The cache directory of every profile of the test spark.toml."""
    return project / "cache"


@pytest.fixture
def key_file(project: Path) -> Callable[..., str]:
    """Write the ``ci`` profile's key file (mode 0600) with the given keys, or a new key."""

    def write(*keys: str) -> str:
        chosen = list(keys) or [generate_key()]
        path = project / "secrets" / "cache.key"
        path.unlink(missing_ok=True)
        write_key_file(path, chosen, overwrite=False)
        return chosen[0]

    return write


@pytest.fixture
def fill(cache_dir: Path) -> Fill:
    """Write ``count`` entries with the real cache engine; returns their keys."""

    def write(
        count: int,
        *,
        provider: str = "openai",
        model_id: str = "gpt-4o-mini",
        encrypt: bool = False,
        key_file: Path | None = None,
        ttl_seconds: float = 3600,
        start: int = 0,
    ) -> list[str]:
        config = CacheConfig(
            enabled=True,
            cache_dir=cache_dir,
            encrypt=encrypt,
            key_file=key_file,
            ttl_seconds=ttl_seconds,
        )
        bound = CacheManager(cache_dir, config).bind(config)
        keys = []
        for index in range(start, start + count):
            request = bound.chat_request(provider, model_id, f"question {index}")
            assert bound.save(request, {"text": f"answer {index}", "cost_usd": 0.001})
            keys.append(request.key)
        bound.manager.wait_for_maintenance()  # (its size check may record a summary meanwhile)
        return keys

    return write
