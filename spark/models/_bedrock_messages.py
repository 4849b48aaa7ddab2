"""Converse's message, system and tool shapes from the spellings Spark accepts (docs/models.md,
"Bedrock"): the common message spellings, neutral and OpenAI tools and tool calls; Converse's
own blocks (image, document, toolUse, cachePoint, ...) are kept exactly as given.

Pure code: no SDK, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any

from spark.errors import ConfigError

__all__ = [
    "MEDIA_PATHS",
    "check_media",
    "content_block",
    "converse_tool",
    "converse_tool_choice",
    "copy_value",
    "has_tool_blocks",
    "split_messages",
]

# Where Converse takes bytes (botocore blobs; a test checks them against the service model).
MEDIA_PATHS = (
    "messages[].content[].image.source.bytes",
    "messages[].content[].document.source.bytes",
    "messages[].content[].video.source.bytes",
    "messages[].content[].audio.source.bytes",
    "messages[].content[].toolResult.content[].image.source.bytes",
    "messages[].content[].toolResult.content[].document.source.bytes",
    "messages[].content[].toolResult.content[].video.source.bytes",
    "messages[].content[].guardContent.image.source.bytes",
    "messages[].content[].reasoningContent.redactedContent",
    "system[].guardContent.image.source.bytes",
)
_MEDIA_BLOCKS = ("image", "document", "video", "audio")
_MEDIA_KINDS = frozenset(_MEDIA_BLOCKS)
_SCALARS = frozenset({str, int, float, bool, bytes, type(None)})

_ROLES = {"developer": "system", "human": "user", "ai": "assistant", "model": "assistant"}
# The words of a tool choice -> Converse's (which has no "none": see converse_tool_choice).
_TOOL_WORDS = {"auto": "auto", "required": "any", "any": "any", "none": None}
_TOOL_KEYS = frozenset({"name", "description", "parameters", "input_schema", "strict"})


def copy_value(value: Any) -> Any:
    """A copy of nested dicts and lists (``None`` values and bytes kept as they are)."""
    kind = type(value)
    if kind is dict:
        return {k if type(k) is str else str(k): copy_value(v) for k, v in value.items()}
    if kind is list:
        return [copy_value(v) for v in value]
    if kind in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {str(k): copy_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [copy_value(v) for v in value]
    return value


def check_media(messages: list[dict[str, Any]], system: list[Any]) -> None:
    """Refuse base64 text where Converse takes bytes: boto3 would encode it a second time."""
    pending: list[Any] = [b for m in messages for b in m.get("content") or []]
    pending.extend(system)
    while pending:
        block = pending.pop()
        if not isinstance(block, Mapping):
            continue
        result = block.get("toolResult")
        if isinstance(result, Mapping):
            pending.extend(result.get("content") or [])
        if "guardContent" in block:
            pending.append(block["guardContent"])
        for kind in block.keys() & _MEDIA_KINDS:
            media = block[kind]
            source = media.get("source") if isinstance(media, Mapping) else None
            if isinstance(source, Mapping) and isinstance(source.get("bytes"), str):
                raise ConfigError(
                    f"{kind}.source.bytes must be the raw bytes, not text: boto3 base64-encodes"
                    " them itself (decode base64 text first: base64.b64decode(...))"
                )


# -- messages -------------------------------------------------------------------------------------


def split_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The leading system messages as system blocks, and the rest as Converse messages."""
    if isinstance(messages, str):
        return [], [{"role": "user", "content": [{"text": messages}]}]
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        raise ConfigError(f"messages must be a string or a list of dicts, got {type(messages)}")
    for message in messages:
        if not isinstance(message, Mapping):
            raise ConfigError(f"each message must be a dict with a role, got {message!r}")
    rest = list(messages)
    system: list[dict[str, Any]] = []
    while rest and _role(rest[0]) == "system":
        system += [content_block(part) for part in _parts(rest.pop(0).get("content"))]
    return system, _turns(rest)


def _role(message: Mapping[str, Any]) -> str:
    role = str(message.get("role", "user")).lower()
    return _ROLES.get(role, role)


def _parts(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str | Mapping):
        return [content]
    return list(content)


def content_block(part: Any) -> dict[str, Any]:
    """A Converse content block: text spellings become ``{"text"}``; native blocks (image,
    document, toolUse, cachePoint, ...) are kept as given."""
    if isinstance(part, str):
        return {"text": part}
    if isinstance(part, Mapping) and part.get("type") == "text" and set(part) == {"type", "text"}:
        return {"text": part["text"]}
    if not isinstance(part, Mapping):
        raise ConfigError(f"a content part must be text or a dict, got {part!r}")
    block = {str(k): copy_value(v) for k, v in part.items()}
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("redactedContent"), str):
        reasoning["redactedContent"] = _redacted_bytes(reasoning["redactedContent"])
    return block


