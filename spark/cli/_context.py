"""What the commands share: the global ``--config``, profile/directory options, the cache target.

A cache command works on one cache: the directory ``--dir`` when given, else the cache of the
active profile's rules (``[cache]``, or one alias's with ``--model``) from spark.toml and the
environment — a directory, or a Redis (``backend = "redis"``). Its keys always come from those
rules. A mistake is an error, never an empty success: a ``--config`` or ``--dir`` that does
not exist, a ``--provider`` or ``--model`` that names nothing Spark knows (with close matches).
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import click

from spark.cache import CacheConfig, CacheManager, KeyRing, load_keyring
from spark.cache.policy import CachePolicy
from spark.cache.stores.base import EntryStore
from spark.cache.stores.maintenance import scan_stats
from spark.cli._errors import CliError
from spark.config import KNOWN_PROVIDERS, Settings, load_settings
from spark.errors import ConfigError
from spark.models.pricing import BUILTIN_PRICES
from spark.models.registry import cache_model_id

__all__ = [
    "CacheTarget",
    "CliState",
    "EntryFilter",
    "alias_of",
    "cache_target",
    "dir_option",
    "filtered_target",
    "note_missing_cache",
    "pass_state",
    "profile_option",
]

_CONFIG_FILE_NAME = "spark.toml"
T = TypeVar("T")


@dataclass
class CliState:
    """The global options: which spark.toml (None: ``$SPARK_CONFIG``, else a search upwards).

    ``command`` is the running command (``("cache", "verify")``) and ``rules`` the cache rules
    it works with, once it knows them: an error's hint depends on both (a key for an existing
    cache, or a new key for a new one).
    """

    config_path: Path | None = None
    traceback: bool = False
    rules: CacheConfig | None = None
    command: tuple[str, ...] = ()

    def settings(self, profile: str | None = None, **overrides: Any) -> Settings:
        """The settings of ``profile`` (None: ``$ENVIRONMENT``, else the file's default); an
        unknown profile's error suggests the profile it is closest to (``prod``: production)."""
        path = self.config_file()
        try:
            return load_settings(path, profile=profile, overrides=overrides or None)
        except ConfigError as exc:
            guess = _profile_guess(path, profile)
            if not guess:
                raise
            raise CliError(str(exc), guess) from exc

    def config_file(self) -> Path | None:
        """``--config`` as given, once checked to name a spark.toml (or a directory with one)."""
        path = self.config_path
        if path is None:
            return None
        found = path.expanduser()
        if found.is_dir():
            found = found / _CONFIG_FILE_NAME
        if not found.is_file():
            what = f"no {_CONFIG_FILE_NAME} in that directory" if path.is_dir() else "no such file"
            raise CliError(
                f"--config {path}: {what}",
                "Give the path of a spark.toml (or of its directory), or leave --config out to "
                "use $SPARK_CONFIG or the nearest spark.toml.",
            )
        return path


def pass_state(command: Callable[..., T]) -> Callable[..., T]:
    """Pass the ``CliState`` as the first argument, noting which command runs (its hints
    depend on it: `spark config validate` is not told to run `spark config validate`)."""

    def run(*args: Any, **kwargs: Any) -> T:
        ctx = click.get_current_context()
        state = ctx.ensure_object(CliState)
        state.command = tuple(ctx.command_path.split()[1:])
        return ctx.invoke(command, state, *args, **kwargs)

    return functools.update_wrapper(run, command)


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


def _profile_guess(path: Path | None, profile: str | None) -> str:
    """``Did you mean ENVIRONMENT=production?`` when the profile asked for is unknown."""
    name, given = (
        (profile, "--profile ") if profile else (os.environ.get("ENVIRONMENT"), "ENVIRONMENT=")
    )
    name = (name or "").strip()
    if not name:
        return ""
    try:
        known = load_settings(path, profile="default").profiles
    except ConfigError:  # the file itself has problems: they come first
        return ""
    close = _close_matches(name, known) if name not in known else []
    return f"Did you mean {_either([given + c for c in close])}?" if close else ""


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
    def writes(self) -> bool:
        """Whether the cache's rules write (a replaying or read-only cache keeps no file of its
        own, not even the folder summary of ``get_stats``)."""
        return CachePolicy.from_config(self.config).writes

    @property
    def where(self) -> str:
        """The directory, or the Redis URL and key prefix, for messages."""
        return self.store.describe()

    def keyring(self) -> KeyRing | None:
        """The configured keys (None when there are none; never generated)."""
        return load_keyring(self.config.key_env, self.config.key_file, required=False)


def cache_target(
    state: CliState,
    profile: str | None,
    cache_dir: Path | None,
    alias: str | None = None,
    *,
    settings: Settings | None = None,
) -> CacheTarget:
    """The cache a command works on and the rules that go with it (``--dir``: that directory,
    which must exist: a typo is an error, not an empty cache). ``settings``: those of
    ``profile``, when the command has loaded them already."""
    settings = settings or state.settings(profile)
    config = settings.cache_config(alias)
    if cache_dir is not None:
        directory = cache_dir.expanduser().absolute()
        if not directory.is_dir():
            raise CliError(
                f"--dir {cache_dir}: no such directory ({directory})",
                f"Check the path; without --dir the command uses the profile's cache "
                f"({config.resolved_dir if config.backend == 'disk' else 'its Redis'}).",
            )
        config = replace(config, backend="disk", dir=directory)
    elif config.backend == "redis":
        config = replace(config, timeout_ms=max(config.timeout_ms, _ADMIN_TIMEOUT_MS))
    elif config.resolved_dir.exists() and not config.resolved_dir.is_dir():
        raise CliError(
            f"the cache directory {config.resolved_dir} is a file, not a directory",
            "Move the file away, or point the profile's dir in spark.toml elsewhere.",
        )
    state.rules = config
    return CacheTarget(config.resolved_dir, config, settings)


@dataclass(frozen=True)
class EntryFilter:
    """Which entries a command works on: one provider's, one model id's, or all (None)."""

    provider: str | None = None
    model_id: str | None = None

    @property
    def label(self) -> str:
        """``openai/gpt-4o``, ``openai``, ``gpt-4o`` or ``all providers``, for messages."""
        return "/".join(part for part in (self.provider, self.model_id) if part) or "all providers"


def note_missing_cache(state: CliState, target: CacheTarget, profile: str | None) -> str:
    """A note for a listing of a profile's cache directory that does not exist (nothing was
    cached there, or the profile is not the one meant): the profiles whose caches do exist.
    "" when the directory exists (or the cache is a Redis)."""
    if target.config.backend != "disk" or target.cache_dir.is_dir():
        return ""
    name = profile or target.settings.profile
    off = "" if target.config.enabled else ", whose caching is off"
    others = []
    for other in target.settings.profiles:
        if other == name:
            continue
        try:
            directory = state.settings(other).cache_config().resolved_dir
        except (ConfigError, CliError):  # (a profile with a problem of its own: not listed)
            continue
        if directory.is_dir() and directory != target.cache_dir:
            others.append(f"--profile {other} ({directory})")
    hint = f"; caches that exist: {', '.join(others)}" if others else ""
    return f"note: no cache directory at {target.cache_dir} (profile {name}{off}){hint}"


def filtered_target(
    state: CliState,
    profile: str | None,
    cache_dir: Path | None,
    provider: str | None,
    model: str | None,
) -> tuple[CacheTarget, EntryFilter]:
    """The cache and the entries that ``--provider`` and ``--model`` select.

    ``--model`` is an alias of spark.toml (its provider, model id and cache rules) or a model
    id (any provider's, in the ``[cache]`` rules' cache).
    """
    settings = state.settings(profile)
    alias = None if model is None else _cache_alias(settings, model, provider)
    target = cache_target(state, profile, cache_dir, alias, settings=settings)
    return target, _entry_filter(target, provider, model)


def _cache_alias(settings: Settings, model: str, provider: str | None) -> str | None:
    """The alias whose cache rules ``--model`` selects: the alias itself, or the alias(es)
    using that model id (of ``provider``) when they share one cache; None: the ``[cache]``
    rules (no alias uses it). Aliases of one model id in different caches are ambiguous."""
    if model in settings.model_aliases:
        return model
    using = [
        a
        for a in settings.model_aliases
        if settings.model(a).model_id == model and provider in (None, settings.model(a).provider)
    ]
    caches = {settings.cache_config(a).resolved_dir for a in using}
    if len(caches) > 1:
        raise CliError(
            f"--model {model}: aliases {', '.join(using)} use that model id, in different caches",
            "Name one of those aliases (or give --dir).",
        )
    return using[0] if using else None


def _entry_filter(target: CacheTarget, provider: str | None, model: str | None) -> EntryFilter:
    """``--provider`` and ``--model`` checked against what Spark knows (``CliError`` with close
    matches when one names nothing known: a typo must not look like an empty cache)."""
    settings = target.settings
    if model is not None and model in settings.model_aliases:
        aliased = settings.model(model)
        if provider is not None and provider != aliased.provider:
            raise CliError(
                f"--model {model} is an alias of {aliased.provider}, not of {provider}",
                "Leave out --provider, or name a model id of that provider.",
            )
        return EntryFilter(aliased.provider, cache_model_id(aliased.provider, aliased.model_id))
    stored: dict[str, Any] | None = None
    if provider is not None and provider not in KNOWN_PROVIDERS:
        stored = scan_stats(target.store).as_dict()
        _check_known("provider", provider, [*KNOWN_PROVIDERS, *stored["entries_by_model"]])
    if model is not None and model not in _configured_model_ids(settings):
        stored = stored or scan_stats(target.store).as_dict()
        in_cache = [m for by_model in stored["entries_by_model"].values() for m in by_model]
        names = [*settings.model_aliases, *_configured_model_ids(settings), *in_cache]
        _check_known("model", model, names)
    return EntryFilter(provider, model)


def _configured_model_ids(settings: Settings) -> set[str]:
    """Model ids Spark knows without looking in the cache: the aliases' and the price table's."""
    aliased = {settings.model(alias).model_id for alias in settings.model_aliases}
    return aliased | set(BUILTIN_PRICES) | set(settings.pricing)


def _check_known(what: str, name: str, known: Iterable[str]) -> None:
    names = sorted(set(known))
    if name in names:
        return
    close = _close_matches(name, names)
    guess = f"Did you mean {_either(close)}? " if close else ""
    if what == "provider":
        raise CliError(f"unknown provider {name!r}", f"{guess}Known providers: {', '.join(names)}.")
    raise CliError(
        f"unknown model {name!r}: not an alias of spark.toml, nor a model id of the price "
        "table or of the cache",
        f"{guess}--model takes an alias or a model id (`spark cache stats` lists the cached ones).",
    )


def _close_matches(word: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The candidates ``word`` is most likely a typo or a shortening of: those that start with
    it or contain it first (``prod`` -> ``production``), then the most similar (difflib)."""
    names = list(dict.fromkeys(candidates))
    lowered = word.lower()
    found = [n for n in names if n.lower().startswith(lowered)]
    found += [n for n in names if lowered in n.lower()]
    found += difflib.get_close_matches(word, names, n=limit, cutoff=0.6)
    return list(dict.fromkeys(found))[:limit]


def _either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def alias_of(settings: Settings, model: str) -> str:
    """The alias ``--model`` names: an alias, or the model id of exactly one alias."""
    if model in settings.model_aliases:
        return model
    using = [a for a in settings.model_aliases if settings.model(a).model_id == model]
    if len(using) == 1:
        return using[0]
    if using:
        raise CliError(
            f"--model {model}: aliases {', '.join(using)} all use that model id",
            "Name one of those aliases.",
        )
    if settings.path is None:
        raise CliError(
            f"--model {model}: no spark.toml was found (here or in a parent directory), so "
            "there are no aliases",
            "Create one with `spark config init`, or name it with --config or SPARK_CONFIG.",
        )
    ids = sorted(_configured_model_ids(settings) - {model})
    close = _close_matches(model, [*settings.model_aliases, *ids])
    raise CliError(
        f"--model {model}: no alias in {settings.path} is or uses that model",
        (f"Did you mean {_either(close)}? " if close else "")
        + f'Add [models.NAME] with provider and model_id = "{model}" to spark.toml.',
    )
