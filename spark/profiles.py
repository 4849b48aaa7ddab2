"""Build models from ``spark.toml``: an alias of the active profile -> a ready, cached model.

This is the layer above config and models (DESIGN §7): it reads resolved settings and hands each
model its provider options and cache rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark.config import ModelSettings, load_settings
from spark.errors import ConfigError
from spark.models.registry import model_class, provider_options

if TYPE_CHECKING:
    from spark.models.base import Model

__all__ = ["from_profile", "model_from_settings"]


def from_profile(
    alias: str,
    profile: str | None = None,
    *,
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **cache_overrides: Any,
) -> Model:
    """The model that ``[models.<alias>]`` describes, with the active profile's cache settings.

    ``profile`` defaults to ``$ENVIRONMENT``, then ``[spark].default_profile``. Cache settings
    given as keyword arguments (``enabled``, ``ttl_seconds``, ``dir``, ``mode``, ...) win over
    the file and the environment. Raises ``ConfigError`` (every problem at once) or
    ``EncryptionKeyError`` when the profile encrypts and no key is available.
    """
    settings = load_settings(config_path, profile=profile, env=env, overrides=cache_overrides)
    return model_from_settings(settings.model(alias), settings.pricing, env)


def model_from_settings(
    model: ModelSettings, pricing: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> Model:
    """Instantiate a resolved ``ModelSettings``."""
    cls = model_class(model.provider)
    kwargs = _provider_kwargs(model, os.environ if env is None else env)
    return cls(
        model.model_id,
        cache_config=model.cache,
        pricing=dict(pricing) or None,
        telemetry=model.telemetry,
        **kwargs,
    )


def _provider_kwargs(model: ModelSettings, env: Mapping[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, value in model.options.items():
        if name not in provider_options(model.provider):  # a ModelSettings made by hand
            raise ConfigError(
                f"[models.{model.alias}] {name}: not an option of provider {model.provider!r}"
            )
        if name == "api_key_env":
            name, value = "api_key", env.get(str(value)) or None
        kwargs[name] = value
    return kwargs
