"""One batch of measurements in a fresh process, for ``scripts/bench_cache.py`` (which launches it).

    python scripts/bench_cache_child.py spark ROOT --count N --first-live E --seed S --batch K
        [--encrypt]
    python scripts/bench_cache_child.py floor ROOT --count N --first-live E --seed S --batch K
        --manifest FILE --width W [--encrypt]
    python scripts/bench_cache_child.py maintain ROOT

``spark`` / ``floor``: both import the same modules, build the manager and binding of ROOT and
pick K distinct entries at random (seeded: the same K, in the same order, for the same seed)
from the live ones (indexes E..N-1), all untimed. Then each of the K is timed on its own, in
turn: ``spark`` times a hit (``chat_request`` + ``get_or_call``; the memory tier never holds the
entry, as no key repeats) and ``floor`` times sha256 of the request's canonical JSON + reading
the entry file + Fernet.decrypt (when encrypted) + json.loads (the requests, their entry files
and the Fernet are prepared untimed before the first). Sample 1 is this process's first hit;
samples 2..K are first reads of a key with the code warm. Prints one JSON line of lists of
nanoseconds, one item per sample.

``maintain``: times ``get_stats()`` and ``cleanup_expired()`` of ROOT and reports this process's
resident memory before, after and at its peak over the two (MB). Prints one JSON line.

The entries must have been written by ``bench_cache.py`` (``corpus_request`` below names them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from spark.cache import BoundCache, CacheConfig, CacheManager, CacheRequest

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def corpus_config(root: Path, encrypt: bool, ttl: float = 86400, memory: int = 2048) -> CacheConfig:
    """The rules the benchmark's entries are written and read with (no size-limit eviction)."""
    return CacheConfig(
        enabled=True,
        cache_dir=root,
        encrypt=encrypt,
        ttl_seconds=ttl,
        max_cache_size_mb=10**7,
        memory_max_entries=memory,
    )


def corpus_request(bound: BoundCache, index: int) -> CacheRequest:
    """The request of entry ``index`` of a benchmark directory, built as a model builds it."""
    return bound.chat_request("openai", f"model-{index % 4}", f"question {index}", temperature=0.2)


async def never() -> dict[str, Any]:
    """The provider call of a hit: never made."""
    raise AssertionError("benchmark expected a hit")


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``) in MB; 0 when unavailable."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS; False when unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def maintain(root: Path) -> dict[str, Any]:
    """Time get_stats and cleanup_expired in this (fresh) process; memory before/after/peak."""
    manager = CacheManager(root, corpus_config(root, encrypt=False))
    gc.collect()
    peak_reset = reset_peak()
    before = status_mb("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    stats = manager.get_stats()
    stats_s = time.perf_counter() - start
    start = time.perf_counter()
    removed = manager.cleanup_expired()
    cleanup_s = time.perf_counter() - start
    after = status_mb("VmRSS")
    peak = (
        status_mb("VmHWM")
        if peak_reset
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "entries": stats.get("total_entries"),
        "stats_s": stats_s,
        "cleanup_s": cleanup_s,
        "removed": removed,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "peak_mb": max(peak, after),
        "peak_exact": peak_reset,
        "maxrss_before_mb": maxrss_before,
    }


def entry_file(manifest: Path, width: int, index: int) -> str:
    """Line ``index`` of a manifest of fixed-width lines (the entry file of each index)."""
    with open(manifest, "rb") as handle:
        handle.seek(index * (width + 1))
        return handle.read(width).decode().rstrip()


def batch_indexes(seed: int, first_live: int, count: int, batch: int) -> list[int]:
    """``batch`` distinct live indexes, picked at random (seeded)."""
    if not 0 < batch <= count - first_live:
        raise SystemExit(f"--batch {batch} must be 1..{count - first_live} (the live entries)")
    return random.Random(seed).sample(range(first_live, count), batch)


def first_hits(args: argparse.Namespace) -> dict[str, Any]:
    """Untimed setup shared by both modes, then K timed first hits (or floors), one per key."""
    root = Path(args.root)
    config = corpus_config(root, args.encrypt)
    manager = CacheManager(root, config)
    bound = manager.bind(config)
    indexes = batch_indexes(args.seed, args.first_live, args.count, args.batch)
    if args.mode == "floor":
        requests = [corpus_request(bound, index) for index in indexes]  # (hashed normalized)
        jobs = [
            (entry_file(Path(args.manifest), args.width, index), request.normalized, request.key)
            for index, request in zip(indexes, requests, strict=True)
        ]
        fernet = Fernet(os.environ["SPARK_CACHE_KEY"].encode()) if args.encrypt else None
        return asyncio.run(_floor(jobs, fernet)) | {"index": indexes}
    corpus_request(bound, indexes[0])  # untimed in both modes (the floor needs it): same code warm
    return asyncio.run(_spark(bound, indexes)) | {"index": indexes}


async def _floor(jobs: list[tuple[str, Any, str]], fernet: Fernet | None) -> dict[str, Any]:
    took: list[int] = []
    same_key: list[bool] = []
    payloads: list[Any] = []
    gc.disable()
    for path, normalized, key in jobs:
        start = time.perf_counter_ns()
        digest = hashlib.sha256(_CANONICAL.encode(normalized).encode("ascii")).hexdigest()
        with open(path, "rb") as handle:
            data = handle.read()
        payload = json.loads(data)["payload"]
        if fernet is not None:
            payload = json.loads(fernet.decrypt(payload))
        took.append(time.perf_counter_ns() - start)
        same_key.append(digest == key)
        payloads.append(payload)
    gc.enable()
    for (path, _, _), payload in zip(jobs, payloads, strict=True):
        if not isinstance(payload, dict) or "response" not in payload:
            raise SystemExit(f"floor: {path} does not hold a payload with a response")
    return {"ns": took, "same_key": same_key}


async def _spark(bound: BoundCache, indexes: list[int]) -> dict[str, Any]:
    took: list[int] = []
    gets: list[int] = []
    cached: list[bool] = []
    gc.disable()
    for index in indexes:
        start = time.perf_counter_ns()
        request = corpus_request(bound, index)
        built = time.perf_counter_ns()
        result = await bound.get_or_call(request, never)
        end = time.perf_counter_ns()
        took.append(end - start)
        gets.append(end - built)
        cached.append(result.cached)
    gc.enable()
    if not all(cached):
        raise SystemExit("spark: expected a hit for every key")
    return {"ns": took, "get_ns": gets}


def main() -> None:
    """Parse the arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("spark", "floor", "maintain"))
    parser.add_argument("root")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--first-live", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--manifest")
    parser.add_argument("--width", type=int, default=0)
    parser.add_argument("--batch", type=int, default=20, help="keys timed in this process")
    parser.add_argument("--encrypt", action="store_true")
    args = parser.parse_args()
    result = maintain(Path(args.root)) if args.mode == "maintain" else first_hits(args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
