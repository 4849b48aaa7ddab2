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

__all__ = [
    "Backend",
    "RedisServer",
    "SentinelSetup",
    "ThreeMasterCluster",
    "free_port",
    "redis_server_binary",
    "scan_keys",
    "wait_for",
]


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

    def __init__(
        self,
        binary: str,
        port: int | None = None,
        password: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.password = password
        self.extra = extra or []  # more options: a cluster node's, a replica's, maxmemory
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
            *self.extra,
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


def wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    """Poll ``condition()`` until it is true (errors count as false)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ThreeMasterCluster:
    """A Redis Cluster of three masters and no replicas (``redis-cli --cluster create``).

    ``cluster-require-full-coverage no``: when a master is killed, the others keep serving
    their slots (what a fleet sees while a failover is pending)."""

    def __init__(self, binary: str, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        ports = [_cluster_port(), _cluster_port(), _cluster_port()]
        self.nodes = [RedisServer(binary, p, extra=self._options(directory, p)) for p in ports]
        self.cli = shutil.which("redis-cli") or str(Path(binary).with_name("redis-cli"))

    @staticmethod
    def _options(directory: Path, port: int) -> list[str]:
        return [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(directory / f"nodes-{port}.conf"),
            "--cluster-node-timeout",
            "2000",
            "--cluster-require-full-coverage",
            "no",
            "--dir",
            str(directory),
        ]

    @property
    def url(self) -> str:
        """The URL of the first node (any node will do: the client learns the others)."""
        return self.nodes[0].url

    def start(self) -> ThreeMasterCluster:
        """Start the nodes, assign the slots and wait until every node says ``ok``."""
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=30,
        )
        for node in self.nodes:
            client = redis.Redis(port=node.port)
            wait_for(
                lambda client=client: client.cluster("info")["cluster_state"] == "ok",
                "the cluster to be ok",
            )
            client.close()
        return self

    def client(self) -> Any:
        """A plain cluster client, to look at what Spark stored."""
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(self.url)

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


class SentinelSetup:
    """A master, its replica, and one Sentinel watching them (quorum 1, fast failover)."""

    SERVICE = "spark-test"

    def __init__(self, binary: str, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.master = RedisServer(binary)
        self.replica = RedisServer(
            binary, extra=["--replicaof", "127.0.0.1", str(self.master.port)]
        )
        self.sentinel_port = free_port()
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the Sentinel."""
        return f"127.0.0.1:{self.sentinel_port}"

    def start(self) -> SentinelSetup:
        """Start both servers and the Sentinel; wait until the Sentinel knows the replica."""
        self.master.start()
        self.replica.start()
        replica = redis.Redis(port=self.replica.port)
        wait_for(
            lambda: replica.info("replication").get("master_link_status") == "up", "replication"
        )
        replica.close()
        config = self.directory / f"sentinel-{self.sentinel_port}.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 400\n"
            f"sentinel failover-timeout {self.SERVICE} 2000\n",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [self.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sentinel = redis.Redis(port=self.sentinel_port)
        wait_for(
            lambda: len(sentinel.sentinel_slaves(self.SERVICE)) == 1,
            "the Sentinel to see the replica",
        )
        sentinel.close()
        return self

    def master_port(self) -> int:
        """The port of the master as the Sentinel names it now."""
        sentinel = redis.Redis(port=self.sentinel_port)
        try:
            _, port = sentinel.sentinel_get_master_addr_by_name(self.SERVICE)
            return int(port)
        finally:
            sentinel.close()

    def stop(self) -> None:
        """Stop the Sentinel and both servers."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.master.stop()
        self.replica.stop()


def scan_keys(client: redis.Redis, prefix: str) -> list[str]:
    """Every key under ``prefix`` (SCAN: the test server has no KEYS)."""
    return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000))


@dataclass
class Backend:
    """One kind of store under test, and how to make cache configs for it."""

    kind: str  # "disk", "redis", "tiered", "cluster" or "sentinel"
    root: Path
    url: str
    prefix: str
    client: redis.Redis | None = None
    counter: list[int] = field(default_factory=lambda: [0])

    def config(self, *, other: bool = False, **changes: Any) -> CacheConfig:
        """A cache config of this kind; ``other`` names a second, separate cache."""
        name = "other" if other else "main"
        base = CacheConfig(enabled=True, cache_dir=self.root / name, ttl_seconds=3600)
        if self.kind == "sentinel":  # self.url: the Sentinel's address
            base = replace(
                base,
                backend="redis",
                sentinel=(self.url,),
                service=SentinelSetup.SERVICE,
                prefix=f"{self.prefix}{name}:",
            )
        elif self.kind != "disk":
            base = replace(
                base,
                backend="redis",
                url=self.url,
                prefix=f"{self.prefix}{name}:",
                local_tier=self.kind == "tiered",
                cluster=self.kind == "cluster",
            )
        return replace(base, **changes)

    def entry_names(self, config: CacheConfig) -> list[bytes]:
        """The Redis keys of the entries of ``config``'s cache (a cluster's have hash tags)."""
        assert self.client is not None
        shard = "{??}" if self.kind == "cluster" else ""
        return list(self.client.scan_iter(match=f"{config.prefix}{shard}e:*", count=1000))

    def stored_values(self, config: CacheConfig) -> list[bytes]:
        """The raw bytes of every stored entry of ``config``'s cache (files, or Redis values)."""
        values: list[bytes] = []
        if self.kind != "redis":
            values += [p.read_bytes() for p in Path(config.resolved_dir).rglob("*.json")]
        if self.client is not None:
            for key in self.entry_names(config):
                values.append(self.client.get(key) or b"")
        return values
