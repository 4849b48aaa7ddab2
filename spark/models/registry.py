"""Provider name -> model class and request translation, imported on first use (so ``import
spark`` needs no SDK; the translations never import one)."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from spark.errors import ConfigError

if TYPE_CHECKING:
    from spark.models.base import Model
    from spark.models.wire import WireCall

__all__ = [
    "API_TRANSLATIONS",
    "MODEL_CLASSES",
    "cache_model_id",
    "model_class",
    "prepare_chat",
    "prepare_embedding",
    "provider_options",
]

# A table, not an if/elif: adding a provider is one line here and one module.
MODEL_CLASSES: dict[str, str] = {
    "openai": "spark.models.openai:OpenAIModel",
    "bedrock": "spark.models.bedrock:BedrockModel",
    "gemini": "spark.models.gemini:GeminiModel",
    "echo": "spark.models.echo:EchoModel",  # offline, no SDK (docs/models.md, "EchoModel")
}

# Each provider's pure translation: ``prepare_chat``, ``prepare_embedding``, ``cache_model_id``.
TRANSLATIONS: dict[str, str] = {
    "openai": "spark.models._openai_convert",
    "bedrock": "spark.models._bedrock_convert",
    "gemini": "spark.models._gemini_convert",
    "echo": "spark.models._echo_convert",
}
# Text APIs besides a provider's default one: (provider, ``api``) -> its translation (the
# ``api=`` of ``OpenAIModel``; docs/models.md, "Responses API").
API_TRANSLATIONS: dict[tuple[str, str], str] = {
    ("openai", "responses"): "spark.models._openai_responses",
}
_DEFAULT_APIS = {"openai": "chat"}


def model_class(provider: str) -> type[Model]:
    """The model class of ``provider``; a ``ConfigError`` lists the providers that exist."""
    target = MODEL_CLASSES.get(provider)
    if target is None:
        known = ", ".join(sorted(MODEL_CLASSES))
        raise ConfigError(f"unknown provider {provider!r}; known providers: {known}")
    module_name, class_name = target.split(":")
    cls: type[Model] = getattr(importlib.import_module(module_name), class_name)
    return cls


# Constructor parameters that are not options an alias of spark.toml sets.
_NOT_OPTIONS = frozenset({"self", "model_id", "client", "model_options"})


@functools.cache
def provider_options(provider: str) -> frozenset[str]:
    """The options of ``[models.<alias>]`` that ``provider``'s model takes: its constructor's
    keywords, with ``api_key_env`` for a model that takes an ``api_key`` (docs/configuration.md).

    Imports the model's module, never its SDK.
    """
    taken = set(inspect.signature(model_class(provider).__init__).parameters) - _NOT_OPTIONS
    if "api_key" in taken:
        taken.add("api_key_env")
    return frozenset(taken)


@functools.cache
def _translation(provider: str) -> ModuleType:
    """The translation module of ``provider`` (looked up once: keys are built on the hit path)."""
    target = TRANSLATIONS.get(provider)
    if target is None:
        known = ", ".join(sorted(TRANSLATIONS))
        raise ConfigError(f"unknown provider {provider!r}; known providers: {known}")
    return importlib.import_module(target)


def prepare_chat(
    provider: str, model_id: str, messages: Any, params: Mapping[str, Any]
) -> WireCall:
    """The SDK call ``model.get_text(messages, **params)`` makes (no model needed).

    ``params["api"]`` names the text API of a model built with one (``api="responses"``).
    """
    api = params.get("api")
    if api is None or api == _DEFAULT_APIS.get(provider):
        module = _translation(provider)
    else:
        module = _api_translation(provider, str(api))
    given = params if "api" not in params else {n: v for n, v in params.items() if n != "api"}
    call: WireCall = module.prepare_chat(model_id, messages, given)
    return call


@functools.cache
def _api_translation(provider: str, api: str) -> ModuleType:
    target = API_TRANSLATIONS.get((provider, api))
    if target is None:
        apis = [name for (owner, name) in API_TRANSLATIONS if owner == provider]
        allowed = [_DEFAULT_APIS[provider], *apis] if provider in _DEFAULT_APIS else []
        known = " or ".join(repr(name) for name in allowed) or "none (it has one text API)"
        raise ConfigError(f"unknown api {api!r} for provider {provider!r}; known: {known}")
    return importlib.import_module(target)


def prepare_embedding(
    provider: str, model_id: str, texts: Sequence[str], params: Mapping[str, Any]
) -> WireCall:
    """The SDK call ``model.embed(texts, **params)`` makes."""
    call: WireCall = _translation(provider).prepare_embedding(model_id, list(texts), params)
    return call


def cache_model_id(provider: str, model_id: str) -> str:
    """The one spelling of ``model_id`` entries are keyed and filed under."""
    return str(_translation(provider).cache_model_id(model_id))
