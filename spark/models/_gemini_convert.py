"""Gemini calls as google-genai takes them, and their keyed wire form (docs/models.md, "Gemini").

``prepare_chat`` / ``prepare_embedding`` turn one call's keywords into a ``WireCall``: the
``arguments`` of ``client.aio.models.generate_content`` / ``embed_content`` (plain dicts the SDK
validates into its own types; media stay bytes) and ``body``, the request as the SDK lays it out
on the wire (``contents``, ``systemInstruction``, ``generationConfig``, ``tools``, ...) less the
fields that cannot change the answer, with media bytes as SHA-256 digests. The parts live in
``_gemini_contents`` (messages), ``_gemini_config`` (config fields) and ``_gemini_keyed`` (one
spelling per wire value).

Pure code: no SDK import, no I/O (a cache hit never loads google-genai).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spark.errors import ConfigError
from spark.models._gemini_config import chat_config, config_body, http_options, native_fields, put
from spark.models._gemini_contents import contents, keyed_contents
from spark.models._gemini_fields import EMBED_CONFIG_FIELDS
from spark.models._gemini_keyed import camel, keyed
from spark.models.wire import WireCall

__all__ = ["cache_model_id", "prepare_chat", "prepare_embedding"]


def cache_model_id(model_id: str) -> str:
    """One spelling per model: ``models/gemini-2.0-flash`` is ``gemini-2.0-flash`` (the SDK
    sends both as ``models/gemini-2.0-flash``)."""
    return model_id.removeprefix("models/")


def prepare_chat(model_id: str, messages: Any, params: Mapping[str, Any]) -> WireCall:
    """The ``generate_content`` call of ``get_text(messages, **params)`` and its keyed body."""
    system, turns = contents(messages)
    params = _config_spread(params)
    prompt = params.get("system_prompt")
    if prompt is not None:
        system = [*([prompt] if isinstance(prompt, str) else prompt), *system]
    config = chat_config(params, [text for text in system if text] if system else system)
    arguments = {"model": model_id, "contents": turns, "config": config}
    return WireCall(arguments, {"contents": keyed_contents(turns), **config_body(config)})


def _config_spread(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """``config=`` (a ``GenerateContentConfig`` or its dict, the SDK's own spelling) as its
    fields, each as if given by name; a field given both ways is an error."""
    given = params.get("config")
    if given is None:
        return params
    dump = getattr(given, "model_dump", None)
    fields = dump(exclude_none=True) if callable(dump) else given
    if not isinstance(fields, Mapping):
        raise ConfigError(f"config= must be a GenerateContentConfig or a dict, got {given!r}")
    both = sorted(set(fields) & set(params))
    if both:
        raise ConfigError(f"{', '.join(both)} given both in config= and by name: give it once")
    return {**{k: v for k, v in params.items() if k != "config"}, **fields}


def prepare_embedding(model_id: str, texts: list[str], params: Mapping[str, Any]) -> WireCall:
    """The ``embed_content`` call of ``embed(texts, **params)``: one ``Content`` per text (a
    bare list of strings is ONE content to the SDK's multimodal embedding models)."""
    config = native_fields(params, EMBED_CONFIG_FIELDS, ("dimensions",), "a Gemini embeddings call")
    if "dimensions" in params:
        put(config, "output_dimensionality", params["dimensions"], "dimensions")
    http = http_options(params, config.pop("http_options", None))
    body: dict[str, Any] = {"input": list(texts)}
    body.update({camel(name): keyed(value) for name, value in config.items()})
    if http:
        config["http_options"] = http
    items = [{"parts": [{"text": text}]} for text in texts]
    return WireCall({"model": model_id, "contents": items, "config": config}, body)
