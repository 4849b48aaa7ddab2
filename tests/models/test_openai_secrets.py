"""OpenAIModel writes no credentials to the cache, plaintext or encrypted; encrypted entries hold
no prompt or answer text either."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spark.cache import CacheConfig, generate_key
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer

PROMPT = "Tell me about the Zanzibar lighthouse"
TOOL = {
    "name": "lookup_lighthouse",
    "description": "Facts about a lighthouse",
    "parameters": {"type": "object", "properties": {"name": {"type": "string"}}},
}


async def fill_cache(
    model: OpenAIModel, embedder: OpenAIModel, server: ProviderServer
) -> list[str]:
    """Cache a plain call, a stream, a tool call and embeddings; return the answer texts."""
    answer = await model.get_text(PROMPT, system_prompt="Answer as a sailor.")
    streamed = "".join([c async for c in model.stream_text(PROMPT, temperature=0.5)])
    server.queue_tool_call("lookup_lighthouse", {"name": "Zanzibar"})
    called = await model.generate(PROMPT, tools=[TOOL])
    assert called.tool_calls
    await embedder.embed([PROMPT])
    await model.aclose()
    await embedder.aclose()
    return [answer, streamed]


@pytest.mark.parametrize("encrypt", [False, True], ids=["plaintext", "encrypted"])
async def test_no_credentials_in_cache_files(
    server: ProviderServer,
    credentials: dict[str, str],
    cache_files_text: Callable[[Path], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    encrypt: bool,
) -> None:
    if encrypt:
        monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "cache", encrypt=encrypt)
    options = {
        "api_key": credentials["openai_api_key"],
        "organization": "org-SECRET-organization-42",
        "base_url": server.openai_base_url,
        "max_retries": 0,
        "cache_config": config,
    }
    model = OpenAIModel("gpt-4o-mini", **options)  # type: ignore[arg-type]
    embedder = OpenAIModel("text-embedding-3-small", **options)  # type: ignore[arg-type]

    answers = await fill_cache(model, embedder, server)

    written = cache_files_text(tmp_path / "cache")
    assert server.count(provider="openai") == 4
    assert len(list((tmp_path / "cache").rglob("*.json"))) >= 4
    for secret in [*credentials.values(), "org-SECRET-organization-42", "Bearer"]:
        assert secret not in written
    if encrypt:
        for text in [PROMPT, "sailor", "Zanzibar", "lookup_lighthouse"]:
            assert text not in written
        for answer in answers:  # "Answer 1a2b3c: ..." is distinctive in its first 16 characters
            assert answer[:16] not in written
    else:  # the scan can see what it looks for: the plaintext entries hold prompt and answers
        assert PROMPT in written
        assert all(answer[:16] in written for answer in answers)
