"""The resolved configuration: per-model cache settings, options and prices, with provenance.

A :class:`Settings` is a value built by :func:`spark.config.load_settings`; it does no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark.cache.config import CacheConfig
from spark.cache.urls import redact_url
from spark.config.problems import problem_message
from spark.config.schema import CACHE_KEYS, ModelTable
from spark.config.sources import ResolvedValue
from spark.errors import ConfigError
from spark.types import Price

__all__ = ["MODEL_OPTION_KEYS", "TELEMETRY_DEFAULT", "ModelSettings", "Price", "Settings"]

# The provider options an alias may carry (everything of [models.<alias>] but identity and cache).
MODEL_OPTION_KEYS: tuple[str, ...] = tuple(
    key for key in ModelTable.model_fields if key not in ("provider", "model_id", "cache")
)


#: ``[telemetry] enabled`` when no table sets it: on (docs/telemetry.md).
TELEMETRY_DEFAULT = ResolvedValue("telemetry.enabled", True, "default")


@dataclass(frozen=True)
class ModelSettings:
    """Everything needed to build one aliased model: provider, model id, options and cache rules."""

    alias: str
    provider: str
    model_id: str
    options: dict[str, Any] = field(hash=False)
    cache: CacheConfig
    telemetry: bool = True  # [telemetry] enabled (docs/telemetry.md)


@dataclass(frozen=True)
class Settings:
    """The settings of the active profile, resolved from defaults, files, environment, arguments.

    ``path`` is the spark.toml used (None: built-in defaults only), ``profile`` the active
    profile (``"default"`` when there is no overlay), ``profiles`` every profile that exists.
    ``warnings`` are problems that do not stop loading (an encrypted cache whose key is not
    present yet); :meth:`validate` can make them errors.
    """

    path: Path | None
    profile: str
    profile_source: str
    profiles: list[str]
    model_aliases: list[str]
    pricing: dict[str, Price]
    warnings: list[str]
    cache_values: Mapping[str | None, Mapping[str, ResolvedValue]] = field(repr=False)
    model_values: Mapping[str, Mapping[str, ResolvedValue]] = field(repr=False)
    deferred_problems: list[str] = field(default_factory=list, repr=False)
    telemetry: ResolvedValue = TELEMETRY_DEFAULT

    def cache_config(self, alias: str | None = None) -> CacheConfig:
        """The cache settings of ``alias`` (None: the ``[cache]`` rules), ``dir`` absolute."""
        values = self.cache_values[self._known(alias)]
        return CacheConfig(**{key: value.value for key, value in values.items()})

    def model(self, alias: str) -> ModelSettings:
        """Provider, model id, provider options and cache settings of ``alias``."""
        values = self.model_values[self._known(alias) or ""]
        return ModelSettings(
            alias=alias,
            provider=values["provider"].value,
            model_id=values["model_id"].value,
            options={k: values[k].value for k in MODEL_OPTION_KEYS if k in values},
            cache=self.cache_config(alias),
            telemetry=self.telemetry.value is not False,
        )

    def explain(self, alias: str | None = None) -> list[ResolvedValue]:
        """Every setting of ``alias`` (None: ``[cache]``) with the source that decided it.

        Names are relative to the model table: ``profile``, ``cache.<key>`` for each cache key
        (file key names: ``cache.dir``, ``cache.max_size_mb``), then ``provider``, ``model_id``
        and the options the alias sets.
        """
        cache = self.cache_values[self._known(alias)]
        explained = [ResolvedValue("profile", self.profile, self.profile_source)]
        explained += [_redacted(cache[key]) for key in CACHE_KEYS]
        if alias is not None:
            explained += list(self.model_values[alias].values())
        return explained

    def validate(self, *, strict_keys: bool = False) -> list[str]:
        """The checks of ``spark config validate``; returns the warnings that remain.

        Raises :class:`ConfigError` for problems of the other profiles (an alias a profile adds
        without a ``model_id``), and with ``strict_keys`` also for an encrypted cache whose key
        is nowhere to be found (``load_settings`` only warns: building the model raises
        ``EncryptionKeyError`` later).
        """
        problems = list(self.deferred_problems)
        if strict_keys:
            problems += self.warnings
        if problems:
            raise ConfigError(problem_message(problems), problems)
        return list(self.warnings)

    def _known(self, alias: str | None) -> str | None:
        """``alias`` when it is defined; else a ``ConfigError`` saying where Spark looked, with
        the close matches and every alias there is."""
        if alias is None or alias in self.model_values:
            return alias
        if self.path is None:
            raise ConfigError(
                f"unknown model alias {alias!r}: no spark.toml in {Path.cwd()} or any directory"
                " above it, and SPARK_CONFIG is not set. Write one with `spark config init` and"
                f" add [models.{alias}] (provider, model_id), or pass config_path="
            )
        close = difflib.get_close_matches(alias, self.model_aliases, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(name) for name in close)}? " if close else ""
        known = ", ".join(self.model_aliases) or "(none defined)"
        raise ConfigError(
            f"unknown model alias {alias!r} in {self.path} (profile {self.profile!r});"
            f" {hint}known aliases: {known}"
        )


def _redacted(value: ResolvedValue) -> ResolvedValue:
    """A Redis URL's password is shown as ``***`` (``spark config show`` prints values)."""
    if value.name == "cache.url" and isinstance(value.value, str):
        return ResolvedValue(value.name, redact_url(value.value), value.source)
    return value
