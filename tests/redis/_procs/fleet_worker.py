"""One "machine" of the fleet tests: a real OpenAIModel whose cache is a shared Redis.

Run as ``python fleet_worker.py --url URL --prefix P --base-url PROVIDER --barrier DIR
--worker N --local DIR [--local-tier] [--lock-seconds S] [--cluster] PROMPT...``: says it is ready (``DIR/ready-N``), waits for
the start time in ``DIR/go``, asks each prompt with ``model.generate`` and prints a JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from spark.cache import CacheConfig
from spark.models.openai import OpenAIModel


def wait_for_go(barrier: Path, worker: int) -> None:
    """Say this process is ready, then sleep until the start time the test writes to ``go``."""
    (barrier / f"ready-{worker}").touch()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            start = float((barrier / "go").read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.005)
            continue
        time.sleep(max(0.0, start - time.time()))
        return
    raise TimeoutError("the test never said go")


async def ask(args: argparse.Namespace) -> dict[str, object]:
    config = CacheConfig(
        enabled=True,
        backend="redis",
        url=args.url,
        prefix=args.prefix,
        cache_dir=args.local,
        local_tier=args.local_tier,
        lock_seconds=args.lock_seconds,
        cluster=args.cluster,
    )
    model = OpenAIModel(
        "gpt-4o", base_url=args.base_url, api_key="sk-fleet", max_retries=0, cache_config=config
    )
    wait_for_go(Path(args.barrier), args.worker)
    results = []
    for prompt in args.prompts:
        started = time.perf_counter()
        response = await model.generate(prompt)
        elapsed = time.perf_counter() - started
        results.append({"text": response.text, "cached": response.cached, "seconds": elapsed})
    return {"results": results}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--barrier", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--local-tier", action="store_true")
    parser.add_argument("--lock-seconds", type=float, default=30.0)
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("prompts", nargs="+")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(ask(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
