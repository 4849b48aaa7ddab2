"""Pure translation of Spark's text calls into OpenAI Responses API requests (``responses.create``).

A call becomes a ``WireCall`` (``spark.models.wire``): the keyword arguments of
``client.responses.create`` and ``body``, the JSON the SDK puts on the wire for them less the
fields that cannot change the answer, with ``"$api": "responses"`` in front so a Responses call
and a chat-completions call never share a key (docs/models.md, "Responses API"). A request whose
answer depends on state the provider holds (``previous_response_id``, ``conversation``, a stored
``prompt`` without a pinned version) carries that field's name as ``bypass``. No I/O and no SDK
import. Answers are read in ``spark.models._responses_answers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spark.errors import ConfigError
from spark.models import _responses_items as items
from spark.models._openai_convert import (
    _CONSTRUCTOR_OPTIONS,
    CHAT_CREATE_KEYWORDS,
    _extra_body,
    _omitted,
)
from spark.models._openai_media import keyed_message
from spark.models.wire import WireCall, keyed_value, unknown_field

__all__ = [
    "API_MARKER",
    "RESPONSES_CREATE_KEYWORDS",
    "STATEFUL_FIELDS",
    "cache_model_id",
    "prepare_chat",
    "prepare_embedding",
]

#: Every keyword of ``client.responses.create`` (openai 3.57). Hard-coded, not read from the SDK
#: at run time (a hit must not import it); a test checks it against the installed SDK.
RESPONSES_CREATE_KEYWORDS = frozenset(
    {
        "access_programs", "background", "background_options", "context_management",
        "conversation", "image", "include", "input", "instructions", "max_output_tokens",
        "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls",
        "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store",
        "stream", "stream_options", "temperature", "text", "tool_choice", "tools",
        "top_logprobs", "top_p", "truncation", "user", "extra_headers", "extra_query",
        "extra_body", "timeout",
    }
)  # fmt: skip
#: The keyed body's marker of this API (a ``$`` name: no request field is spelled so).
API_MARKER = {"$api": "responses"}

# Spark's neutral names of a Responses field.
_ALIASES = {
    "max_tokens": "max_output_tokens",
    "system_prompt": "instructions",
    "headers": "extra_headers",
    "request_timeout": "timeout",
}
# Spark and chat-completions names that set one member of a Responses field (field, member).
_MEMBERS = {
    "output_schema": ("text", "format"),
    "response_format": ("text", "format"),
    "verbosity": ("text", "verbosity"),
    "reasoning_effort": ("reasoning", "effort"),
}
_KNOWN = RESPONSES_CREATE_KEYWORDS | set(_ALIASES) | set(_MEMBERS)
# Sent but not keyed: they cannot change the answer (identity, storage, routing, caching).
_UNKEYED = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
     "prompt_cache_retention", "prompt_cache_options", "background", "background_options"}
)  # fmt: skip
_TRANSPORT = frozenset({"model", "extra_headers", "extra_query", "extra_body", "timeout"})
_STREAM_FLAGS = frozenset({"stream", "stream_options"})  # the method called decides these
#: Fields whose answer depends on what the provider holds: such calls are not cached.
STATEFUL_FIELDS = ("previous_response_id", "conversation")
_FLOATS = frozenset({"temperature", "top_p"})
_WHERE = "the OpenAI Responses API"
_HINT = "(fields the SDK does not know go in extra_body={...})"
_CHAT_ONLY = (
    "is a chat completions field, not one of the Responses API: use OpenAIModel(...,"
    ' api="chat"), or send it with extra_body={...}'
)


def cache_model_id(model_id: str) -> str:
    """OpenAI has one spelling per model id."""
    return model_id


def prepare_chat(model_id: str, messages: Any, params: Mapping[str, Any]) -> WireCall:
    """The ``responses.create`` call of ``get_text(messages, **params)``."""
    given = _sdk_keywords(params)
    arguments = {"model": model_id, "input": items.to_input_items(messages), **given}
    body = _keyed_body(arguments)
    return WireCall(arguments, body, _bypass(arguments))


def prepare_embedding(model_id: str, texts: list[str], params: Mapping[str, Any]) -> WireCall:
    """Embeddings are the same ``embeddings.create`` call whichever text API a model uses."""
    from spark.models._openai_convert import prepare_embedding as chat_embedding

    return chat_embedding(model_id, texts, params)


# -- keywords ---------------------------------------------------------------------------------


def _sdk_keywords(params: Mapping[str, Any]) -> dict[str, Any]:
    """The call's keywords under their SDK names, converted; refused when no spelling fits."""
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # SDK name (or field.member) -> the spelling that gave it
    members: list[tuple[str, str, str, Any]] = []
    for raw, value in params.items():
        _check_keyword(raw)
        if raw in _STREAM_FLAGS or _omitted(value):
            continue
        if raw in _MEMBERS:
            members.append((raw, *_MEMBERS[raw], value))
            continue
        name = _ALIASES.get(raw, raw)
        converted = _value(name, value)
        if converted is None:
            continue
        if name in out and out[name] != converted:
            raise ConfigError(f"{spelled[name]!r} and {raw!r} are one {_WHERE} field: give one")
        out[name], spelled[name] = converted, raw
    for raw, field, member, value in members:
        _set_member(out, spelled, raw, field, member, value)
    return out


