"""Pure translation of Spark's calls into OpenAI's Chat Completions and Embeddings requests.

A call becomes a ``WireCall`` (``spark.models.wire``): the keyword arguments of
``client.chat.completions.create`` / ``client.embeddings.create``, and ``body``, the JSON the
SDK puts on the wire for them less the fields that cannot change the answer (docs/models.md,
"OpenAI"). No I/O and no SDK import: a cache hit never loads the SDK. Answers are read in
``spark.models._openai_answers``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from spark.errors import ConfigError
from spark.models._openai_media import encode_media_bytes, keyed_message
from spark.models._openai_tools import as_mapping, to_openai_tool_choice, to_openai_tools
from spark.models.wire import KeyedJSON, WireCall, keyed_value, unknown_field

__all__ = [
    "CHAT_CREATE_KEYWORDS",
    "EMBEDDINGS_CREATE_KEYWORDS",
    "cache_model_id",
    "plain_text_message",
    "prepare_chat",
    "prepare_embedding",
    "to_openai_messages",
]

#: Every keyword of ``client.chat.completions.create`` (openai 3.57). Hard-coded, not read from
#: the SDK at run time (a hit must not import it); a test checks it against the installed SDK.
CHAT_CREATE_KEYWORDS = frozenset(
    {
        "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
        "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "moderation", "n", "parallel_tool_calls", "prediction",
        "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
        "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options", "extra_headers",
        "extra_query", "extra_body", "timeout",
    }
)  # fmt: skip
#: Every keyword of ``client.embeddings.create`` (checked against the SDK like the above).
EMBEDDINGS_CREATE_KEYWORDS = frozenset(
    {"input", "model", "dimensions", "encoding_format", "user", "extra_headers", "extra_query",
     "extra_body", "timeout"}
)  # fmt: skip

# Spark's own names: a neutral spelling of an SDK keyword (``max_tokens`` is Spark's name for
# ``max_completion_tokens``, so the SDK's deprecated ``max_tokens`` field needs ``extra_body``).
_ALIASES = {
    "max_tokens": "max_completion_tokens",
    "output_schema": "response_format",
    "headers": "extra_headers",
    "request_timeout": "timeout",
}
_CHAT_KNOWN = CHAT_CREATE_KEYWORDS | {"system_prompt", *_ALIASES}
_EMBEDDING_KNOWN = EMBEDDINGS_CREATE_KEYWORDS | {"headers", "request_timeout"}
# Sent but not keyed: they cannot change the answer (identity, storage, routing, caching).
_UNKEYED = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
     "prompt_cache_retention", "prompt_cache_options", "encoding_format"}
)  # fmt: skip
# Options of the SDK call itself: never in the JSON body.
_TRANSPORT = frozenset({"model", "extra_headers", "extra_query", "extra_body", "timeout"})
_UNSENT_OR_UNKEYED = _TRANSPORT | _UNKEYED
_STREAM_FLAGS = frozenset({"stream", "stream_options"})  # the method called decides these
_CONSTRUCTOR_OPTIONS = frozenset(
    {"api_key", "organization", "project", "base_url", "websocket_base_url", "max_retries",
     "default_headers", "default_query", "http_client", "client", "webhook_secret"}
)  # fmt: skip
# ``extra_body`` merges over the body; these would change what the call is, not what it asks.
_NOT_IN_EXTRA_BODY = frozenset({"model", "stream", "stream_options"})
_FLOATS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
_RESPONSE_FORMAT_TYPES = frozenset({"text", "json_object", "json_schema"})
_ROLES = {"model": "assistant", "ai": "assistant", "human": "user"}
_CHAT = "OpenAI chat completions"
_HINT = "(fields the SDK does not know go in extra_body={...})"


def cache_model_id(model_id: str) -> str:
    """OpenAI has one spelling per model id."""
    return model_id


# -- requests ---------------------------------------------------------------------------------


def prepare_chat(model_id: str, messages: Any, params: Mapping[str, Any]) -> WireCall:
    """The ``chat.completions.create`` call of ``get_text(messages, **params)``."""
    given = _sdk_keywords(params, _CHAT_KNOWN, _CHAT, _chat_value)
    system = given.pop("system_prompt", None)
    arguments = {"model": model_id, "messages": to_openai_messages(system, messages), **given}
    return WireCall(arguments, _keyed_body(arguments))


def prepare_embedding(model_id: str, texts: list[str], params: Mapping[str, Any]) -> WireCall:
    """The ``embeddings.create`` call of ``embed(texts, **params)``.

    ``encoding_format`` is dropped: the SDK picks the wire encoding and decodes it, while a
    caller's ``"base64"`` would hand back strings instead of vectors.
    """
    given = _sdk_keywords(params, _EMBEDDING_KNOWN, "OpenAI embeddings", _sdk_value)
    given.pop("encoding_format", None)
    arguments = {"model": model_id, "input": list(texts), **given}
    return WireCall(arguments, _keyed_body(arguments))


def _sdk_keywords(
    params: Mapping[str, Any],
    known: frozenset[str],
    where: str,
    convert: Callable[[str, Any], Any],
) -> dict[str, Any]:
    """The call's keywords under their SDK names, converted; refused when no spelling fits."""
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # SDK name -> the spelling that gave it
    for raw, value in params.items():
        if raw not in known or raw in _NEVER_KEYWORDS:
            raise _keyword_error(raw, known, where)
        name = _ALIASES.get(raw, raw)
        if name in _STREAM_FLAGS or _omitted(value):
            continue
        converted = convert(name, value)
        if converted is _ABSENT:
            continue
        if name in out and out[name] != converted:
            first = spelled[name]
            raise ConfigError(f"{first!r} and {raw!r} are one {where} field: give one of them")
        out[name], spelled[name] = converted, raw
    return out


