"""Benchmark the cache engine against a floor measured in the same run (issue 2).

Floor = sha256 of the request's canonical JSON + reading the entry file + Fernet.decrypt (when
encrypted) + json.loads of the payload: the least work any disk cache must do for a hit.

    python scripts/bench_cache.py            # full run (about a minute; 100,000 entries)
    python scripts/bench_cache.py --quick    # smaller counts, for a smoke check

Prints medians (µs) and ratios to the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache, CacheRequest
from spark.cache.codec import EntryMeta, encode_entry
from spark.cache.keys import canonical_json

MESSAGES = [{"role": "user", "content": "Summarize the plot of a long novel in a few words."}]


def median_us(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in microseconds (GC off while timing)."""
    samples = []
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - start)
    finally:
        gc.enable()
    return statistics.median(samples) / 1000


def interleaved_us(
    bound: BoundCache, floor: Callable[[], object], repeat: int
) -> tuple[float, float, float]:
    """Medians of (floor, memory-tier hit, disk-path hit), sampled in turn so that machine noise
    falls on all three alike. A hit is ``await bound.get_or_call(...)`` with the request built
    from the messages each time, as a model does."""

    async def never() -> dict[str, object]:
        raise AssertionError("benchmark expected a hit")

    async def hit() -> int:
        start = time.perf_counter_ns()
        request = bound.chat_request("openai", "gpt-4o", MESSAGES, temperature=0.2)
        result = await bound.get_or_call(request, never)
        took = time.perf_counter_ns() - start
        assert result.cached
        return took

    async def run() -> tuple[float, float, float]:
        floors, memory, disk = [], [], []
        for _ in range(repeat):
            start = time.perf_counter_ns()
            floor()
            floors.append(time.perf_counter_ns() - start)
            memory.append(await hit())
            bound.manager.memory.clear()
            disk.append(await hit())
        return tuple(statistics.median(s) / 1000 for s in (floors, memory, disk))  # type: ignore[return-value]

    gc.disable()
    try:
        return asyncio.run(run())
    finally:
        gc.enable()


