"""Neutral messages, tools and output formats in the Responses API's spelling (``input`` items,
flat function tools, ``text.format``). Pure code: no SDK import (docs/models.md, "Responses API").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spark.errors import ConfigError
from spark.models._openai_convert import (
    _ROLES,
    _json,
    arguments_text,
    plain_text_message,
    strict_compatible,
)
from spark.models._openai_media import encode_media_bytes
from spark.models._openai_tools import as_mapping, to_openai_tool_choice, to_openai_tools
from spark.models.wire import KeyedJSON

__all__ = ["to_input_items", "to_responses_tool_choice", "to_responses_tools", "to_text_format"]

_FORMAT_TYPES = frozenset({"text", "json_object", "json_schema"})
# Chat-completions media parts -> their Responses content type.
_CHAT_MEDIA = {"image_url": "input_image", "file": "input_file", "input_audio": "input_audio"}


# -- messages ---------------------------------------------------------------------------------


def to_input_items(messages: Any) -> list[Any]:
    """The ``input`` items of a conversation in any spelling the chat path accepts.

    A plain string is one user message. Neutral/OpenAI ``tool_calls`` of an assistant message
    become ``function_call`` items after it, ``role: "tool"`` messages ``function_call_output``
    items; Responses items (a ``type`` and no ``role``) are sent as given.
    """
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence):
        raise ConfigError(f"messages must be a string or a list of dicts, got {type(messages)}")
    items: list[Any] = []
    for message in messages:
        items.extend(_items_of(as_mapping(message)))
    return items


def _items_of(message: Any) -> list[Any]:
    plain = plain_text_message(message)
    if plain is not None and plain["role"] != "tool":
        return [plain]
    if not isinstance(message, Mapping):
        raise ConfigError(f"each message must be a dict with 'role' and 'content', got {message!r}")
    if ("role" not in message and "type" in message) or _output_message(message):
        return [dict(message)]  # a Responses item: function_call, reasoning, item_reference, ...
    role = str(message.get("role", "user")).lower()
    role = _ROLES.get(role, role)
    if role == "tool":
        return [_tool_output(message)]
    content = _content(message.get("content", message.get("parts")), role)
    out: dict[str, Any] = {"role": role, "content": content}
    out.update(
        (name, value)
        for name, value in message.items()
        if name not in {"role", "content", "parts", "tool_calls", "tool_call_id"}
    )
    calls = [_function_call(call) for call in message.get("tool_calls") or ()]
    # An assistant turn that only called tools has no message of its own on this API.
    return [*([out] if content or not calls else []), *calls]


def _output_message(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` is an output message of an earlier answer (a ``type: message`` item
    with its ``id`` or ``status``): sent as given, its ``output_text`` parts and all."""
    return message.get("type") == "message" and ("id" in message or "status" in message)