_NEVER_KEYWORDS = frozenset({"model", "messages", "input"})  # known names that are no keyword


def _keyword_error(name: str, known: frozenset[str], where: str) -> ConfigError:
    """Why ``name`` is no keyword of the call (it is unknown, or one of ``_NEVER_KEYWORDS``)."""
    if name == "model":
        return ConfigError(
            "model is not a per-call option of openai: the model id belongs to the constructor"
            " (build another OpenAIModel for another model)"
        )
    if name in _CONSTRUCTOR_OPTIONS:
        return ConfigError(
            f"{name} is not a per-call option of openai: it belongs to the OpenAIModel constructor"
        )
    if name in known:  # ("messages" or "input")
        return ConfigError(f"{name!r} is the first argument of the call, not a keyword")
    return unknown_field(name, known - _NEVER_KEYWORDS, where, _HINT)


class _Absent:
    """A value that is not sent (``n=1``: the API's default)."""


_ABSENT: Any = _Absent()


def _omitted(value: Any) -> bool:
    """The SDK's own "not given" sentinels (``openai.omit``, ``openai.NOT_GIVEN``)."""
    kind = type(value)
    return kind.__name__ in {"Omit", "NotGiven"} and kind.__module__.startswith("openai")


def _chat_value(name: str, value: Any) -> Any:
    """A chat keyword's value as the SDK takes it (Spark's spellings converted)."""
    if name == "tools":
        return to_openai_tools(value) if value else _ABSENT
    if name == "tool_choice":
        return to_openai_tool_choice(value)
    if name == "response_format":
        return _response_format(value)
    if name == "stop" and isinstance(value, str):
        return [value]  # the list the API reads either way: one request, one key
    if name == "n" and value == 1:
        return _ABSENT  # the API's default: sending it would only split the key
    if name in _FLOATS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # ``1`` and ``1.0`` are one number to the API: one key
    return _sdk_value(name, value)


def _sdk_value(name: str, value: Any) -> Any:
    """Any other keyword: as given (``extra_body`` checked)."""
    if name == "extra_body":
        return _extra_body(value)
    return value


def _extra_body(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"extra_body must be a dict of body fields, got {type(value).__name__}")
    refused = sorted(_NOT_IN_EXTRA_BODY & set(value))
    if refused:
        raise ConfigError(
            f"extra_body may not set {', '.join(refused)}: the model is the constructor's and"
            " the method called decides streaming"
        )
    return dict(value)