def answer(size: int) -> dict[str, object]:
    """A response dict whose text is ``size`` characters."""
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * (size // 50 + 1))[:size]
    usage = {"input_tokens": 12, "output_tokens": size // 4}
    return {"text": words, "finish_reason": "stop", "usage": usage, "cost_usd": 0.0001}


def setup(root: Path, size: int, encrypt: bool) -> tuple[BoundCache, CacheRequest, str]:
    """A manager with one stored entry of a ``size``-character answer."""
    config = CacheConfig(enabled=True, cache_dir=root, encrypt=encrypt)
    manager = CacheManager(root, config)
    bound = manager.bind(config)
    request = bound.chat_request("openai", "gpt-4o", MESSAGES, temperature=0.2)
    assert bound.save(request, answer(size))
    path = manager.store.entry_path("openai", "gpt-4o", request.key)
    return bound, request, path


def floor_of(request: CacheRequest, encrypted_path: str, fernet: Fernet) -> Callable[[], None]:
    """The issue's floor: sha256(canonical JSON) + read the (encrypted) entry file +
    Fernet.decrypt + json.loads — the least work any encrypted disk cache does for a hit."""

    def floor() -> None:
        hashlib.sha256(canonical_json(request.normalized)).hexdigest()
        with open(encrypted_path, "rb") as handle:
            data = handle.read()
        json.loads(fernet.decrypt(json.loads(data)["payload"]))

    return floor


def bench_hits(repeat: int) -> None:
    """Memory-tier and disk-path hits vs the floor; the cost of a write."""
    print(f"{'case':<22}{'floor':>9}{'memory hit':>12}{'ratio':>7}{'disk hit':>10}{'ratio':>7}")
    key = generate_key()
    os.environ["SPARK_CACHE_KEY"] = key
    for size in (1024, 32 * 1024):
        for encrypt in (False, True):
            with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as sealed:
                bound, request, _ = setup(Path(tmp), size, encrypt)
                _, _, encrypted_path = setup(Path(sealed), size, True)
                floor_fn = floor_of(request, encrypted_path, Fernet(key.encode()))
                floor, memory, disk = interleaved_us(bound, floor_fn, repeat)
                name = f"{size // 1024} KB {'encrypted' if encrypt else 'plaintext'}"
                print(
                    f"{name:<22}{floor:>8.1f}µ{memory:>11.1f}µ{memory / floor:>6.2f}x"
                    f"{disk:>9.1f}µ{disk / floor:>6.2f}x"
                )
                bench_write(bound, size, repeat // 4)


def bench_write(bound: BoundCache, size: int, repeat: int) -> None:
    """Median time of storing a fresh answer (the miss path's extra work)."""
    counter = iter(range(10**9))
    body = answer(size)

    def write() -> None:
        request = bound.chat_request("openai", "gpt-4o", f"write {next(counter)}")
        bound.save(request, body)

    print(f"{'':<22}write (miss path adds): {median_us(write, repeat):.1f}µs")


def fill(root: Path, count: int, size: int) -> list[CacheRequest]:
    """Write ``count`` plaintext entries quickly (straight through the store)."""
    manager = CacheManager(root, CacheConfig(enabled=True, cache_dir=root))
    bound = manager.bind()
    requests = []
    now = time.time()
    for index in range(count):
        request = bound.chat_request("openai", f"model-{index % 4}", f"question {index}")
        meta = EntryMeta(request.key, "openai", request.model_id, now, now + 86400)
        payload = {"request": dict(request.normalized), "response": answer(size)}
        path = manager.store.entry_path("openai", request.model_id, request.key)
        manager.store.write(path, encode_entry(meta, payload, None))
        requests.append(request)
    return requests


def rss_mb() -> float:
    """This process's resident memory in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def hit_latency(root: Path, requests: list[CacheRequest], repeat: int) -> float:
    """Median disk-path hit over a spread of keys in a directory."""
    manager = CacheManager(root, CacheConfig(enabled=True, cache_dir=root, memory_max_entries=0))
    bound = manager.bind()
    picks = [requests[(i * 7919) % len(requests)] for i in range(repeat)]
    cursor = iter(picks)
    return median_us(lambda: bound.lookup(next(cursor)), repeat)


def bench_scale(large: int, repeat: int) -> None:
    """Hit latency at 1,000 vs ``large`` entries, get_stats, cleanup_expired, memory growth."""
    with tempfile.TemporaryDirectory() as small_dir, tempfile.TemporaryDirectory() as big_dir:
        small = fill(Path(small_dir), 1000, 1024)
        big = fill(Path(big_dir), large, 1024)
        small_hit = hit_latency(Path(small_dir), small, repeat)
        big_hit = hit_latency(Path(big_dir), big, repeat)
        print(f"hit at 1,000 entries: {small_hit:.1f}µs; at {large:,}: {big_hit:.1f}µs", end=" ")
        print(f"(ratio {big_hit / small_hit:.2f}x)")
        gc.collect()
        before = rss_mb()
        manager = CacheManager(Path(big_dir))
        start = time.perf_counter()
        stats = manager.get_stats()
        took = time.perf_counter() - start
        print(f"get_stats() at {stats['total_entries']:,} entries: {took:.2f}s")
        start = time.perf_counter()
        removed = manager.cleanup_expired()
        took = time.perf_counter() - start
        print(f"cleanup_expired() at {large:,} entries: {took:.2f}s (removed {removed})")
        gc.collect()
        print(f"memory growth over stats + cleanup: {rss_mb() - before:.1f} MB")


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    repeat = 400 if args.quick else 3000
    bench_hits(repeat)
    bench_scale(5000 if args.quick else 100_000, repeat)


if __name__ == "__main__":
    main()
