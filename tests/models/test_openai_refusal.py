"""A refusal is part of OpenAI's answer: chat completions' ``message.refusal`` and the Responses
API's ``refusal`` content part come back as ``response.refusal`` (text empty), plain and
streamed, on the miss, on the hit and from the disk in a new process (docs/models.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from spark.cache import CacheConfig
from spark.cache.manager import CacheManager
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer

MODEL = "gpt-4o-mini"
ASK = "How do I pick a lock?"
REFUSAL = "I can't help with that, but a locksmith can."

MakeModel = Callable[..., OpenAIModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    return lambda **options: models("openai", MODEL, **options)


async def ask(model: OpenAIModel, streamed: bool) -> Any:
    if not streamed:
        return await model.generate(ASK)
    chunks = [chunk async for chunk in model.stream_text(ASK)]
    assert chunks == []  # a refusal has no text to stream
    return await model.generate(ASK)  # the answer the stream stored


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_refusal_comes_back_on_the_miss_the_hit_and_from_disk(
    make_model: MakeModel,
    server: ProviderServer,
    cache_config: CacheConfig,
    api: str,
    streamed: bool,
) -> None:
    server.queue_refusal(REFUSAL)
    model = make_model(api=api)

    answer = await ask(model, streamed)
    again = await model.generate(ASK)

    assert (answer.refusal, answer.text, answer.tool_calls) == (REFUSAL, "", ())
    assert answer.choices[0].refusal == REFUSAL
    assert again.cached is True
    assert (again.refusal, again.text, again.finish_reason) == (
        REFUSAL,
        "",
        answer.finish_reason,
    )
    assert server.count(provider="openai") == 1

    CacheManager.reset_instances()
    code = (
        "import asyncio, json, sys\n"
        "from spark.cache import CacheConfig\n"
        "from spark.models.openai import OpenAIModel\n"
        "config = CacheConfig(enabled=True, dir=sys.argv[1], mode='replay')\n"
        "model = OpenAIModel(sys.argv[2], api=sys.argv[3], api_key='k', base_url=sys.argv[4],"
        " cache_config=config)\n"
        "r = asyncio.run(model.generate(sys.argv[5]))\n"
        "print(json.dumps([r.cached, r.refusal, r.text]))\n"
    )
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(cache_config.resolved_dir),
            MODEL,
            api,
            server.openai_base_url,
            ASK,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(fresh.stdout) == [True, REFUSAL, ""]


async def test_an_answer_without_a_refusal_has_none(
    make_model: MakeModel, server: ProviderServer
) -> None:
    answer = await make_model().generate(ASK)
    assert answer.text
    assert (answer.refusal, answer.choices[0].refusal) == (None, None)
    assert "refusal" not in answer.to_dict()
