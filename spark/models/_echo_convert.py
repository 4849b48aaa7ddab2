"""Pure translation of Spark's calls into ``EchoModel``'s requests (docs/models.md, "EchoModel").

The echo "provider" has no SDK and no wire, so its request is Spark's own neutral form: the
system text (``system_prompt=`` first, then leading system messages), the messages in one
spelling (text content as a string, roles ``user``/``assistant``/``tool``), and every other
keyword as given. ``body`` is that request less the transport options, which cannot change the
answer. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spark.errors import ConfigError
from spark.models.wire import WireCall, keyed_value

__all__ = ["TRANSPORT", "cache_model_id", "message_text", "prepare_chat", "prepare_embedding"]

#: Keywords that shape the call, not the request (never keyed; accepted for drop-in use).
TRANSPORT = frozenset({"timeout", "request_timeout", "headers", "extra_headers"})
_ROLES = {"human": "user", "ai": "assistant", "model": "assistant", "developer": "system"}


def cache_model_id(model_id: str) -> str:
    """The echo provider has one spelling per model id."""
    return model_id


def prepare_chat(model_id: str, messages: Any, params: Mapping[str, Any]) -> WireCall:
    """The echo call of ``get_text(messages, **params)``.

    Any keyword is accepted (there is no API to check it against) and keyed, except the
    transport options; ``max_tokens``, ``n`` and ``stop`` shape the answer and are checked.
    """
    given = dict(params)
    prompt = given.pop("system_prompt", None)
    system = [] if prompt is None else [prompt] if isinstance(prompt, str) else list(prompt)
    leading, turns = _split(_messages(messages))
    _check_answer_options(given)
    arguments = {"model": model_id, "system": [*system, *leading], "messages": turns, **given}
    return WireCall(arguments, _body(arguments))


def prepare_embedding(model_id: str, texts: list[str], params: Mapping[str, Any]) -> WireCall:
    """The echo call of ``embed(texts, **params)``; ``dimensions`` (default 8) sizes vectors."""
    for text in texts:
        if not isinstance(text, str):
            raise ConfigError(f"EchoModel embeds strings, got {type(text).__name__}")
    dimensions = params.get("dimensions", 8)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise ConfigError(f"dimensions must be a whole number >= 1, got {dimensions!r}")
    arguments = {"model": model_id, "input": list(texts), **params}
    return WireCall(arguments, _body(arguments))


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a normalized message (its text parts joined by spaces)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part for part in content if isinstance(part, str))
    return ""


def _body(arguments: Mapping[str, Any]) -> dict[str, Any]:
    keyed = {name: value for name, value in arguments.items() if name not in TRANSPORT}
    keyed.pop("model")  # the key holds the model id already
    body: dict[str, Any] = keyed_value(keyed)
    return body


def _messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence):
        raise ConfigError(
            f"messages must be a string or a list of messages, got {type(messages).__name__}"
        )
    return [_message(message) for message in messages]


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise ConfigError(
            f"a message must be a mapping with a role and content, got {type(message).__name__}"
        )
    role = str(message.get("role", "user"))
    out = {str(name): value for name, value in message.items()}
    out["role"] = _ROLES.get(role, role)
    out["content"] = _content(message.get("content"))
    return out


def _content(content: Any) -> Any:
    """One spelling per content: a lone text part is its string, text parts are strings."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, Sequence):
        return content
    parts = [_part(part) for part in content]
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    return parts


def _part(part: Any) -> Any:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping):
        text = part.get("text")
        plain = set(part) <= {"text", "type"} and part.get("type", "text") == "text"
        if isinstance(text, str) and plain:
            return text
    return part


def _split(messages: list[dict[str, Any]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Leading system messages (their text) and the rest."""
    system: list[Any] = []
    index = 0
    while index < len(messages) and messages[index]["role"] == "system":
        system.append(message_text(messages[index]))
        index += 1
    return system, messages[index:]


def _check_answer_options(params: Mapping[str, Any]) -> None:
    for name, low in (("max_tokens", 1), ("n", 1)):
        value = params.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < low
        ):
            raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or all(isinstance(s, str) for s in _as_list(stop))
    ):
        raise ConfigError(f"stop must be a string or a list of strings, got {stop!r}")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]
