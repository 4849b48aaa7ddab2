"""``CacheConfig``: the cache settings of one model, and the one rule of each setting.

A setting's rule (its type, range or allowed values) is written once, as an annotated type
here; spark.toml's cache tables (``spark/config/schema.py``), the ``SPARK_*`` variables
(``spark/config/environment.py``) and :class:`CacheConfig` are all validated with these types,
and :func:`combined_problems` holds the rules that involve several settings. The names are
spark.toml's (``dir``, ``max_size_mb``); ``cache_dir`` and ``max_cache_size_mb`` remain
:class:`CacheConfig`'s aliases.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePath
from typing import Annotated, Any, Final, Literal, get_args, get_type_hints

from pydantic import (
    AfterValidator,
    ConfigDict,
    PlainValidator,
    ValidationError,
    WrapValidator,
    create_model,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from spark.cache.urls import redact_url, url_scheme
from spark.errors import ConfigError

__all__ = [
    "CACHE_ALIASES",
    "CacheBackend",
    "CacheConfig",
    "CacheMode",
    "combined_problems",
    "default_cache_dir",
    "describe_error",
    "one_of",
    "show_value",
]

CacheMode = Literal["read_write", "read_only", "replay", "refresh"]
CACHE_MODES: tuple[str, ...] = get_args(CacheMode)
CacheBackend = Literal["disk", "redis"]
CACHE_BACKENDS: tuple[str, ...] = get_args(CacheBackend)
REDIS_SCHEMES: tuple[str, ...] = ("redis", "rediss", "unix")
# The seed's CacheConfig names -> the names used everywhere (spark.toml, SPARK_*, CacheConfig).
CACHE_ALIASES: dict[str, str] = {"cache_dir": "dir", "max_cache_size_mb": "max_size_mb"}


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where a cache lives when no directory is given, as an absolute path.

    ``$SPARK_CACHE_DIR`` (relative to the current directory), else
    ``$XDG_CACHE_HOME/spark/llm-responses``, else ``~/.cache/spark/llm-responses``; ``env``
    replaces ``os.environ``. Under spark.toml the environment source reads ``SPARK_CACHE_DIR``
    first (and names it as the source), so both paths agree.
    """
    environ = os.environ if env is None else env
    explicit = environ.get("SPARK_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser().absolute()
    xdg = environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "spark" / "llm-responses").absolute()


# --- the rule of each setting ---------------------------------------------------------------


def _number(value: Any, handler: Any) -> Any:
    """A finite int or float (86400 stays an int); text only where the input is text (env)."""
    try:
        number = handler(value)
    except ValidationError:
        raise PydanticCustomError("number_type", "expected a number") from None
    if not math.isfinite(number):
        raise PydanticCustomError("finite_number", "expected a finite number")
    return number


def _at_least_zero(value: int | float) -> int | float:
    if value < 0:
        raise PydanticCustomError("greater_than_equal", "must be >= 0")
    return value


def _above_zero(value: int | float) -> int | float:
    if value <= 0:
        raise PydanticCustomError("greater_than", "must be > 0")
    return value


def _integer(value: Any, handler: Any) -> Any:
    """An int (never a bool); text only where the input is text (env)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "expected an integer")
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError("int_type", "expected an integer") from None


def _path(value: Any) -> Any:
    if not isinstance(value, str | PurePath):
        raise PydanticCustomError("string_type", "expected a string")  # or a Path, in Python
    if "\x00" in str(value):  # (no file system takes one: every open would raise)
        raise PydanticCustomError("path_type", "a path cannot hold a NUL character (\\u0000)")
    return value


def one_of(name: str, allowed: tuple[str, ...]) -> PlainValidator:
    """The rule of a setting that is one of ``allowed`` strings: anything else, of any type
    (``mode = 3``), is told the values it may take."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            listed = {"allowed": ", ".join(allowed)}
            raise PydanticCustomError(f"unknown_{name}", "must be one of {allowed}", listed)
        return value

    return PlainValidator(check)


def _redis_url(value: str) -> str:
    """A ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL. The error shows the URL with
    its password hidden (the "got" of other errors could show it)."""
    if url_scheme(value) not in REDIS_SCHEMES:
        allowed = ", ".join(f"{scheme}://" for scheme in REDIS_SCHEMES)
        raise PydanticCustomError(
            "redis_url",
            "must start with {allowed} (got {shown})",
            {"allowed": allowed, "shown": show_value(redact_url(value))},
        )
    return value


