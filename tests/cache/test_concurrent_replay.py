"""Two CI jobs replaying one committed cache at once: both pass, nothing on disk changes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.ledger import read_ledger

REPLAY = textwrap.dedent(
    """
    import asyncio, sys
    from spark.cache import CacheConfig, CacheManager

    config = CacheConfig(enabled=True, cache_dir=sys.argv[1], encrypt=True, mode="replay")
    bound = CacheManager.get_instance(config.resolved_dir, config).bind(config)

    async def never():
        raise AssertionError("replay called the provider")

    async def main():
        for round in range(40):
            for index in range(25):
                request = bound.chat_request("openai", "gpt-4o", f"question {index}")
                result = await bound.get_or_call(request, never)
                assert result.response["text"] == f"answer {index}", result.response

    asyncio.run(main())
    """
)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*.json")
        if not p.name.startswith(".")
    }


def test_two_replays_of_one_directory_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", key)
    cache_dir = tmp_path / "llm_cache"
    config = CacheConfig(enabled=True, cache_dir=cache_dir, encrypt=True)
    manager = CacheManager(cache_dir, config)
    bound = manager.bind(config)
    for index in range(25):
        request = bound.chat_request("openai", "gpt-4o", f"question {index}")
        assert bound.save(request, {"text": f"answer {index}", "cost_usd": 0.001})
        manager.counters.record_miss(request, None)  # (the recording run's ledger: replays add)
    manager.counters.ledger.flush()
    before = snapshot(cache_dir)
    env = {**os.environ, "SPARK_CACHE_KEY": key}
    jobs = [
        subprocess.Popen([sys.executable, "-c", REPLAY, str(cache_dir)], env=env) for _ in range(2)
    ]
    assert [job.wait(timeout=120) for job in jobs] == [0, 0]
    assert snapshot(cache_dir) == before, "replay never rewrites an entry"
    [row] = read_ledger(cache_dir)
    assert (row.hits, row.misses) == (2000, 25), "both jobs' counts, none lost"
