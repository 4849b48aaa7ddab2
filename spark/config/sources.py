"""Configuration sources: small objects that each return a dict and say where it came from.

Pure code: no file is read here. The precedence of a model's cache settings is the one list in
:func:`cache_sources`, lowest first, in the spirit of pydantic-settings'
``settings_customise_sources``; :func:`resolve` walks it and remembers which source won.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from spark.cache.config import (
    CACHE_BACKENDS,
    CACHE_MODES,
    REDIS_SCHEMES,
    CacheConfig,
    redact_url,
    url_scheme,
)
from spark.config.schema import CACHE_KEYS, PATH_KEYS

__all__ = [
    "ENV_VARS",
    "FILE_TO_CACHE_CONFIG",
    "ArgumentSource",
    "DefaultsSource",
    "DocumentLayer",
    "EnvSource",
    "ResolvedValue",
    "Source",
    "TableSource",
    "cache_sources",
    "deep_merge",
    "default_cache_dir",
    "model_sources",
    "resolve",
]

# spark.toml cache keys -> CacheConfig fields (the rest keep their names).
FILE_TO_CACHE_CONFIG: dict[str, str] = {"dir": "cache_dir", "max_size_mb": "max_cache_size_mb"}

# Environment variable -> cache key it sets.
ENV_VARS: dict[str, str] = {
    "SPARK_ENABLE_CACHE": "enabled",
    "SPARK_CACHE_TTL": "ttl_seconds",
    "SPARK_CACHE_DIR": "dir",
    "SPARK_CACHE_MODE": "mode",
    "SPARK_CACHE_MAX_SIZE_MB": "max_size_mb",
    "SPARK_CACHE_BACKEND": "backend",
    "SPARK_CACHE_URL": "url",
}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class ResolvedValue:
    """One setting as resolved: its name (``cache.ttl_seconds``), value and winning source."""

    name: str
    value: Any
    source: str


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: tables merge key by key, any other value replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def toml_key(key: str) -> str:
    """``key`` as written in a TOML table header (quoted unless it is a bare key)."""
    return key if _BARE_KEY.match(key) else '"' + key.replace('"', '\\"') + '"'


def resolve_path(value: str | Path, base_dir: Path) -> Path:
    """``value`` with ``~`` expanded, relative to ``base_dir`` unless it is absolute."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """The built-in cache directory: ``$XDG_CACHE_HOME/spark/llm-responses`` or ``~/.cache/...``.

    ``SPARK_CACHE_DIR`` is deliberately not read here: it is the environment source's job, so
    that ``explain`` can name it.
    """
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "spark" / "llm-responses").absolute()


@dataclass(frozen=True)
class DocumentLayer:
    """One document-shaped overlay (spark.toml, a ``[profiles.<name>]`` table, a profile file).

    ``file`` and ``prefix`` name its tables in provenance: ``spark.toml [profiles.testing.cache]``.
    Relative paths in every layer are resolved against ``base_dir``, the spark.toml directory.
    """

    data: Mapping[str, Any]
    file: str
    base_dir: Path
    prefix: tuple[str, ...] = ()

    def table(self, path: Sequence[str]) -> Mapping[str, Any]:
        """The table at ``path`` (empty when absent)."""
        node: Any = self.data
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}

    def label(self, path: Sequence[str]) -> str:
        """``<file> [<table>]`` for the table at ``path`` of this layer."""
        return f"{self.file} [{'.'.join(toml_key(p) for p in (*self.prefix, *path))}]"


class Source(ABC):
    """A configuration source: called, it returns the settings it provides (and nothing else)."""

    @abstractmethod
    def __call__(self) -> dict[str, Any]:
        """The values this source sets, by cache/model key."""

    @abstractmethod
    def label(self, key: str) -> str:
        """Where ``key`` came from, for ``explain``."""


class DefaultsSource(Source):
    """The built-in defaults of :class:`~spark.cache.config.CacheConfig`, under file key names."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __call__(self) -> dict[str, Any]:
        defaults = {f.name: f.default for f in fields(CacheConfig)}
        values = {key: defaults[FILE_TO_CACHE_CONFIG.get(key, key)] for key in CACHE_KEYS}
        values["dir"] = default_cache_dir(self._env)
        return values

    def label(self, key: str) -> str:
        return "default"


class TableSource(Source):
    """The keys of one table of one layer; ``dir``/``key_file`` resolved against its directory."""

    def __init__(
        self, layer: DocumentLayer, path: Sequence[str], exclude: Iterable[str] = ()
    ) -> None:
        self._layer = layer
        self._path = tuple(path)
        self._exclude = frozenset(exclude)

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in self._layer.table(self._path).items():
            if key in self._exclude:
                continue
            if key in PATH_KEYS and self._path[-1:] == ("cache",):
                value = resolve_path(value, self._layer.base_dir) if value else None
            values[key] = value
        return values

    def label(self, key: str) -> str:
        return self._layer.label(self._path)


