"""What the commands share: the global ``--config``, profile/directory options, the cache target.

A cache command works on one directory: ``--dir`` when given, else the directory of the active
profile's cache rules (``[cache]``, or one alias's with ``--model``), from spark.toml and the
environment. Its keys always come from those rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from spark.cache import CacheConfig, KeyRing, load_keyring
from spark.cache.store import DiskStore
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
    help="Cache directory to work on (default: the profile's cache dir).",
)


@dataclass(frozen=True)
class CacheTarget:
    """One cache directory and the cache rules (keys, encryption) it is used with."""

    cache_dir: Path
    config: CacheConfig
    settings: Settings

    @property
    def store(self) -> DiskStore:
        """The directory as a byte store."""
        return DiskStore(self.cache_dir)

    def keyring(self) -> KeyRing | None:
        """The configured keys (None when there are none; never generated)."""
        return load_keyring(self.config.key_env, self.config.key_file, required=False)


def cache_target(
    state: CliState, profile: str | None, cache_dir: Path | None, alias: str | None = None
) -> CacheTarget:
    """The directory a cache command works on and the rules that go with it."""
    settings = state.settings(profile)
    config = settings.cache_config(alias)
    directory = cache_dir.expanduser().absolute() if cache_dir else config.resolved_dir
    return CacheTarget(directory, config, settings)
