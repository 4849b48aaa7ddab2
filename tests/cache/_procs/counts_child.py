"""Subprocess entry point for the counts-record tests: a fresh process acting on a cache directory.

Run as ``python counts_child.py COMMAND CACHE_DIR [options]``. Commands:

- ``stats``: ``get_stats()`` of a cache that writes, counting every listing (``os.scandir``) of a
  model folder; prints one JSON line: the directory figures and the model folders listed.
- ``hammer``: touch ``BARRIER/ready-N``, wait for the start time in ``BARRIER/go``, then for
  ``--duration`` seconds save, overwrite (answers of random length) and remove shared keys and
  this writer's own keys, all in one model folder; prints one JSON line of what it did.
- ``die-between``: ``save``, but the process SIGKILLs itself once its temp file exists, before a
  byte is written (between the sections of a write).
- ``die-within``: ``save``, but the process SIGKILLs itself where the entry's ``os.replace``
  would run (inside the rename's section, the record marked for the change).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from typing import Any

from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache

PROVIDER = "openai"
MODEL = "gpt-4o"
FIGURES = ("total_entries", "total_size_bytes", "entries_by_model", "bytes_by_model")


def _bound(cache_dir: str) -> tuple[CacheManager, BoundCache]:
    config = CacheConfig(enabled=True, cache_dir=cache_dir, ttl_seconds=3600)
    manager = CacheManager(config.resolved_dir, config)
    return manager, manager.bind(config)


def _save(bound: BoundCache, prompt: str, text: str) -> bool:
    request = bound.chat_request(PROVIDER, MODEL, [{"role": "user", "content": prompt}])
    return bound.save(request, {"text": text})


def _remove(manager: CacheManager, bound: BoundCache, prompt: str) -> bool:
    request = bound.chat_request(PROVIDER, MODEL, [{"role": "user", "content": prompt}])
    return manager.remove_entry(request.key)


def stats(cache_dir: str) -> dict[str, Any]:
    """``get_stats()`` and the model folders it listed."""
    root = os.path.realpath(cache_dir)
    listed: list[str] = []
    real_scandir = os.scandir

    def counting(path: Any = ".") -> Any:
        # (a folder is listed by its path or through a descriptor: /proc names its folder)
        name = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else path
        if isinstance(name, str):
            parent = os.path.dirname(os.path.dirname(os.path.realpath(name)))
            if parent == root:
                listed.append(os.path.relpath(os.path.realpath(name), root))
        return real_scandir(path)

    os.scandir = counting  # type: ignore[assignment]
    manager, _ = _bound(cache_dir)
    found = manager.get_stats()
    os.scandir = real_scandir
    return {"stats": {name: found[name] for name in FIGURES}, "listed": listed}


def hammer(cache_dir: str, writer: int, barrier: str, duration: float) -> dict[str, Any]:
    manager, bound = _bound(cache_dir)
    rng = random.Random(writer)
    with open(os.path.join(barrier, f"ready-{writer}"), "w"):
        pass
    go, deadline = 0.0, time.monotonic() + 30
    while not go and time.monotonic() < deadline:
        try:
            with open(os.path.join(barrier, "go")) as handle:
                go = float(handle.read())
        except (FileNotFoundError, ValueError):  # (not written yet, or half-way)
            time.sleep(0.005)
    while time.time() < go:
        time.sleep(0.001)
    done = {"saved": 0, "removed": 0}
    end = go + duration
    while time.time() < end:
        shared = f"shared {rng.randrange(8)}"
        own = f"writer {writer} key {rng.randrange(40)}"
        prompt = shared if rng.random() < 0.5 else own
        if rng.random() < 0.7:
            done["saved"] += _save(bound, prompt, "x" * rng.randrange(1, 3000))
        else:
            done["removed"] += _remove(manager, bound, prompt)
    return done


def _die(*_args: Any, **_kwargs: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["stats", "hammer", "die-between", "die-within"])
    parser.add_argument("cache_dir")
    parser.add_argument("--writer", type=int, default=0)
    parser.add_argument("--barrier", default="")
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--prompt", default="doomed")
    args = parser.parse_args(argv)
    if args.command == "stats":
        print(json.dumps(stats(args.cache_dir)))
    elif args.command == "hammer":
        print(json.dumps(hammer(args.cache_dir, args.writer, args.barrier, args.duration)))
    else:
        _, bound = _bound(args.cache_dir)
        if args.command == "die-between":
            os.fdopen = _die  # (the temp file was created in its section; nothing written yet)
        else:
            real_replace = os.replace

            def replace(src: Any, dst: Any, **dir_fds: Any) -> None:
                if str(dst).endswith(".json"):
                    _die()
                real_replace(src, dst, **dir_fds)

            os.replace = replace
        _save(bound, args.prompt, "never stored")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
