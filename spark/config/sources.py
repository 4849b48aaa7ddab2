"""Configuration sources: small objects that each return a dict and say where it came from.

Pure code: no file is read here (pydantic-settings' source classes read the environment and
the TOML files, ``readers.py``; these objects label what they read). The precedence of a model's cache settings is the one list in
:func:`cache_sources`, lowest first, in the spirit of pydantic-settings'
``settings_customise_sources``; :func:`resolve` walks it and remembers which source won.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spark.cache.config import CacheConfig, default_cache_dir, describe_error
from spark.config.readers import ENV_VARS, SparkEnvironment, read_environment
from spark.config.schema import CACHE_KEYS, PATH_KEYS

__all__ = [
    "ArgumentSource",
    "DefaultsSource",
    "DocumentLayer",
    "EnvSource",
    "ResolvedValue",
    "Source",
    "TableSource",
    "cache_sources",
    "deep_merge",
    "model_sources",
    "resolve",
]

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
    """A configuration source: called, it returns the settings it provides (and nothing else).

    ``rejected``: the keys it was given invalid values for (reported as problems already).
    """

    rejected: frozenset[str] = frozenset()

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
        defaults = CacheConfig()
        values = {key: getattr(defaults, key) for key in CACHE_KEYS}
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
    """The ``SPARK_*`` cache variables, read by pydantic-settings' environment source and
    checked with each key's rule; bad values become :attr:`problems`, not exceptions."""

    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        raw = read_environment(env)
        self.problems: list[str] = []
        try:
            checked = SparkEnvironment(**raw)
        except ValidationError as exc:
            errors = exc.errors()
            self.problems = [f"env {e['loc'][0]}: {describe_error(e)}" for e in errors]
            bad = {e["loc"][0] for e in errors}
            checked = SparkEnvironment(**{k: v for k, v in raw.items() if k not in bad})
            self.rejected = frozenset(ENV_VARS.get(str(var), str(var)) for var in bad)
        self._values = checked.model_dump(exclude_unset=True)
        if "dir" in self._values:  # relative to where the command runs, unlike the file's
            self._values["dir"] = resolve_path(self._values["dir"], cwd)

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)

    def label(self, key: str) -> str:
        return "env " + next(var for var, k in ENV_VARS.items() if k == key)


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
