"""A conversation as Gemini ``contents`` (docs/models.md, "Gemini"): roles ``user``/``model``,
text and media parts in every spelling, tool calls and results. Pure code: no SDK import.

Plain text (a string prompt, ``{"role", "content": "..."}`` dicts) takes a fast path: this runs
on every cache hit.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from typing import Any

from spark.errors import ConfigError
from spark.models._gemini_keyed import keyed_parts

__all__ = ["SKIP_THOUGHT_SIGNATURE", "contents", "keyed_contents", "synthetic_call_id"]

# Gemini 3 rejects a replayed function call without the thought signature it was issued with.
# A neutral call carries it as ``signature`` (``ToolCall.signature``, base64 text) and is sent
# with it; a call without one (made by hand, or by another provider) carries Google's documented
# "skip the validator" sentinel instead. Native parts are sent as given. Rejected: smuggling the
# signature inside the call id (ids would then change per re-record).
SKIP_THOUGHT_SIGNATURE = b"skip_thought_signature_validator"

_ROLES = {"user": "user", "human": "user", "assistant": "model", "model": "model", "ai": "model"}
_SYSTEM_ROLES = frozenset({"system", "developer"})
_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]+);base64,(?P<data>.*)$", re.DOTALL)


def contents(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Leading system texts, and the rest as Gemini ``contents`` (roles ``user``/``model``).

    Assistant tool calls become ``function_call`` parts; ``tool`` messages a user turn of
    ``function_response`` parts named after the call they answer. Adjacent turns of one role are
    merged, so parallel tool results form one turn as Gemini expects.
    """
    turns = [_message(m) for m in _message_list(messages)]
    system: list[str] = []
    while turns and turns[0][0] == "system":
        system.append(_system_text(turns.pop(0)[1]))
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for role, message in turns:
        _append(out, _turn(role, message, call_names))
    return system, out