def _redacted_bytes(text: str) -> bytes:
    """Redacted reasoning as ``response.reasoning`` gives it (base64 text) as the bytes it
    stands for: boto3 base64-encodes bytes itself, so text would be encoded twice."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            "reasoningContent.redactedContent given as text must be base64 (as "
            f"response.reasoning gives it), or pass the raw bytes: {exc}"
        ) from exc


def _turns(messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Converse messages; a tool result becomes a user ``toolResult`` block and consecutive
    messages of one role merge, because Converse requires alternating roles."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, blocks, extra = _message(message)
        if out and out[-1]["role"] == role and not extra and len(out[-1]) == 2:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks, **extra})
    for message in out:  # Converse rejects blank text blocks next to others
        message["content"] = [b for b in message["content"] if b != {"text": ""}] or [{"text": ""}]
    return out


def _message(message: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """One message's role, content blocks and other fields (kept for boto3 to judge)."""
    role = _role(message)
    if role == "tool":
        return "user", [{"toolResult": _tool_result(message)}], {}
    blocks = [content_block(part) for part in _parts(message.get("content", message.get("parts")))]
    blocks += [{"toolUse": _tool_use(call)} for call in message.get("tool_calls") or []]
    skip = {"role", "content", "parts", "tool_calls"}
    return role, blocks, {k: copy_value(v) for k, v in message.items() if k not in skip}


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, str | list | tuple | type(None)):
        content = json.dumps(content, sort_keys=True)  # a tool result given as data, nulls kept
    result = {
        "toolUseId": str(message.get("tool_call_id", "")),
        "content": [content_block(part) for part in _parts(content)],
    }
    if "status" in message:
        result["status"] = message["status"]
    return result


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    """A ``toolUse`` block for a neutral ``{"id", "name", "arguments"}`` call or OpenAI's
    ``{"id", "function": {"name", "arguments": "<json>"}}``."""
    spec = call["function"] if isinstance(call.get("function"), Mapping) else call
    arguments = spec.get("arguments", spec.get("input"))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise ConfigError(f"tool call arguments are not JSON: {arguments!r}") from exc
    return {
        "toolUseId": str(call.get("id", "")),
        "name": str(spec["name"]),
        "input": {} if arguments is None else copy_value(arguments),
    }


def converse_tool(tool: Any) -> dict[str, Any]:
    """A Converse ``Tool``: the neutral ``{"name", "description", "parameters"}`` (also with
    ``parameters: {"json": schema}``), OpenAI's ``{"type": "function", "function": {...}}``,
    or Converse's own ``toolSpec`` / ``systemTool`` / ``cachePoint`` as given."""
    if not isinstance(tool, Mapping):
        raise ConfigError(f"a tool must be a dict or a ToolSpec, got {tool!r}")
    if {"toolSpec", "systemTool", "cachePoint"} & set(tool):
        return {str(k): copy_value(v) for k, v in tool.items()}
    spec: Mapping[str, Any] = (
        tool["function"] if isinstance(tool.get("function"), Mapping) else tool
    )
    if "name" not in spec:
        raise ConfigError(f"a tool needs a name (neutral, OpenAI or Converse spelling): {tool!r}")
    outer = set(tool) - {"type", "function"} if spec is not tool else set()
    unknown = sorted(outer | (set(spec) - _TOOL_KEYS - ({"type"} if spec is tool else set())))
    if unknown:
        raise ConfigError(f"tool fields Converse has no place for: {unknown} in {tool!r}")
    schema = spec.get("parameters", spec.get("input_schema"))
    if isinstance(schema, Mapping) and set(schema) == {"json"}:
        schema = schema["json"]  # the original framework's spelling is Converse's inputSchema
    out: dict[str, Any] = {"name": str(spec["name"])}
    if spec.get("description"):
        out["description"] = str(spec["description"])
    out["inputSchema"] = {"json": copy_value(schema or {"type": "object", "properties": {}})}
    if "strict" in spec:
        out["strict"] = spec["strict"]
    return {"toolSpec": out}


def converse_tool_choice(choice: Any) -> dict[str, Any] | None:
    """Converse's ``toolChoice`` for a neutral, OpenAI or Anthropic choice (None: "none")."""
    if isinstance(choice, str):
        if choice.lower() not in _TOOL_WORDS:
            return {"tool": {"name": choice}}
        return _word_choice(choice.lower())
    if not isinstance(choice, Mapping):
        raise ConfigError(f"tool_choice must be a word, a tool name or a dict, got {choice!r}")
    if {"auto", "any", "tool"} & set(choice):
        return {str(k): copy_value(v) for k, v in choice.items()}
    if isinstance(choice.get("function"), Mapping):
        return {"tool": {"name": str(choice["function"]["name"])}}
    if "name" in choice:
        return {"tool": {"name": str(choice["name"])}}
    kind = choice.get("type")
    if isinstance(kind, str) and kind in _TOOL_WORDS:
        return _word_choice(kind)
    raise ConfigError(f"unknown tool_choice {choice!r}")


def _word_choice(word: str) -> dict[str, Any] | None:
    native = _TOOL_WORDS[word]
    return None if native is None else {native: {}}


def has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    """Whether a conversation already holds ``toolUse`` or ``toolResult`` blocks."""
    return any(
        isinstance(b, Mapping) and ("toolUse" in b or "toolResult" in b)
        for m in messages
        for b in m["content"]
    )