class EnvSource(Source):
    """``SPARK_*`` cache variables, parsed; bad values become :attr:`problems`, not exceptions."""

    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        self.problems: list[str] = []
        self._values: dict[str, Any] = {}
        for var, key in ENV_VARS.items():
            raw = env.get(var, "").strip()
            if raw:
                self._parse(var, key, raw, cwd)

    def _parse(self, var: str, key: str, raw: str, cwd: Path) -> None:
        try:
            self._values[key] = _PARSERS[key](raw, cwd)
        except ValueError as exc:
            shown = redact_url(raw) if key == "url" else raw  # a URL may hold a password
            self.problems.append(f"env {var}: {exc} (got {json.dumps(shown)})")

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)

    def label(self, key: str) -> str:
        return "env " + next(var for var, k in ENV_VARS.items() if k == key)


def _parse_bool(raw: str, cwd: Path) -> bool:
    if raw.lower() in _TRUE + _FALSE:
        return raw.lower() in _TRUE
    spellings = (word for pair in zip(_TRUE, _FALSE, strict=True) for word in pair)
    raise ValueError("must be one of " + ", ".join(spellings))


def _parse_number(raw: str, *, strictly_positive: bool) -> int | float:
    try:
        number: int | float = int(raw)
    except ValueError:
        try:
            number = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
    if not math.isfinite(number) or number < 0 or (strictly_positive and number == 0):
        raise ValueError("must be > 0" if strictly_positive else "must be >= 0")
    return number


def _parse_mode(raw: str, cwd: Path) -> str:
    if raw not in CACHE_MODES:
        raise ValueError("must be one of " + ", ".join(CACHE_MODES))
    return raw


def _parse_backend(raw: str, cwd: Path) -> str:
    if raw not in CACHE_BACKENDS:
        raise ValueError("must be one of " + ", ".join(CACHE_BACKENDS))
    return raw


def _parse_url(raw: str, cwd: Path) -> str:
    if url_scheme(raw) not in REDIS_SCHEMES:
        raise ValueError("must start with " + ", ".join(f"{s}://" for s in REDIS_SCHEMES))
    return raw


_PARSERS: dict[str, Callable[[str, Path], Any]] = {
    "enabled": _parse_bool,
    "ttl_seconds": lambda raw, cwd: _parse_number(raw, strictly_positive=False),
    "max_size_mb": lambda raw, cwd: _parse_number(raw, strictly_positive=True),
    "mode": _parse_mode,
    "dir": lambda raw, cwd: resolve_path(raw, cwd),
    "backend": _parse_backend,
    "url": _parse_url,
}


class ArgumentSource(Source):
    """Explicit arguments of the caller (already validated), relative paths against the CWD."""

    def __init__(self, values: Mapping[str, Any], cwd: Path) -> None:
        self._values = {
            key: resolve_path(value, cwd) if key in PATH_KEYS else value
            for key, value in values.items()
        }

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)

    def label(self, key: str) -> str:
        return "argument"


def cache_sources(
    layers: Sequence[DocumentLayer],
    alias: str | None,
    env: Mapping[str, str],
    env_source: Source,
    argument_source: Source,
) -> list[Source]:
    """The precedence of one model's cache settings (``alias`` None: the ``[cache]`` rules).

    Lowest first: built-in defaults; ``[cache]`` of each layer (base file, profile table,
    profile file); ``[models.<alias>.cache]`` of each layer; environment; explicit arguments.
    """
    return [
        DefaultsSource(env),
        *(TableSource(layer, ("cache",)) for layer in layers),
        *(TableSource(layer, ("models", alias, "cache")) for layer in layers if alias),
        env_source,
        argument_source,
    ]


def model_sources(layers: Sequence[DocumentLayer], alias: str) -> list[Source]:
    """The precedence of an alias's provider, model id and options: each layer's table."""
    return [TableSource(layer, ("models", alias), exclude=("cache",)) for layer in layers]


def resolve(sources: Sequence[Source], prefix: str = "") -> dict[str, ResolvedValue]:
    """Apply ``sources`` in order (later wins); each value remembers the source that set it."""
    resolved: dict[str, ResolvedValue] = {}
    for source in sources:
        for key, value in source().items():
            resolved[key] = ResolvedValue(prefix + key, value, source.label(key))
    return resolved
