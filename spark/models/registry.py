"""Provider name -> model class, imported on first use (so ``import spark`` needs no SDK)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from spark.errors import ConfigError

if TYPE_CHECKING:
    from spark.models.base import Model

__all__ = ["MODEL_CLASSES", "model_class"]

# A table, not an if/elif: adding a provider is one line here and one module.
MODEL_CLASSES: dict[str, str] = {
    "openai": "spark.models.openai:OpenAIModel",
    "bedrock": "spark.models.bedrock:BedrockModel",
    "gemini": "spark.models.gemini:GeminiModel",
}


def model_class(provider: str) -> type[Model]:
    """The model class of ``provider``; a ``ConfigError`` lists the providers that exist."""
    target = MODEL_CLASSES.get(provider)
    if target is None:
        known = ", ".join(sorted(MODEL_CLASSES))
        raise ConfigError(f"unknown provider {provider!r}; known providers: {known}")
    module_name, class_name = target.split(":")
    cls: type[Model] = getattr(importlib.import_module(module_name), class_name)
    return cls