def _sentinel_text(value: Any) -> tuple[str, ...]:
    """Sentinel addresses from a variable: one comma-separated string (``h1:26379,h2:26379``)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    return _sentinels(value)


def _sentinels(value: Any) -> tuple[str, ...]:
    """Sentinel addresses ``host:port``: a list (spark.toml, Python; strict, as every value
    there); kept as a tuple (a ``CacheConfig`` is hashable)."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PydanticCustomError(
            "sentinel_type", 'expected a list of "host:port" strings, e.g. ["s1:26379", "s2:26379"]'
        )
    if not value:
        raise PydanticCustomError("sentinel_empty", 'expected at least one "host:port"')
    for address in value:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise PydanticCustomError(
                "sentinel_address",
                'expected "host:port" (got {shown})',
                {"shown": show_value(address)},
            )
    return tuple(value)


Number = Annotated[int | float, WrapValidator(_number)]
NonNegative = Annotated[Number, AfterValidator(_at_least_zero)]
Positive = Annotated[Number, AfterValidator(_above_zero)]
NonNegativeInt = Annotated[int, WrapValidator(_integer), AfterValidator(_at_least_zero)]
PathValue = Annotated[Path | str, PlainValidator(_path)]
Mode = Annotated[CacheMode, one_of("mode", CACHE_MODES)]
Backend = Annotated[CacheBackend, one_of("backend", CACHE_BACKENDS)]
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
# (Any, not a tuple type: the environment source then passes a variable's text to the rule
# instead of decoding it as JSON.)
Sentinels = Annotated[Any, PlainValidator(_sentinels)]
# The same from a variable: one comma-separated string (``h1:26379,h2:26379``).
SentinelText = Annotated[Any, PlainValidator(_sentinel_text)]


