"""Fixtures for agent tests: the local provider server, a cache in tmp, models of each provider."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spark.agents import reset_total_cost_stats
from spark.cache import CacheConfig
from spark.models.base import Model
from spark.models.bedrock import BedrockModel
from spark.models.gemini import GeminiModel
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer
from spark.types import Price

PROVIDERS = ("openai", "bedrock", "gemini")
MODEL_IDS = {
    "openai": "gpt-4o-mini",
    "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
    "gemini": "gemini-2.0-flash",
}
# Round numbers so expected dollars are easy to compute by hand.
PRICE = Price(input_per_million=2.0, output_per_million=8.0)

MakeModel = Callable[..., Model]


@pytest.fixture(autouse=True)
def _fresh_cost_totals() -> Iterator[None]:
    """Process-wide agent cost figures start at zero in every test."""
    reset_total_cost_stats()
    yield
    reset_total_cost_stats()


@pytest.fixture
def make_model(server: ProviderServer, cache_config: CacheConfig) -> MakeModel:
    """``make_model(provider, **options)``: a model on the local server, priced at PRICE."""

    def make(provider: str = "openai", **options: Any) -> Model:
        options.setdefault("max_retries", 0)
        options.setdefault("cache_config", cache_config)
        options.setdefault("pricing", PRICE)
        model_id = options.pop("model_id", MODEL_IDS[provider])
        if provider == "openai":
            options.setdefault("base_url", server.openai_base_url)
            options.setdefault("api_key", "sk-spark-agents-test")
            return OpenAIModel(model_id, **options)
        if provider == "bedrock":
            options.setdefault("endpoint_url", server.bedrock_endpoint_url)
            options.setdefault("region", "us-east-1")
            options.setdefault("aws_access_key_id", "AKIASPARKAGENTSTEST")
            options.setdefault("aws_secret_access_key", "spark-agents-test-secret")
            return BedrockModel(model_id, **options)
        options.setdefault("base_url", server.gemini_base_url)
        options.setdefault("api_key", "spark-agents-test")
        return GeminiModel(model_id, **options)

    return make


@pytest.fixture
def tool_result_of() -> Callable[[str, dict[str, Any]], str]:
    """``tool_result_of(provider, body)``: the tool result text a request body ends with."""
    return _last_tool_result


def _last_tool_result(provider: str, body: dict[str, Any]) -> str:
    """The text of the tool result a request body ends with, in the provider's own format."""
    if provider == "openai":
        message = body["messages"][-1]
        assert message["role"] == "tool"
        return str(message["content"])
    if provider == "bedrock":
        block = body["messages"][-1]["content"][-1]["toolResult"]
        return "".join(part["text"] for part in block["content"])
    part = body["contents"][-1]["parts"][-1]["functionResponse"]
    return str(part["response"]["result"])
