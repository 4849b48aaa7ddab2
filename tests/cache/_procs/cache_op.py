"""Subprocess entry point for the cache tests: act on a cache directory from another process.

Run as ``python cache_op.py COMMAND CACHE_DIR [options]``. The cache encrypts when
``SPARK_CACHE_KEY`` is set in the environment. Commands:

- ``save``: store ``--answer`` for ``--prompt``.
- ``clear``: ``clear_all()``; ``remove``: ``remove_entry`` of ``--prompt``'s key.
- ``blocked-save``: like ``save``, but an entry's ``os.replace`` never returns (fault injection:
  the test SIGKILLs this process while its temp file is on disk).
- ``hammer``: touch ``BARRIER/ready-N``, wait for the start time in ``BARRIER/go``, then rewrite
  and read a few shared keys for ``--duration`` seconds, checking every hit and every raw file
  read; prints a JSON report on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache, CacheRequest
from spark.cache.codec import decode_envelope, open_payload

PROVIDER = "openai"
MODEL = "gpt-4o"


def _bound(cache_dir: str) -> tuple[CacheManager, BoundCache]:
    config = CacheConfig(
        enabled=True,
        cache_dir=cache_dir,
        ttl_seconds=3600,
        encrypt=bool(os.environ.get("SPARK_CACHE_KEY")),
    )
    manager = CacheManager(config.resolved_dir, config)
    return manager, manager.bind(config)


def _request(bound: BoundCache, prompt: str) -> CacheRequest:
    return bound.chat_request(PROVIDER, MODEL, [{"role": "user", "content": prompt}])


def digest(text: str) -> str:
    """The checksum a hammer answer carries."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_payload(payload: Any, request: CacheRequest, index: int) -> str | None:
    """Why a hit is not a complete, self-consistent answer of ``request``; None when it is."""
    response = payload.get("response") if isinstance(payload, dict) else None
    if not isinstance(response, dict):
        return f"no response object: {payload!r:.200}"
    text = response.get("text")
    if not isinstance(text, str) or response.get("sha256") != digest(text):
        return f"checksum mismatch for key {index}"
    if not text.startswith(f"{index}:"):
        return f"answer of another key: {text[:40]!r} for key {index}"
    if payload.get("request") != request.normalized:
        return f"request mismatch for key {index}"
    return None


def hammer(args: argparse.Namespace) -> dict[str, Any]:
    """Rewrite and read shared keys; report what was seen."""
    collect = _Collect()
    logging.getLogger("spark.cache").addHandler(collect)
    manager, bound = _bound(args.cache_dir)
    requests = [_request(bound, f"shared prompt {i}") for i in range(args.keys)]
    paths = [manager.store.location(PROVIDER, MODEL, r.key) for r in requests]
    rng = random.Random(args.writer)
    pad = "p" * args.pad
    report: dict[str, Any] = dict(writes=0, failed_writes=0, hits=0, misses=0, raw_reads=0)
    bad: list[str] = []
    written: set[int] = set()
    start_at = _wait_for_go(Path(args.barrier), args.writer)
    while time.time() < start_at:
        time.sleep(0.001)
    report["first_op"] = time.time()
    end = start_at + args.duration
    while time.time() < end:
        index = rng.randrange(args.keys)
        text = f"{index}:{args.writer}:{report['writes']}:{pad}"
        if bound.save(requests[index], {"text": text, "sha256": digest(text)}):
            report["writes"] += 1
            written.add(index)
        else:
            report["failed_writes"] += 1
        index = rng.randrange(args.keys)
        response = bound.lookup(requests[index])  # (the reader checked the stored request)
        payload = (
            None
            if response is None
            else {"response": response, "request": requests[index].normalized}
        )
        if payload is None:
            report["misses"] += 1
            if index in written:
                bad.append(f"key {index} vanished after it was written")
        else:
            report["hits"] += 1
            problem = _check_payload(payload, requests[index], index)
            if problem:
                bad.append(problem)
        index = rng.randrange(args.keys)
        try:
            raw = Path(paths[index]).read_bytes()
        except FileNotFoundError:
            continue
        report["raw_reads"] += 1
        try:
            envelope = decode_envelope(raw)
            problem = _check_payload(open_payload(envelope, bound.keyring), requests[index], index)
        except Exception as exc:  # any failure to parse a complete file is what we look for
            problem = f"raw read of key {index}: {type(exc).__name__}: {exc}"
        if problem:
            bad.append(problem)
    report["last_op"] = time.time()
    report["bad"] = bad[:10]
    report["bad_count"] = len(bad)
    report["corrupt_entries_seen"] = manager.get_stats()["corrupt_entries_seen"]
    report["warnings"] = collect.messages
    return report


def _wait_for_go(barrier: Path, writer: int) -> float:
    """Say this process is ready, then wait for the start time the test writes to ``go``."""
    (barrier / f"ready-{writer}").touch()
    go = barrier / "go"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return float(go.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.005)
    raise TimeoutError("the test never said go")


_real_replace = os.replace


def _block_forever(src: str, dst: str, **dir_fds: int) -> None:
    """``os.replace`` of an entry never returns (bookkeeping such as ``.gitignore`` goes on)."""
    if not str(dst).endswith(".json"):
        return _real_replace(src, dst, **dir_fds)
    time.sleep(3600)


def main(argv: list[str]) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["save", "clear", "remove", "blocked-save", "hammer"])
    parser.add_argument("cache_dir")
    parser.add_argument("--prompt", default="")
    parser.add_argument("--answer", default="")
    parser.add_argument("--writer", type=int, default=0)
    parser.add_argument("--keys", type=int, default=6)
    parser.add_argument("--pad", type=int, default=0)
    parser.add_argument("--barrier", default="")
    parser.add_argument("--duration", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.command == "hammer":
        print(json.dumps(hammer(args)))
        return 0
    manager, bound = _bound(args.cache_dir)
    request = _request(bound, args.prompt)
    if args.command == "clear":
        manager.clear_all()
    elif args.command == "remove":
        return 0 if manager.remove_entry(request.key) else 1
    else:
        if args.command == "blocked-save":
            os.replace = _block_forever
        return 0 if bound.save(request, {"text": args.answer}) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