def _check_keyword(name: str) -> None:
    if name == "model":
        raise ConfigError(
            "model is not a per-call option of openai: the model id belongs to the constructor"
            " (build another OpenAIModel for another model)"
        )
    if name in _CONSTRUCTOR_OPTIONS or name == "api":
        raise ConfigError(
            f"{name} is not a per-call option of openai: it belongs to the OpenAIModel constructor"
        )
    if name in {"input", "messages"}:
        raise ConfigError(f"{name!r} is the first argument of the call, not a keyword")
    if name in _KNOWN:
        return
    if name in CHAT_CREATE_KEYWORDS:
        raise ConfigError(f"{name!r} {_CHAT_ONLY}")
    raise unknown_field(name, _KNOWN - {"input", "model"}, _WHERE, _HINT)


def _value(name: str, value: Any) -> Any:
    """A keyword's value as the SDK takes it (Spark's spellings converted); None: not sent."""
    if name == "tools":
        return items.to_responses_tools(value) if value else None
    if name == "tool_choice":
        return items.to_responses_tool_choice(value)
    if name == "instructions":
        return _instructions(value)
    if name == "text":
        return _mapping("text", value)
    if name == "background" and value:
        raise ConfigError(
            "background=True returns before the answer exists (it is fetched later with"
            " responses.retrieve), so there is nothing to cache: call the SDK directly"
        )
    if name in _FLOATS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # ``1`` and ``1.0`` are one number to the API: one key
    if name == "extra_body":
        return _extra_body(value)
    return value


def _instructions(value: Any) -> Any:
    """``system_prompt`` / ``instructions``: one text (a list of texts is joined by a blank
    line: this API has one instructions field)."""
    if isinstance(value, list | tuple):
        if not all(isinstance(text, str) for text in value):
            raise ConfigError("system_prompt must be a string or a list of strings")
        return "\n\n".join(value)
    if not isinstance(value, str):
        raise ConfigError("system_prompt must be a string or a list of strings")
    return value


def _mapping(name: str, value: Any) -> dict[str, Any]:
    dump = getattr(value, "model_dump", None)
    value = dump(exclude_unset=True, mode="json") if callable(dump) else value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a dict, got {type(value).__name__}")
    return dict(value)


def _set_member(
    out: dict[str, Any], spelled: dict[str, str], raw: str, field: str, member: str, value: Any
) -> None:
    """Put a neutral spelling's value in its field (``text.format``, ``reasoning.effort``)."""
    converted = items.to_text_format(value) if member == "format" else value
    target = _mapping(field, out.get(field, {}))
    where = f"{field}.{member}"
    if member in target and target[member] != converted:
        first = spelled.get(where, f"{field}=")
        raise ConfigError(f"{first!r} and {raw!r} both set {where}: give one of them")
    target[member] = converted
    out[field], spelled[where] = target, raw


# -- the keyed body ---------------------------------------------------------------------------


def _keyed_body(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body the SDK sends for ``arguments`` (``extra_body`` merged over the fields, as
    the SDK merges it), less the unkeyed fields, with media as digests; the API marker first."""
    fields = {name: value for name, value in arguments.items() if name not in _TRANSPORT}
    merged = {**fields, **arguments.get("extra_body", {})}
    kept = {name: value for name, value in merged.items() if name not in _UNKEYED}
    if isinstance(kept.get("input"), list):
        kept["input"] = [keyed_message(item) for item in kept["input"]]
    body: dict[str, Any] = keyed_value({**API_MARKER, **kept})
    return body


def _bypass(arguments: Mapping[str, Any]) -> str:
    """The field that makes the answer depend on provider-held state ("" when none does)."""
    merged = {**arguments, **arguments.get("extra_body", {})}
    for name in STATEFUL_FIELDS:
        if merged.get(name) is not None:
            return name
    prompt = merged.get("prompt")
    if isinstance(prompt, Mapping) and not prompt.get("version"):
        return "prompt"  # the template's latest version, which its owner may change
    return ""
