"""``CacheConfig``: the cache settings of one model (or of a manager's defaults), validated."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from spark.errors import ConfigError

__all__ = ["CacheBackend", "CacheConfig", "CacheMode", "default_cache_dir", "redact_url"]

CacheMode = Literal["read_write", "read_only", "replay", "refresh"]
CACHE_MODES: tuple[str, ...] = get_args(CacheMode)
CacheBackend = Literal["disk", "redis"]
CACHE_BACKENDS: tuple[str, ...] = get_args(CacheBackend)
REDIS_SCHEMES: tuple[str, ...] = ("redis", "rediss", "unix")


def default_cache_dir() -> Path:
    """``$SPARK_CACHE_DIR``, else ``$XDG_CACHE_HOME/spark/llm-responses``, else ``~/.cache/...``."""
    explicit = os.environ.get("SPARK_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "spark" / "llm-responses"


@dataclass(frozen=True)
class CacheConfig:
    """How one model caches. Every field has the default of DESIGN §1.

    ``ttl_seconds`` of 0 (or None) means entries never expire. ``mode`` is one of
    ``read_write`` (default), ``read_only`` (never writes), ``replay`` (never calls the provider;
    a miss is an error) and ``refresh`` (never reads; always calls and overwrites).
    ``memory_max_entries`` / ``memory_max_bytes`` bound the in-process tier in front of the disk.

    ``backend`` is ``disk`` (default: entries under ``cache_dir``) or ``redis`` (entries in the
    Redis at ``url``, ``redis://``, ``rediss://`` for TLS or ``unix://``, under the key
    ``prefix``; the password comes from the URL or from the variable named by ``password_env``).
    With ``local_tier`` a Redis cache keeps a disk copy of what it reads under ``cache_dir``.
    ``timeout_ms`` bounds each Redis connect and reply; after a failure Redis is skipped for
    ``cooldown_seconds``. ``lock_seconds`` is how long one process may hold the cross-process
    claim on a miss before another takes over.
    """

    enabled: bool = False
    cache_dir: Path | str | None = None
    ttl_seconds: float | None = 86400
    max_cache_size_mb: float = 1024
    mode: CacheMode = "read_write"
    namespace: str = ""
    encrypt: bool = False
    key_env: str = "SPARK_CACHE_KEY"
    key_file: Path | str | None = None
    memory_max_entries: int = 2048
    memory_max_bytes: int = 64 * 1024 * 1024
    backend: CacheBackend = "disk"
    url: str | None = None
    password_env: str | None = None
    prefix: str = "spark:"
    local_tier: bool = False
    timeout_ms: float = 100
    cooldown_seconds: float = 5
    lock_seconds: float = 30

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ConfigError("invalid CacheConfig: " + "; ".join(problems), problems)

    @property
    def resolved_dir(self) -> Path:
        """The cache directory as an absolute path (the default directory when unset)."""
        raw = self.cache_dir
        path = default_cache_dir() if raw is None or raw == "" else Path(raw).expanduser()
        return path.absolute()

    @property
    def ttl(self) -> float:
        """The TTL in seconds, 0 meaning never expire."""
        return float(self.ttl_seconds or 0)

    def with_overrides(self, **changes: Any) -> CacheConfig:
        """A copy with the non-None ``changes`` applied (explicit arguments win)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _problems(config: CacheConfig) -> list[str]:
    problems: list[str] = []
    if config.mode not in CACHE_MODES:
        allowed = ", ".join(CACHE_MODES)
        problems.append(f"mode must be one of {allowed}, got {config.mode!r}")
    if config.ttl_seconds is not None and config.ttl_seconds < 0:
        problems.append(f"ttl_seconds must be >= 0 (0 = never expire), got {config.ttl_seconds}")
    if config.max_cache_size_mb <= 0:
        problems.append(f"max_cache_size_mb must be > 0, got {config.max_cache_size_mb}")
    if config.memory_max_entries < 0 or config.memory_max_bytes < 0:
        problems.append("memory_max_entries and memory_max_bytes must be >= 0")
    if not isinstance(config.namespace, str):
        problems.append(f"namespace must be a string, got {type(config.namespace).__name__}")
    return problems + _backend_problems(config)


def _backend_problems(config: CacheConfig) -> list[str]:
    if config.backend not in CACHE_BACKENDS:
        allowed = ", ".join(CACHE_BACKENDS)
        return [f"backend must be one of {allowed}, got {config.backend!r}"]
    problems: list[str] = []
    if config.backend == "redis" and not config.url:
        problems.append('backend "redis" needs a url, e.g. "redis://localhost:6379/0"')
    if config.url and url_scheme(config.url) not in REDIS_SCHEMES:
        allowed = ", ".join(f"{scheme}://" for scheme in REDIS_SCHEMES)
        problems.append(f"url must start with {allowed}, got {url_scheme(config.url)!r}")
    if config.timeout_ms <= 0 or config.lock_seconds <= 0 or config.cooldown_seconds < 0:
        problems.append("timeout_ms and lock_seconds must be > 0, cooldown_seconds >= 0")
    return problems


def url_scheme(url: str) -> str:
    """The scheme of ``url`` (``redis`` of ``redis://host``), "" when it has none."""
    scheme, found, _ = url.partition("://")
    return scheme.lower() if found else ""


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` query) shown as ``***``."""
    url = _URL_PASSWORD.sub(r"\1:***@", url)
    return _QUERY_PASSWORD.sub(r"\1***", url)


_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*):[^@/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")
