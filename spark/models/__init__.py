"""Provider models with Spark's cache in front; ``from_profile`` builds one from spark.toml.

The provider classes live in ``spark.models.openai``, ``spark.models.bedrock`` and
``spark.models.gemini``; each imports its SDK only when it first calls the provider.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark.models.registry import MODEL_CLASSES, model_class

if TYPE_CHECKING:
    from spark.models.base import Model

__all__ = ["MODEL_CLASSES", "from_profile", "model_class"]


def from_profile(
    alias: str, profile: str | None = None, *, config_path: str | Path | None = None, **kw: Any
) -> Model:
    """The model ``[models.<alias>]`` of spark.toml, with the active profile's cache settings.

    See ``spark.profiles.from_profile``.
    """
    from spark.profiles import from_profile as build  # the layer above models

    return build(alias, profile, config_path=config_path, **kw)