def combined_problems(
    values: Mapping[str, Any], rejected: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """The rules that involve several settings, as ``(key, problem)``: the key to blame. A rule
    reading a key in ``rejected`` (reported as invalid already) would only repeat that problem.
    """

    def known(*keys: str) -> bool:
        return rejected.isdisjoint(keys)

    problems: list[tuple[str, str]] = []
    sentinel, service = values.get("sentinel"), values.get("service")
    redis = values.get("backend") == "redis"
    if known("backend", "url", "sentinel") and redis and not values.get("url") and not sentinel:
        problems.append(("backend", '"redis" needs a url, e.g. url = "redis://localhost:6379/0"'))
    if known("cluster", "sentinel") and values.get("cluster") and sentinel:
        problems.append(
            ("cluster", "cannot be used with sentinel: a Redis Cluster fails over by itself")
        )
    if known("sentinel", "service") and sentinel and not service:
        problems.append(
            ("sentinel", 'needs service = "<name>", the master\'s name in the Sentinel config')
        )
    if known("sentinel", "service") and service and not sentinel:
        problems.append(("service", 'is used only with sentinel = ["host:port", ...]'))
    prefix = values.get("prefix")
    braces = isinstance(prefix, str) and ("{" in prefix or "}" in prefix)
    if known("cluster") and values.get("cluster") and braces:
        problems.append(
            ("prefix", "must not contain { or } with cluster = true (Spark sets the hash tags)")
        )
    return problems


# --- wording --------------------------------------------------------------------------------

# pydantic error type -> our wording; other types keep the message our validators wrote.
_WORDING: dict[str, str] = {
    "bool_type": "expected true or false",
    "bool_parsing": "must be one of true, false, 1, 0, yes, no, on, off",
    "string_type": "expected a string",
}
_SAYS_WHAT_IT_GOT = frozenset(
    {"redis_url", "sentinel_address"}
)  # it shows the URL with the password hidden


def show_value(value: Any) -> str:
    """``value`` as it would look in TOML (strings double-quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | PurePath):
        return json.dumps(str(value))
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def describe_error(error: ErrorDetails) -> str:
    """What is wrong with one value: ``must be > 0 (got 0)``."""
    message = _WORDING.get(error["type"], error["msg"])
    if error["type"] in _SAYS_WHAT_IT_GOT:
        return message
    return f"{message} (got {show_value(error['input'])})"


# --- CacheConfig ----------------------------------------------------------------------------


class _Unset:
    """The value of an alias argument that was not given (None is a value: "the default")."""


_UNSET: Final = _Unset()


@dataclass(frozen=True, init=False)
class CacheConfig:
    """How one model caches; the keys and defaults of spark.toml's ``[cache]``
    (docs/configuration.md), plus ``memory_max_entries`` / ``memory_max_bytes``, the bounds
    of the in-process tier in front of the store.

    ``ttl_seconds`` of 0 (or None) means entries never expire. ``mode`` is one of
    ``read_write`` (default), ``read_only`` (never writes), ``replay`` (never calls the
    provider; a miss is an error) and ``refresh`` (never reads; always calls and overwrites).
    ``backend`` is ``disk`` (entries under ``dir``) or ``redis`` (entries in the Redis at
    ``url`` under the key ``prefix``; the password comes from the URL or from the variable
    named by ``password_env``); with ``local_tier`` a Redis cache keeps a disk copy under
    ``dir``. ``timeout_ms`` bounds each Redis connect and reply; after a failure Redis is
    skipped for ``cooldown_seconds``. ``lock_seconds`` is how long one process may hold the
    cross-process claim on a miss before another takes over (it is renewed while the call
    runs). ``cluster`` talks to a Redis Cluster (``url`` is any of its nodes); ``sentinel``
    (``"host:port"`` addresses) with ``service`` finds the master through Redis Sentinel
    (docs/redis.md).

    ``cache_dir`` and ``max_cache_size_mb`` are the old names of ``dir`` and ``max_size_mb``,
    accepted as keywords (also by ``dataclasses.replace``) and readable as attributes; given
    together with the new name, the old name wins. Invalid values raise :class:`ConfigError`
    listing every problem.
    """

    enabled: bool
    dir: PathValue | None
    ttl_seconds: NonNegative | None
    max_size_mb: Positive
    mode: Mode
    namespace: str
    encrypt: bool
    key_env: str
    key_file: PathValue | None
    memory_max_entries: NonNegativeInt
    memory_max_bytes: NonNegativeInt
    backend: Backend
    url: RedisUrl | None
    password_env: str | None
    prefix: str
    local_tier: bool
    timeout_ms: Positive
    cooldown_seconds: NonNegative
    lock_seconds: Positive
    cluster: bool
    sentinel: Sentinels | None
    service: str | None

    def __init__(
        self,
        enabled: bool = False,
        dir: Path | str | None = None,
        ttl_seconds: float | None = 86400,
        max_size_mb: float = 1024,
        mode: CacheMode = "read_write",
        namespace: str = "",
        encrypt: bool = False,
        key_env: str = "SPARK_CACHE_KEY",
        key_file: Path | str | None = None,
        memory_max_entries: int = 2048,
        memory_max_bytes: int = 64 * 1024 * 1024,
        backend: CacheBackend = "disk",
        url: str | None = None,
        password_env: str | None = None,
        prefix: str = "spark:",
        local_tier: bool = False,
        timeout_ms: float = 100,
        cooldown_seconds: float = 5,
        lock_seconds: float = 30,
        cluster: bool = False,
        sentinel: tuple[str, ...] | list[str] | str | None = None,
        service: str | None = None,
        *,
        cache_dir: Path | str | _Unset | None = _UNSET,
        max_cache_size_mb: float | _Unset = _UNSET,
    ) -> None:
        arguments = dict(locals())  # every parameter by name: the settings and the aliases
        values = {name: arguments[name] for name in _SETTINGS}
        spelled = {name: name for name in _SETTINGS}
        for alias, name in CACHE_ALIASES.items():
            if arguments[alias] is not _UNSET:
                values[name], spelled[name] = arguments[alias], alias
        _check(values, spelled)
        if values["sentinel"] is not None:  # a list or a variable's text: the rule's tuple
            values["sentinel"] = _sentinels(values["sentinel"])
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:  # the dataclass's own, with the Redis URL's password hidden
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.url is not None:
            shown["url"] = redact_url(self.url)
        return f"CacheConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def cache_dir(self) -> Path | str | None:
        """The old name of :attr:`dir`."""
        return self.dir

    @property
    def max_cache_size_mb(self) -> float:
        """The old name of :attr:`max_size_mb`."""
        return self.max_size_mb

    @property
    def resolved_dir(self) -> Path:
        """The cache directory as an absolute path (:func:`default_cache_dir` when unset)."""
        raw = self.dir
        path = default_cache_dir() if raw is None or raw == "" else Path(raw).expanduser()
        return path.absolute()

    @property
    def ttl(self) -> float:
        """The TTL in seconds, 0 meaning never expire."""
        return float(self.ttl_seconds or 0)

    def with_overrides(self, **changes: Any) -> CacheConfig:
        """A copy with the non-None ``changes`` applied (explicit arguments win)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_SETTINGS: tuple[str, ...] = tuple(f.name for f in fields(CacheConfig))
# The rules of CacheConfig's annotations as one strict pydantic model (Python values are not
# coerced: "60" is not a TTL).
_RULE_FIELDS: dict[str, Any] = {
    name: (rule, ...) for name, rule in get_type_hints(CacheConfig, include_extras=True).items()
}
_RULES = create_model("CacheConfig", __config__=ConfigDict(strict=True), **_RULE_FIELDS)


def _check(values: dict[str, Any], spelled: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` naming each invalid setting as the caller spelled it."""
    problems = [f"{spelled[key]}: {problem}" for key, problem in combined_problems(values)]
    try:
        _RULES.model_validate(values)
    except ValidationError as exc:
        problems += [f"{spelled[str(e['loc'][0])]}: {describe_error(e)}" for e in exc.errors()]
    if problems:
        raise ConfigError("invalid CacheConfig: " + "; ".join(problems), problems)
