"""One process's calls for tests/cache/test_ledger_three_sums.py: OpenAI ``gpt-4o-mini`` on the
local server at ``argv[1]``, caching in ``argv[2]``; each later argument is a question. Prints
each answer's ``cached``, ``cost_usd`` and ``provider_cache_saved_usd`` as one JSON list."""

from __future__ import annotations

import asyncio
import json
import sys

from spark.cache import CacheConfig
from spark.models.openai import OpenAIModel


async def main(base_url: str, cache_dir: str, questions: list[str]) -> None:
    config = CacheConfig(enabled=True, cache_dir=cache_dir)
    model = OpenAIModel(
        "gpt-4o-mini", base_url=base_url, api_key="sk-test", max_retries=0, cache_config=config
    )
    answers = [await model.generate(question) for question in questions]
    await model.aclose()
    print(json.dumps([[a.cached, a.cost_usd, a.provider_cache_saved_usd] for a in answers]))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