def keyed_contents(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The keyed form of ``contents``' turns (``keyed(turns)``: each is a role and parts)."""
    return [{"role": turn["role"], "parts": keyed_parts(turn["parts"])} for turn in turns]


def _message_list(messages: Any) -> list[Any]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if type(messages) is list:
        return [m if type(m) is dict else _as_mapping(m) for m in messages]
    if not isinstance(messages, Sequence):
        raise ConfigError(f"messages must be a string or a list of dicts, got {type(messages)}")
    return [_as_mapping(m) for m in messages]


def _as_mapping(message: Any) -> Mapping[str, Any]:
    if isinstance(message, Mapping):
        return message
    dump = getattr(message, "model_dump", None)  # a ``types.Content``
    if callable(dump):
        dumped: Mapping[str, Any] = dump(exclude_none=True)
        return dumped
    raise ConfigError(f"each message must be a dict with 'role' and 'content', got {message!r}")


def _message(message: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    role = message.get("role") or "user"
    if type(role) is not str or role not in _ROLES:  # the common spellings need no lower()
        role = str(role).lower()
    if role in _SYSTEM_ROLES:
        return "system", message
    if role == "tool" or role in _ROLES:
        return role, message
    raise ConfigError(f"Gemini has no {role!r} turn: use user, assistant (model), tool or system")


def _turn(role: str, message: Mapping[str, Any], names: dict[str, str]) -> dict[str, Any]:
    if role == "system":
        raise ConfigError(
            "Gemini takes system text only at the start of the conversation (or system_prompt=)"
        )
    if role == "tool":
        return {"role": "user", "parts": [_function_response(message, names)]}
    parts = _parts(message.get("content", message.get("parts")))
    calls = message.get("tool_calls")
    if not calls:
        return {"role": _ROLES[role], "parts": parts}
    neutral = [_neutral_call(call) for call in calls]
    names.update({call["id"]: call["name"] for call in neutral})
    return {"role": _ROLES[role], "parts": parts + _call_parts(neutral)}


def _append(out: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    if not turn["parts"]:
        return  # Gemini rejects empty turns; an empty message carries nothing anyway
    if out and out[-1]["role"] == turn["role"]:
        out[-1]["parts"].extend(turn["parts"])
    else:
        out.append(turn)


def _system_text(message: Mapping[str, Any]) -> str:
    parts = _parts(message.get("content", message.get("parts")))
    if not all(isinstance(p, Mapping) and len(p) == 1 and "text" in p for p in parts):
        raise ConfigError("a system message may only hold text")
    return "\n".join(str(p["text"]) for p in parts)


def _parts(content: Any) -> list[Any]:
    if content is None:
        return []
    if type(content) is str:  # the common case: one text, no walk
        return [{"text": content}] if content else []
    if isinstance(content, str) or not isinstance(content, Sequence):
        content = [content]
    parts = [_part(part) for part in content]
    return [part for part in parts if part is not None]


def _part(part: Any) -> Any:
    """One part: text in any spelling, OpenAI's ``image_url``, or a Gemini part as it is
    (``inline_data`` bytes, ``file_data``, a ``types.Part``, ...)."""
    if isinstance(part, str):
        return {"text": part} if part else None
    if type(part) is not dict and not isinstance(part, Mapping):
        if hasattr(part, "model_dump"):
            return part  # the SDK's own Part: sent as it is
        raise ConfigError(f"Gemini cannot take a {type(part).__name__} as a content part")
    kind = part.get("type")
    if kind == "text" or (kind is None and len(part) == 1 and "text" in part):
        return {"text": part["text"]} if part["text"] else None
    if kind == "image_url":
        image = part.get("image_url")
        return _url_part(str(image.get("url") if isinstance(image, Mapping) else image))
    if kind is not None:
        raise ConfigError(
            f"Gemini cannot take a {kind!r} content part; use text, image_url, or Gemini's own "
            "parts (inline_data, file_data, ...)"
        )
    return _native_part(part)


def _native_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """A Gemini part as given; bytes given as base64 text (inline data, a thought signature as
    ``response.reasoning`` holds it) are decoded, so the wire and the key see the same bytes."""
    out = dict(part)
    for name in ("inline_data", "inlineData"):
        blob = out.get(name)
        if isinstance(blob, Mapping) and isinstance(blob.get("data"), str):
            out[name] = {**blob, "data": _b64(blob["data"])}  # base64 text, as the API takes it
    for name in ("thought_signature", "thoughtSignature"):
        if isinstance(out.get(name), str):
            out[name] = _b64(out[name])
    return out


def _url_part(url: str) -> dict[str, Any]:
    found = _DATA_URL.match(url)
    if found:
        return {"inline_data": {"mime_type": found["mime"], "data": _b64(found["data"])}}
    mime = mimetypes.guess_type(url)[0] or "application/octet-stream"
    return {"file_data": {"file_uri": url, "mime_type": mime}}


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            f"bytes given as text (inline data, a signature) must be base64: {exc}"
        ) from exc


# -- tool calls and results -----------------------------------------------------------------


def _neutral_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call of an assistant message: neutral ``{id, name, arguments}`` or OpenAI's."""
    spec = call["function"] if isinstance(call.get("function"), Mapping) else call
    arguments = spec.get("arguments", spec.get("args", spec.get("input"))) or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise ConfigError(f"tool call arguments are not JSON: {arguments!r}") from exc
    signature = call.get("signature")  # a Gemini call's thought signature (base64 text)
    return {
        "id": str(call.get("id") or ""),
        "name": str(spec["name"]),
        "arguments": arguments,
        "signature": signature if isinstance(signature, str) and signature else None,
    }


def _call_parts(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The turn's calls as ``function_call`` parts, each with the signature it came with; when
    none came with one, the first carries Google's "skip the validator" signature."""
    signed = any(call["signature"] for call in calls)
    parts: list[dict[str, Any]] = []
    for call in calls:
        function_call: dict[str, Any] = {"name": call["name"], "args": dict(call["arguments"])}
        if call["id"] and not _is_synthetic(call["id"], call["name"]):
            function_call["id"] = call["id"]
        part: dict[str, Any] = {"function_call": function_call}
        if call["signature"]:
            part["thought_signature"] = _b64(call["signature"])
        elif not parts and not signed:  # as in Gemini's answers: the first call holds it
            part["thought_signature"] = SKIP_THOUGHT_SIGNATURE
        parts.append(part)
    return parts


def _function_response(message: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A tool result: ``{"result": ...}``: text (a string, or text parts joined) as text, any
    other data (a dict, a list of values, a number) as it is (``None``s in)."""
    call_id = str(message.get("tool_call_id") or "")
    name = names.get(call_id) or message.get("name")
    if not name:
        raise ConfigError(
            f"a tool result answers call id {call_id!r}, but no earlier assistant message "
            "made a tool call with that id (Gemini needs the function's name)"
        )
    content = message.get("content")
    result = _result_text(content) if _is_text(content) else content
    response: dict[str, Any] = {"name": name, "response": {"result": result}}
    if call_id and not _is_synthetic(call_id, str(name)):
        response["id"] = call_id
    return {"function_response": response}


def _is_text(content: Any) -> bool:
    """Whether a tool result is text: none, a string, or a list of strings and text parts."""
    if content is None or isinstance(content, str):
        return True
    return isinstance(content, list | tuple) and all(
        isinstance(p, str) or (isinstance(p, Mapping) and _is_text_part(p)) for p in content
    )


def _is_text_part(part: Mapping[str, Any]) -> bool:
    return isinstance(part.get("text"), str) and part.get("type", "text") == "text"


def _result_text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(p if isinstance(p, str) else str(p["text"]) for p in content)


def synthetic_call_id(index: int, name: str) -> str:
    """The id Spark gives a Gemini function call that came without one (stable per answer)."""
    return f"call_{index}_{name}"


def _is_synthetic(call_id: str, name: str) -> bool:
    """Ids Spark made up (``call_<digits>_<name>``) are not sent back: Gemini never issued
    them. Plain string checks: a pattern per name would be compiled on every call."""
    digits = call_id[5 : len(call_id) - len(name) - 1]
    return (
        call_id.startswith("call_")
        and call_id.endswith(f"_{name}")
        and len(call_id) > len(name) + 6
        and digits.isdecimal()
    )
