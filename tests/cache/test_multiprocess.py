"""Many processes on one cache directory: concurrent rewrites are never seen torn, and a writer
killed mid-write leaves the previous entry intact and a temp file that cleanup removes.

The other processes are real (``tests/cache/_procs/cache_op.py`` run with ``sys.executable``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.codec import decode_envelope

pytestmark = pytest.mark.slow

PROVIDER = "openai"
MODEL = "gpt-4o"
CACHE_OP = Path(__file__).parent / "_procs" / "cache_op.py"


def cache_op(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CACHE_OP), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def config_for(tmp_path: Path, encrypt: bool = False) -> CacheConfig:
    """The configuration ``cache_op.py`` uses."""
    return CacheConfig(enabled=True, cache_dir=tmp_path / "c", ttl_seconds=3600, encrypt=encrypt)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plaintext", "encrypted"])
def test_concurrent_writers_and_readers_never_see_a_torn_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypt: bool
) -> None:
    if encrypt:
        monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    cache_dir = str(config_for(tmp_path).resolved_dir)
    duration, keys, count = 1.5, 6, 4
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    options = ["--keys", str(keys), "--pad", "40000", "--duration", str(duration)]
    workers = [
        cache_op("hammer", cache_dir, "--writer", str(n), "--barrier", str(barrier), *options)
        for n in range(count)
    ]
    deadline = time.monotonic() + 20
    while len(list(barrier.glob("ready-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    (barrier / "go.tmp").write_text(str(time.time() + 0.05))
    (barrier / "go.tmp").replace(barrier / "go")
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err
        reports.append(json.loads(out))

    for report in reports:
        assert report["bad"] == [], report["bad"]
        assert report["bad_count"] == 0
        assert report["corrupt_entries_seen"] == 0
        assert report["warnings"] == []
        assert report["failed_writes"] == 0
        assert report["writes"] > 20
        assert report["hits"] > 0
    assert sum(r["raw_reads"] for r in reports) > 50
    # the processes really overlapped
    assert max(r["first_op"] for r in reports) < min(r["last_op"] for r in reports)
    # what is left on disk: one complete, self-consistent entry per key, no temp files
    config = config_for(tmp_path, encrypt)
    manager = CacheManager(config.resolved_dir, config)
    bound = manager.bind(config)
    for index in range(keys):
        request = bound.chat_request(
            PROVIDER, MODEL, [{"role": "user", "content": f"shared prompt {index}"}]
        )
        payload = bound.lookup(request)
        assert payload is not None
        assert payload["text"].startswith(f"{index}:")
    assert manager.get_stats()["total_entries"] == keys
    assert list(manager.store.temp_files()) == []


def _wait_for_temp(folder: Path, key: str, pid: int, timeout: float = 10.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(folder.glob(f".{key}.{pid}.*.tmp")) if folder.exists() else []
        if found and found[0].stat().st_size > 0:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"writer {pid} never created its temp file in {folder}")


@pytest.mark.parametrize("previous", [True, False], ids=["over-an-entry", "new-entry"])
def test_writer_killed_mid_write_leaves_the_entry_intact(tmp_path: Path, previous: bool) -> None:
    config = config_for(tmp_path)
    manager = CacheManager(config.resolved_dir, config)
    bound = manager.bind(config)
    request = bound.chat_request(PROVIDER, MODEL, [{"role": "user", "content": "question"}])
    path = Path(manager.store.location(PROVIDER, MODEL, request.key))
    if previous:
        assert bound.save(request, {"text": "previous answer"})
    before = path.read_bytes() if previous else None
    cache_dir = str(config.resolved_dir)
    doomed = cache_op("blocked-save", cache_dir, "--prompt", "question", "--answer", "new")
    alive = cache_op("blocked-save", cache_dir, "--prompt", "question", "--answer", "newer")
    try:
        doomed_temp = _wait_for_temp(path.parent, request.key, doomed.pid)
        alive_temp = _wait_for_temp(path.parent, request.key, alive.pid)
        # the temp file holds a whole entry that only lacked its rename
        assert decode_envelope(doomed_temp.read_bytes()).meta.key == request.key
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)

        assert (path.read_bytes() if path.exists() else None) == before
        assert doomed_temp.exists()
        manager.memory.clear()
        payload = bound.lookup(request)
        assert (payload["text"] if payload else None) == ("previous answer" if previous else None)
        assert manager.cleanup_expired() == 0  # no entry expired; temps are not entries
        assert not doomed_temp.exists()  # its writer is dead
        assert alive_temp.exists()  # a live writer's temp file is left alone
        assert (path.read_bytes() if path.exists() else None) == before
    finally:
        for proc in (doomed, alive):
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
    manager.cleanup_expired()
    assert not alive_temp.exists()
    assert manager.get_stats()["total_entries"] == (1 if previous else 0)
