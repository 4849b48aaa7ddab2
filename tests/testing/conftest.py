"""One `ProviderServer` per test module, reset before each test, and real SDK clients for it.

Building SDK clients costs 30-90 ms each (TLS contexts), so they live as long as the server;
the per-test reset keeps tests independent. The shipped function-scoped fixture
`spark.testing.fixtures.provider_server` has its own test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import botocore.config
import openai
import pytest
from google import genai
from google.genai import types

from spark.testing import ProviderServer


@pytest.fixture(scope="module")
def _openai_client(module_server: ProviderServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=module_server.openai_base_url, api_key="test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def openai_client(_openai_client: openai.OpenAI, server: ProviderServer) -> openai.OpenAI:
    return _openai_client


@pytest.fixture
async def async_openai_client(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def _bedrock_client(module_server: ProviderServer) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=module_server.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def bedrock_client(_bedrock_client: Any, server: ProviderServer) -> Any:
    return _bedrock_client


@pytest.fixture(scope="module")
def _gemini_client(module_server: ProviderServer) -> genai.Client:
    return genai.Client(
        api_key="test",
        http_options=types.HttpOptions(
            base_url=module_server.gemini_base_url,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


@pytest.fixture
def gemini_client(_gemini_client: genai.Client, server: ProviderServer) -> genai.Client:
    return _gemini_client