def _keyed_body(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body the SDK sends for ``arguments`` (``extra_body`` merged over the fields, as
    the SDK merges it), less the unkeyed fields, with media as digests."""
    kept = {name: value for name, value in arguments.items() if name not in _UNSENT_OR_UNKEYED}
    extra = arguments.get("extra_body")
    if extra:
        kept.update((name, value) for name, value in extra.items() if name not in _UNKEYED)
    if isinstance(kept.get("messages"), list):
        kept["messages"] = [keyed_message(message) for message in kept["messages"]]
    body: dict[str, Any] = keyed_value(kept)
    return body


def _response_format(value: Any) -> Any:
    """A bare JSON schema (``output_schema=``; a pydantic class stands for its schema) is
    wrapped as OpenAI's ``json_schema`` format; OpenAI's own formats pass unchanged."""
    schema_of = getattr(value, "model_json_schema", None)
    value = schema_of() if isinstance(value, type) and callable(schema_of) else as_mapping(value)
    if isinstance(value, Mapping) and value.get("type") not in _RESPONSE_FORMAT_TYPES:
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(value.get("title") or "response"))[:64]
        schema = value if type(value) is KeyedJSON else dict(value)  # (shared: never changed)
        spec: dict[str, Any] = {"name": name, "schema": schema}
        if strict_compatible(value):  # OpenAI then guarantees the schema (docs/models.md)
            spec["strict"] = True
        return {"type": "json_schema", "json_schema": spec}
    return value


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict structured output takes ``schema`` as it is: every object closed
    (``additionalProperties: false``) with all its properties required."""
    if isinstance(schema, list):
        return all(strict_compatible(item) for item in schema)
    if not isinstance(schema, Mapping):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        closed = schema.get("additionalProperties") is False
        if not closed or set(schema.get("required") or ()) != set(properties):
            return False
    return all(
        strict_compatible(value) for value in schema.values() if isinstance(value, dict | list)
    )


# -- messages ---------------------------------------------------------------------------------


def to_openai_messages(system: Any, messages: Any) -> list[dict[str, Any]]:
    """``system_prompt`` texts first (one system message each), then the conversation.

    The common spellings (plain text, ``[{"text": ...}]``, ``[{"type": "text", ...}]``) become
    one wire form; everything else is sent as given, ``None`` values included.
    """
    prompts = [system] if isinstance(system, str) else list(system or ())
    if prompts and not all(isinstance(text, str) for text in prompts):
        raise ConfigError("system_prompt must be a string or a list of strings")
    out: list[dict[str, Any]] = [{"role": "system", "content": text} for text in prompts]
    if isinstance(messages, str):
        out.append({"role": "user", "content": messages})
        return out
    if not isinstance(messages, Sequence):
        raise ConfigError(f"messages must be a string or a list of dicts, got {type(messages)}")
    out.extend(_openai_message(message) for message in messages)
    return out


def plain_text_message(message: Any) -> dict[str, str] | None:
    """The common ``{"role": ..., "content": "<text>"}`` message with its role spelled as the
    API spells it, made directly (the hit path); None for any other message."""
    if type(message) is dict and len(message) == 2:
        role, content = message.get("role"), message.get("content")
        if type(role) is str and type(content) is str:
            role = role.lower()
            return {"role": _ROLES.get(role, role), "content": content}
    return None


def _openai_message(message: Any) -> dict[str, Any]:
    plain = plain_text_message(message)
    if plain is not None:
        return plain
    message = as_mapping(message)
    if not isinstance(message, Mapping):
        raise ConfigError(f"each message must be a dict with 'role' and 'content', got {message!r}")
    role = str(message.get("role", "user")).lower()
    role = _ROLES.get(role, role)
    out: dict[str, Any] = {"role": role}
    parts = _parts(message.get("content", message.get("parts")), role)
    calls = message.get("tool_calls")
    # OpenAI wants ``null`` content next to what the model said instead of text (tool calls, a
    # legacy function call, audio) when it said nothing.
    instead = calls or message.get("function_call") or message.get("audio")
    out["content"] = (_content(parts) or None) if instead else _content(parts)
    if calls:  # (``None`` or ``[]`` mean no calls: the API refuses an empty list)
        out["tool_calls"] = [_openai_tool_call(call) for call in calls]
    for name, value in message.items():
        if name not in {"role", "content", "parts", "tool_calls"}:
            out[name] = value
    return out


def _parts(content: Any, role: str) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if role == "tool" and not isinstance(content, list | tuple):
        return [{"type": "text", "text": _json(content)}]  # a tool result given as data
    if isinstance(content, Mapping):
        content = [content]
    return [_part(part) for part in content]


def _part(part: Any) -> Any:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    part = as_mapping(part)
    if not isinstance(part, Mapping):
        return part
    if "text" in part and set(part) <= {"text", "type"} and part.get("type", "text") == "text":
        return {"type": "text", "text": part["text"]}
    return encode_media_bytes(part)


def _content(parts: list[Any]) -> str | list[Any]:
    """One text part becomes a plain string (every OpenAI-compatible server reads that)."""
    if len(parts) == 1 and _all_text(parts):
        return str(parts[0]["text"])
    return parts if parts else ""


def _all_text(parts: list[Any]) -> bool:
    return all(isinstance(p, Mapping) and set(p) == {"type", "text"} for p in parts)


def _openai_tool_call(call: Any) -> Any:
    """A neutral ``{"id", "name", "arguments"}`` call in OpenAI's form; OpenAI's form unchanged."""
    call = as_mapping(call)
    if not isinstance(call, Mapping) or "function" in call or "custom" in call:
        return call
    arguments = call.get("arguments", call.get("args", call.get("input")))
    function = {"name": call["name"], "arguments": arguments_text(arguments)}
    return {"id": str(call.get("id", "")), "type": "function", "function": function}


def arguments_text(arguments: Any) -> str:
    """A call's arguments as OpenAI's text: as given when text; ``{"_raw": text}`` (arguments
    that were not JSON when they came: docs/models.md) as the text the model wrote."""
    if isinstance(arguments, str):
        return arguments
    raw = arguments.get("_raw") if isinstance(arguments, Mapping) and len(arguments) == 1 else None
    return raw if isinstance(raw, str) else _json(arguments or {})


def _json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot send {value!r} as JSON: {exc}") from exc
