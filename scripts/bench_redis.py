"""Benchmark the Redis backend against the disk store, in one run (issues 7 and 15).

Starts its own ``redis-server`` on a free loopback port and a 3-master Redis Cluster (no
persistence) and measures:

- hit latency of ``BoundCache.get_or_call``: disk store (disk-path hit, memory-tier hit), Redis,
  Redis behind a local disk tier, and the cluster, sampled in turn; medians and the ratios;
- throughput of 4 processes hammering one Redis, then the cluster, with 90% hits (calls/s);
- a dead Redis: the first call after a crash (refused) and after a hang (SIGSTOP: one timeout),
  then the latency a call adds once the circuit breaker is open.

    python scripts/bench_redis.py            # about half a minute
    python scripts/bench_redis.py --quick    # smaller counts, for a smoke check
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache

MESSAGES = [{"role": "user", "content": "Summarize the plot of a long novel in a few words."}]
ANSWER = {"text": "A long answer. " * 60, "cost_usd": 0.0012, "usage": {"output_tokens": 300}}
HOLD = 0.0  # provider latency on a miss (0: measure the cache, not a fake provider)


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """``redis-server`` on ``port`` without persistence; returns once it answers PING."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.01)
    raise RuntimeError("redis-server did not start")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_cluster(directory: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A 3-master cluster (``redis-cli --cluster create``); its URL and processes."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if port < 55000:  # (its cluster bus listens on port + 10000)
            ports.append(port)
    processes = []
    for port in ports:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--cluster-enabled", "yes", "--dir", str(directory)]
        args += ["--cluster-config-file", str(directory / f"nodes-{port}.conf")]
        processes.append(
            subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    for port in ports:
        client = redis.Redis(port=port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
    cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    nodes = [f"127.0.0.1:{port}" for port in ports]
    subprocess.run(
        [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for port in ports:
        client = redis.Redis(port=port)
        while client.cluster("info")["cluster_state"] != "ok":
            time.sleep(0.05)
    return f"redis://127.0.0.1:{ports[0]}/0", processes


async def provider() -> dict[str, Any]:
    if HOLD:
        await asyncio.sleep(HOLD)
    return dict(ANSWER)


def bound_of(config: CacheConfig) -> BoundCache:
    return CacheManager(config.resolved_dir, config).bind(config)


async def timed_hit(bound: BoundCache, prompt: Any = MESSAGES) -> int:
    """One hit as a model makes it: build the request, then ``get_or_call``; nanoseconds."""
    start = time.perf_counter_ns()
    request = bound.chat_request("openai", "gpt-4o", prompt, temperature=0.2)
    result = await bound.get_or_call(request, provider)
    took = time.perf_counter_ns() - start
    assert result.cached, "expected a hit"
    return took


async def hit_latencies(caches: dict[str, BoundCache], repeat: int) -> dict[str, float]:
    """Median µs of a hit per cache, sampled in turn (noise falls on all alike)."""
    for bound in caches.values():  # store the entry
        await bound.get_or_call(
            bound.chat_request("openai", "gpt-4o", MESSAGES, temperature=0.2), provider
        )
    samples: dict[str, list[int]] = {name: [] for name in caches}
    gc.disable()
    try:
        for _ in range(repeat):
            for name, bound in caches.items():
                if name == "disk (disk path)":
                    bound.manager.memory.clear()
                samples[name].append(await timed_hit(bound))
    finally:
        gc.enable()
    for bound in caches.values():  # now, while the server is up (not at exit)
        bound.manager.counters.ledger.flush()
    return {name: statistics.median(values) / 1000 for name, values in samples.items()}


def hammer(
    url: str, cluster: bool, prefix: str, seconds: float, start_at: float, worker: int
) -> tuple[int, int]:
    """One process: 90% hits on a shared warm set, 10% new keys; returns (calls, hits)."""
    config = CacheConfig(enabled=True, backend="redis", url=url, prefix=prefix, cluster=cluster)
    bound = bound_of(config)

    async def run() -> tuple[int, int]:
        calls = hits = 0
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        end = time.time() + seconds
        while time.time() < end:
            prompt = f"warm {calls % 200}" if calls % 10 else f"new {worker}-{calls}"
            result = await bound.get_or_call(
                bound.chat_request("openai", "gpt-4o", prompt), provider
            )
            calls += 1
            hits += result.cached
        return calls, hits

    return asyncio.run(run())


def throughput(
    url: str, processes: int, seconds: float, cluster: bool = False
) -> tuple[float, float]:
    """Calls/s of ``processes`` processes together, and their hit rate."""
    prefix = "bench-hammer:"
    warm = bound_of(
        CacheConfig(enabled=True, backend="redis", url=url, prefix=prefix, cluster=cluster)
    )

    async def fill() -> None:
        for n in range(200):
            await warm.get_or_call(warm.chat_request("openai", "gpt-4o", f"warm {n}"), provider)

    asyncio.run(fill())
    warm.manager.counters.ledger.flush()
    start_at = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        args = [(url, cluster, prefix, seconds, start_at, n) for n in range(processes)]
        results = pool.starmap(hammer, args)
    calls = sum(c for c, _ in results)
    hits = sum(h for _, h in results)
    return calls / seconds, hits / calls


async def dead_redis(port: int, repeat: int, fault: str) -> dict[str, float]:
    """First-call latency and added latency per call once the breaker is open (ms)."""
    process = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    config = CacheConfig(
        enabled=True, backend="redis", url=url, prefix="bench-dead:", cooldown_seconds=600
    )
    bound = bound_of(config)

    async def miss(cache: BoundCache | None, n: int) -> float:
        """A miss through the cache, or (None) the same work with no cache at all."""
        start = time.perf_counter()
        request = bound.chat_request("openai", "gpt-4o", f"{fault} {n}")
        await (provider() if cache is None else cache.get_or_call(request, provider))
        return (time.perf_counter() - start) * 1000

    await miss(bound, -1)  # connect
    if fault == "killed":
        process.kill()
    else:
        process.send_signal(signal.SIGSTOP)
    first = await miss(bound, 0)
    opened = [await miss(bound, n) for n in range(1, repeat)]
    baseline = [await miss(None, n) for n in range(1, repeat)]
    process.send_signal(signal.SIGCONT)
    process.kill()
    process.wait()
    added = statistics.median(opened) - statistics.median(baseline)
    return {"first call": first, "added per call (breaker open)": added}


def report(title: str, rows: dict[str, float], unit: str, digits: int = 1) -> None:
    print(f"\n{title}")
    for name, value in rows.items():
        print(f"  {name:<34} {value:10.{digits}f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    repeat = 500 if args.quick else 3000
    port = free_port()
    server = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    nodes_dir = tempfile.TemporaryDirectory()
    cluster_url, cluster = start_cluster(Path(nodes_dir.name))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            base = CacheConfig(enabled=True, ttl_seconds=3600)
            redis_config = replace(base, backend="redis", url=url)
            caches = {
                "disk (disk path)": bound_of(replace(base, cache_dir=root / "disk")),
                "disk (memory tier)": bound_of(replace(base, cache_dir=root / "disk2")),
                "redis": bound_of(replace(redis_config, prefix="bench-r:")),
                "tiered (memory tier)": bound_of(
                    replace(redis_config, prefix="bench-t:", local_tier=True, cache_dir=root / "t")
                ),
                "cluster (3 masters)": bound_of(
                    replace(redis_config, url=cluster_url, cluster=True, prefix="bench-c:")
                ),
            }
            latencies = asyncio.run(hit_latencies(caches, repeat))
        report(f"Hit latency, median of {repeat} (get_or_call incl. key hashing)", latencies, "µs")
        for base in ("disk (disk path)", "disk (memory tier)"):
            ratio = latencies["redis"] / latencies[base]
            print(f"  redis / {base:<26} {ratio:10.2f} x")
        print("  (goal: a Redis hit within 3x of the disk store's disk-path hit)")
        ratio = latencies["cluster (3 masters)"] / latencies["redis"]
        print(f"  cluster / redis                    {ratio:10.2f} x   (goal: within 1.2x)")
        seconds = 2.0 if args.quick else 5.0
        rate, hit_rate = throughput(url, 4, seconds)
        print(f"\n4 processes on one Redis, 90% hits, {seconds:g} s")
        print(
            f"  throughput                         {rate:10.0f} calls/s (hit rate {hit_rate:.0%})"
        )
        rate, hit_rate = throughput(cluster_url, 4, seconds, cluster=True)
        print(f"4 processes on a 3-master cluster, 90% hits, {seconds:g} s")
        print(
            f"  throughput                         {rate:10.0f} calls/s (hit rate {hit_rate:.0%})"
        )
    finally:
        server.kill()
        server.wait()
        for process in cluster:
            process.kill()
            process.wait()
        nodes_dir.cleanup()
    for fault in ("killed", "hung"):
        figures = asyncio.run(dead_redis(free_port(), 200 if args.quick else 1000, fault))
        report(f"Dead Redis ({fault}; timeout_ms=100)", figures, "ms", digits=3)
    print(f"\n(pid {os.getpid()}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
