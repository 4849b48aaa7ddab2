"""What the Redis tests share: a real ``redis-server`` on a free loopback port (no mocks of
Redis), and ``Backend``, the store under test of the contract tests.

The server runs with no persistence and with ``KEYS`` renamed away, so any use of ``KEYS`` by
Spark fails loudly: every listing must go through SCAN or the index sets. (A module of its own,
not conftest.py: test modules import it by a name no other test directory uses.)
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis

from spark.cache import CacheConfig

__all__ = ["Backend", "RedisServer", "free_port", "redis_server_binary", "scan_keys"]


def redis_server_binary() -> str | None:
    """The ``redis-server`` on PATH, or None."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; ``start`` waits for PING, ``kill``/``pause`` inject faults."""

    def __init__(self, binary: str, port: int | None = None, password: str | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--rename-command",
            "KEYS",
            "",
            *(["--requirepass", self.password] if self.password else []),
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(
            port=self.port, password=self.password, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.02)
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL the server and wait for it (a crash: nothing is saved)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but never answered (a hung server)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the server (resuming it first if paused)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def scan_keys(client: redis.Redis, prefix: str) -> list[str]:
    """Every key under ``prefix`` (SCAN: the test server has no KEYS)."""
    return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000))


@dataclass
class Backend:
    """One kind of store under test, and how to make cache configs for it."""

    kind: str  # "disk", "redis" or "tiered"
    root: Path
    url: str
    prefix: str
    client: redis.Redis | None = None
    counter: list[int] = field(default_factory=lambda: [0])

    def config(self, *, other: bool = False, **changes: Any) -> CacheConfig:
        """A cache config of this kind; ``other`` names a second, separate cache."""
        name = "other" if other else "main"
        base = CacheConfig(enabled=True, cache_dir=self.root / name, ttl_seconds=3600)
        if self.kind != "disk":
            base = replace(
                base,
                backend="redis",
                url=self.url,
                prefix=f"{self.prefix}{name}:",
                local_tier=self.kind == "tiered",
            )
        return replace(base, **changes)

    def stored_values(self, config: CacheConfig) -> list[bytes]:
        """The raw bytes of every stored entry of ``config``'s cache (files, or Redis values)."""
        values: list[bytes] = []
        if self.kind != "redis":
            values += [p.read_bytes() for p in Path(config.resolved_dir).rglob("*.json")]
        if self.client is not None:
            for key in self.client.scan_iter(match=f"{config.prefix}e:*", count=1000):
                values.append(self.client.get(key) or b"")
        return values
