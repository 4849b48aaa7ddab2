"""Per-call options that never change the answer reach the provider but stay out of the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig
from spark.errors import ConfigError
from spark.models.base import Model
from spark.testing import ProviderServer

QUESTION = [{"role": "user", "content": "Who keeps the lighthouse?"}]


def build(provider: str, server: ProviderServer, tmp_path: Path) -> Model:
    model_id = {"openai": "gpt-4o", "bedrock": "anthropic.claude-3-haiku-20240307-v1:0"}
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "c")
    return server.model(provider, model_id.get(provider, "gemini-2.0-flash"), cache_config=config)


OPTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # provider: (options given to get_text, fields expected in the request body)
    "openai": (
        {"user": "user-42", "metadata": {"team": "search"}, "timeout": 30},
        {"user": "user-42", "metadata": {"team": "search"}},
    ),
    "bedrock": (
        {"request_metadata": {"team": "search"}},
        {"requestMetadata": {"team": "search"}},
    ),
    "gemini": ({"timeout": 30, "headers": {"x-team": "search"}}, {}),
}


@pytest.mark.parametrize("provider", sorted(OPTIONS))
async def test_options_reach_the_provider_and_not_the_key(
    provider: str, server: ProviderServer, tmp_path: Path
) -> None:
    model = build(provider, server, tmp_path)
    given, expected = OPTIONS[provider]
    assert model.cache_key(QUESTION, **given) == model.cache_key(QUESTION)
    text = await model.get_text(QUESTION, **given)
    body = server.requests[-1].body
    for name, value in expected.items():
        assert body[name] == value
    assert await model.get_text(QUESTION) == text
    assert server.count(provider) == 1, "same key: the second call is a hit"
    await model.aclose()


@pytest.mark.parametrize(
    ("provider", "option"), [("gemini", "user"), ("bedrock", "timeout"), ("openai", "api_key")]
)
def test_unsupported_or_model_level_options_are_a_clear_error(
    provider: str, option: str, server: ProviderServer, tmp_path: Path
) -> None:
    model = build(provider, server, tmp_path)
    with pytest.raises(ConfigError, match=f"{option} is not a per-call option of {provider}"):
        model.cache_key(QUESTION, **{option: "x"})


def test_stream_flags_are_ignored_not_errors(server: ProviderServer, tmp_path: Path) -> None:
    model = build("openai", server, tmp_path)
    assert model.cache_key(QUESTION, stream=True, stream_options={"x": 1}) == model.cache_key(
        QUESTION
    )