def _tool_output(message: Mapping[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id", message.get("call_id"))
    if not call_id:
        raise ConfigError("a tool result message needs the tool_call_id of the call it answers")
    content = message.get("content")
    if isinstance(content, list | tuple):
        output: Any = _content(content, "user")
    elif isinstance(content, str) or content is None:
        output = content or ""
    else:
        output = _json(content)  # a result given as data, as on chat completions
    return {"type": "function_call_output", "call_id": str(call_id), "output": output}


def _function_call(call: Any) -> dict[str, Any]:
    """A neutral ``{"id", "name", "arguments"}`` or chat-spelled call as a ``function_call``."""
    call = as_mapping(call)
    if not isinstance(call, Mapping):
        raise ConfigError(f"a tool call must be a dict, got {call!r}")
    if call.get("type") == "function_call":
        return dict(call)
    spec = call["function"] if isinstance(call.get("function"), Mapping) else call
    arguments = spec.get("arguments", spec.get("args", spec.get("input")))
    text = arguments_text(arguments)
    call_id = str(call.get("call_id", call.get("id", "")))
    return {
        "type": "function_call",
        "call_id": call_id,
        "name": str(spec["name"]),
        "arguments": text,
    }


def _content(content: Any, role: str) -> Any:
    """One text becomes a plain string; other content a list of Responses parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        content = [content]
    parts = [_part(part, role) for part in content]
    only = parts[0] if len(parts) == 1 else None
    if isinstance(only, Mapping) and set(only) == {"type", "text"}:
        return str(only["text"]) if only["type"] in {"input_text", "output_text"} else parts
    return parts


def _part(part: Any, role: str) -> Any:
    text_type = "output_text" if role == "assistant" else "input_text"
    if isinstance(part, str):
        return {"type": text_type, "text": part}
    part = as_mapping(part)
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type", "text")
    if "text" in part and set(part) <= {"text", "type"} and kind == "text":
        return {"type": text_type, "text": part["text"]}
    if kind in _CHAT_MEDIA:
        return _chat_media(encode_media_bytes(part))
    if kind in {"input_image", "input_file"}:
        return _native_media(part)
    return dict(part)


def _chat_media(part: Mapping[str, Any]) -> dict[str, Any]:
    """A chat-completions media part (bytes already encoded) as its Responses part."""
    kind = str(part["type"])
    inner = dict(part.get(kind) or {})
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": inner}
    if kind == "file":
        return {"type": "input_file", **inner}
    image: dict[str, Any] = {"type": "input_image", "image_url": inner.get("url")}
    image["detail"] = inner.get("detail") or "auto"  # required on this API; "auto" is the default
    return image


def _native_media(part: Mapping[str, Any]) -> dict[str, Any]:
    """``input_image`` / ``input_file`` with bytes given: the data URL the API reads."""
    kind, field = ("image_url", "url") if part["type"] == "input_image" else ("file", "file_data")
    slot = "image_url" if kind == "image_url" else "file_data"
    raw = part.get(slot)
    if not isinstance(raw, bytes | bytearray | memoryview):
        return dict(part)
    encoded = encode_media_bytes({"type": kind, kind: {field: raw}})
    return {**part, slot: encoded[kind][field]}


# -- tools ------------------------------------------------------------------------------------


def to_responses_tools(tools: Iterable[Any]) -> list[Any]:
    """Neutral, chat-spelled and Bedrock tools as flat Responses function tools; Responses
    tools (``web_search``, ``file_search``, ``mcp``, flat ``function``, ...) unchanged.

    Every spelling is read once, by the chat translation (``to_openai_tools``), then flattened.
    ``strict`` is always sent (the API requires the field): ``False`` unless the tool says
    otherwise, as chat completions treat a tool without it.
    """
    return [_flat(tool) for tool in to_openai_tools(list(tools))]


def _flat(tool: Any) -> Any:
    """A chat-completions tool in the Responses API's flat form."""
    if not isinstance(tool, Mapping):
        return tool
    function, custom = tool.get("function"), tool.get("custom")
    if tool.get("type") == "function" and isinstance(function, Mapping):
        return {"type": "function", **function, "strict": function.get("strict", False)}
    if tool.get("type") == "custom" and isinstance(custom, Mapping):
        return {"type": "custom", **custom}
    return tool


def to_responses_tool_choice(choice: Any) -> Any:
    """``auto`` / ``none`` / ``required`` (``any``), a tool name, ``{"name": n}``, the chat
    ``{"type": "function", "function": {"name": n}}`` or Bedrock's ``{"tool": {"name": n}}`` in
    the Responses form; the API's own choices (``{"type": "function", "name": n}``,
    ``allowed_tools``, built-in tool types) unchanged. Read once by the chat translation
    (``to_openai_tool_choice``), then flattened."""
    chat = to_openai_tool_choice(choice)
    if not isinstance(chat, Mapping):
        return chat
    function = chat.get("function")
    if chat.get("type") == "function" and isinstance(function, Mapping):
        return {"type": "function", "name": str(function["name"])}
    return dict(chat)


# -- output format ----------------------------------------------------------------------------


def to_text_format(value: Any) -> Any:
    """``text.format`` of ``output_schema=`` / ``response_format=``: a bare JSON schema (or a
    pydantic class, for its schema) as ``{"type": "json_schema", "name", "schema"}``; the chat
    form ``{"type": "json_schema", "json_schema": {...}}`` flattened; the API's own formats
    (``text``, ``json_object``, flat ``json_schema``) unchanged. A bare schema that strict mode
    takes as it is (every object closed, all properties required) is sent ``strict``, as on
    chat completions."""
    schema_of = getattr(value, "model_json_schema", None)
    value = schema_of() if isinstance(value, type) and callable(schema_of) else as_mapping(value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"an output format must be a JSON schema or a dict, got {value!r}")
    if value.get("type") not in _FORMAT_TYPES:
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(value.get("title") or "response"))[:64]
        schema = value if type(value) is KeyedJSON else dict(value)  # (shared: never changed)
        spec = {"type": "json_schema", "name": name, "schema": schema}
        return {**spec, "strict": True} if strict_compatible(value) else spec
    if value["type"] == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        return {"type": "json_schema", **value["json_schema"]}
    return dict(value)
