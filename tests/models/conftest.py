"""Fixtures for model tests: one local provider server per module, reset before every test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig
from spark.cache.manager import CacheManager
from spark.testing import ProviderServer

# Credentials of the test environment: tests assert they never reach a cache file.
SECRET_OPENAI_KEY = "sk-test-SECRET-openai-0123456789"
SECRET_GOOGLE_KEY = "AIza-test-SECRET-google-0123456789"
SECRET_AWS_KEY_ID = "AKIATESTSECRETKEYID01"
SECRET_AWS_SECRET = "aws-test-SECRET-access-key-0123456789abcdef"


@pytest.fixture
def credentials() -> dict[str, str]:
    """Secret-looking credentials of the test environment, by name."""
    return {
        "openai_api_key": SECRET_OPENAI_KEY,
        "google_api_key": SECRET_GOOGLE_KEY,
        "aws_access_key_id": SECRET_AWS_KEY_ID,
        "aws_secret_access_key": SECRET_AWS_SECRET,
    }


def _cache_files_text(root: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", "replace") for path in root.rglob("*") if path.is_file()
    )


@pytest.fixture
def cache_files_text() -> Callable[[Path], str]:
    """A function returning every byte written under a directory, as text (for secret scans)."""
    return _cache_files_text


SECRETS = {
    "openai": {"api_key": SECRET_OPENAI_KEY},
    "bedrock": {"aws_access_key_id": SECRET_AWS_KEY_ID, "aws_secret_access_key": SECRET_AWS_SECRET},
    "gemini": {"api_key": SECRET_GOOGLE_KEY},
}
Models = Callable[..., Any]


@pytest.fixture
async def models(server: ProviderServer, cache_config: CacheConfig) -> AsyncIterator[Models]:
    """``models(provider, model_id, **options)``: a model on the local server with the test's
    secret-looking credentials, caching per ``cache_config``, retries off (options win); every
    model built is closed when the test ends."""
    built: list[Any] = []

    def make(provider: str, model_id: str, **options: Any) -> Any:
        options = {**SECRETS[provider], "cache_config": cache_config, **options}
        built.append(server.model(provider, model_id, **options))
        return built[-1]

    yield make
    for model in built:
        await model.aclose()


ThreeAnswers = Callable[..., Awaitable[tuple[Any, Any, Any]]]


@pytest.fixture
def three_answers(models: Models) -> ThreeAnswers:
    """``await three_answers(provider, model_id, question, streamed=..., options=...,
    **keywords)``: the answer as the call stored it (made plain, or streamed and then read),
    the hit after it, and the hit of a new manager reading the disk."""

    async def run(
        provider: str,
        model_id: str,
        question: Any,
        *,
        streamed: bool,
        options: dict[str, Any] | None = None,
        **keywords: Any,
    ) -> tuple[Any, Any, Any]:
        model = models(provider, model_id, **(options or {}))
        if streamed:
            text = "".join([chunk async for chunk in model.stream_text(question, **keywords)])
            made = await model.generate(question, **keywords)  # what the stream stored
            assert made.text == text
        else:
            made = await model.generate(question, **keywords)
        hit = await model.generate(question, **keywords)
        CacheManager.reset_instances()
        from_disk = await models(provider, model_id, **(options or {})).generate(
            question, **keywords
        )
        assert (hit.cached, from_disk.cached) == (True, True)
        return made, hit, from_disk

    return run
