"""Local stand-ins for the LLM providers, so Spark and its users can test with no network.

`ProviderServer` speaks the OpenAI, AWS Bedrock Runtime and Google Gemini HTTP APIs (including
streaming) well enough for the real `openai`, `boto3` and `google-genai` SDKs::

    from spark.testing import ProviderServer

    with ProviderServer() as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
        ...
        assert server.count(provider="openai", operation="chat") == 1

Under pytest, the `provider_server` fixture (registered by Spark's plugin, nothing to import)
yields a started server; `python -m spark.testing` serves one until Ctrl-C, printing the
variables that point SDKs at it.
"""

from __future__ import annotations

from spark.testing._state import RecordedRequest
from spark.testing.server import ProviderServer

__all__ = ["ProviderServer", "RecordedRequest"]
