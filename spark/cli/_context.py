"""What the commands share: the global ``--config``, profile/directory options, the cache target.

A cache command works on one cache: the directory ``--dir`` when given, else the cache of the
active profile's rules (``[cache]``, or one alias's with ``--model``) from spark.toml and the
environment — a directory, or a Redis (``backend = "redis"``). Its keys always come from those
rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import click

from spark.cache import CacheConfig, CacheManager, KeyRing, load_keyring
from spark.cache.stores.base import EntryStore
from spark.config import Settings, load_settings

__all__ = [
    "CacheTarget",
    "CliState",
    "cache_target",
    "dir_option",
    "pass_state",
    "profile_option",
]


@dataclass
class CliState:
    """The global options: which spark.toml (None: ``$SPARK_CONFIG``, else a search upwards)."""

    config_path: Path | None = None
    traceback: bool = False

    def settings(self, profile: str | None = None) -> Settings:
        """The settings of ``profile`` (None: ``$ENVIRONMENT``, else the file's default)."""
        return load_settings(self.config_path, profile=profile)


pass_state = click.make_pass_decorator(CliState, ensure=True)

profile_option = click.option(
    "--profile",
    metavar="NAME",
    help="Profile to use (default: $ENVIRONMENT, else [spark] default_profile).",
)

dir_option = click.option(
    "--dir",
    "cache_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache directory to work on (default: the profile's cache: its dir, or its Redis).",
)


# Bulk commands over a network may take longer per reply than a model's hit path allows.
_ADMIN_TIMEOUT_MS = 2000.0


@dataclass(frozen=True)
class CacheTarget:
    """One cache (a directory, or a Redis and its local directory) and the cache rules (keys,
    encryption) it is used with."""

    cache_dir: Path
    config: CacheConfig
    settings: Settings

    @cached_property
    def manager(self) -> CacheManager:
        """A manager of the cache (its own, not the process-wide one)."""
        return CacheManager(self.cache_dir, self.config)

    @property
    def store(self) -> EntryStore:
        """The cache as a byte store."""
        return self.manager.store

    @property
    def where(self) -> str:
        """The directory, or the Redis URL and key prefix, for messages."""
        return self.store.describe()

    def keyring(self) -> KeyRing | None:
        """The configured keys (None when there are none; never generated)."""
        return load_keyring(self.config.key_env, self.config.key_file, required=False)


def cache_target(
    state: CliState, profile: str | None, cache_dir: Path | None, alias: str | None = None
) -> CacheTarget:
    """The cache a command works on and the rules that go with it (``--dir``: that directory)."""
    settings = state.settings(profile)
    config = settings.cache_config(alias)
    if cache_dir is not None:
        config = replace(config, backend="disk", cache_dir=cache_dir.expanduser().absolute())
    elif config.backend == "redis":
        config = replace(config, timeout_ms=max(config.timeout_ms, _ADMIN_TIMEOUT_MS))
    return CacheTarget(config.resolved_dir, config, settings)
