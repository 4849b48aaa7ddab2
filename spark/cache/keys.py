"""Cache keys: normalize a request, serialize it canonically, hash it (DESIGN §2).

The key is ``sha256(canonical_json(normalized_request))``. The normalized request holds the
key-schema version, provider, model id, request kind, messages, system text, tools, tool choice,
response format and every parameter that can change the answer, plus the namespace. It leaves out
what cannot change the answer (``EXCLUDED_PARAMS``). Bump ``KEY_SCHEMA_VERSION`` whenever the
normalized form changes: ``tests/cache/test_keys.py`` pins known keys so that is never silent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spark.errors import ConfigError

__all__ = [
    "EXCLUDED_PARAMS",
    "KEY_SCHEMA_VERSION",
    "canonical_json",
    "create_key",
    "normalize_embedding_request",
    "normalize_messages",
    "normalize_request",
    "normalize_tools",
]

KEY_SCHEMA_VERSION = 1

# Fields that never change the answer: credentials, transport, tracing, streaming.
EXCLUDED_PARAMS = frozenset(
    {
        "api_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "base_url",
        "endpoint_url",
        "organization",
        "project",
        "region",
        "region_name",
        "timeout",
        "request_timeout",
        "max_retries",
        "retries",
        "headers",
        "extra_headers",
        "extra_query",
        "http_options",
        "user",
        "metadata",
        "request_metadata",
        "requestMetadata",
        "serviceTier",
        "store",
        "stream",
        "stream_options",
        "client",
        "encoding_format",
        "service_tier",
    }
)

# Several SDKs spell one parameter differently; the key uses the first name.
_PARAM_ALIASES = {
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "maxTokens": "max_tokens",
    "maxOutputTokens": "max_tokens",
    "topP": "top_p",
    "topK": "top_k",
    "stop_sequences": "stop",
    "stopSequences": "stop",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "candidate_count": "n",
    "candidateCount": "n",
    "response_schema": "response_format",
    "responseSchema": "response_format",
    "output_schema": "response_format",
}
_FLOAT_PARAMS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
_INT_PARAMS = frozenset({"max_tokens", "top_k", "seed", "n", "top_logprobs"})
_ROLE_ALIASES = {"model": "assistant", "developer": "system", "human": "user", "ai": "assistant"}
_TOOL_CHOICE_WORDS = {"auto": "auto", "none": "none", "required": "required", "any": "required"}


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted, ASCII-only JSON: one byte string per value, whatever the dict order."""
    try:
        return _CANONICAL.encode(value).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"request is not JSON-serializable: {exc}") from exc


def create_key(normalized: Mapping[str, Any]) -> str:
    """The SHA-256 hex digest of the canonical JSON of a normalized request."""
    return hashlib.sha256(canonical_json(normalized)).hexdigest()


def normalize_request(
    provider: str,
    model_id: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    system_prompt: str | Sequence[str] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    namespace: str = "",
    **params: Any,
) -> dict[str, Any]:
    """The normalized form of a text (chat) request; equal for equivalent spellings."""
    system, rest = _split_system(messages)
    if system_prompt is not None:
        prompts = [system_prompt] if isinstance(system_prompt, str) else list(system_prompt)
        system = [*prompts, *system]
    request: dict[str, Any] = {
        "v": KEY_SCHEMA_VERSION,
        "kind": "chat",
        "provider": provider,
        "model": model_id,
        "namespace": namespace,
        "system": system,
        "messages": rest,
        "params": normalize_params(params),
    }
    if tools:
        request["tools"] = normalize_tools(tools)
    if tool_choice is not None:
        request["tool_choice"] = _normalize_tool_choice(tool_choice)
    return request


def normalize_embedding_request(
    provider: str, model_id: str, inputs: str | Sequence[str], *, namespace: str = "", **params: Any
) -> dict[str, Any]:
    """The normalized form of an embeddings request (one text or a batch)."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    return {
        "v": KEY_SCHEMA_VERSION,
        "kind": "embedding",
        "provider": provider,
        "model": model_id,
        "namespace": namespace,
        "input": texts,
        "params": normalize_params(params),
    }


def normalize_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop excluded and ``None`` params, unify aliases and number spellings."""
    out: dict[str, Any] = {}
    for raw_name, value in params.items():
        name = _PARAM_ALIASES.get(raw_name, raw_name)
        if value is None or name in EXCLUDED_PARAMS:
            continue
        out[name] = _normalize_param(name, value)
    return out


def _normalize_param(name: str, value: Any) -> Any:
    if name in _FLOAT_PARAMS and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if name in _INT_PARAMS and isinstance(value, float) and value.is_integer():
        return int(value)
    if name == "stop" and isinstance(value, str):
        return [value]
    return _plain(value)


def normalize_messages(messages: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages in one spelling: ``{"role", "content": [parts...], ...}``."""
    if isinstance(messages, str):
        return [{"role": "user", "content": [{"type": "text", "text": messages}]}]
    if not isinstance(messages, Sequence):
        raise ConfigError(f"messages must be a string or a list of dicts, got {type(messages)}")
    return [_normalize_message(message) for message in messages]


def _split_system(messages: str | Sequence[Mapping[str, Any]]) -> tuple[list[str], list[Any]]:
    normalized = normalize_messages(messages)
    system: list[str] = []
    index = 0
    while index < len(normalized) and normalized[index]["role"] == "system":
        system.append(_text_of(normalized[index]["content"]))
        index += 1
    return system, normalized[index:]


def _normalize_message(message: Any) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise ConfigError(f"each message must be a dict with 'role' and 'content', got {message!r}")
    role = str(message.get("role", "user")).lower()
    out: dict[str, Any] = {"role": _ROLE_ALIASES.get(role, role)}
    content = message.get("content", message.get("parts"))
    if out["role"] == "tool" and not isinstance(content, str | list | tuple | type(None)):
        content = json.dumps(_plain(content), sort_keys=True)  # a tool result given as data
    out["content"] = _normalize_content(content)
    for name, value in message.items():
        if name in {"role", "content", "parts"} or value is None:
            continue
        out[name] = _normalize_tool_calls(value) if name == "tool_calls" else _plain(value)
    return out


def _normalize_tool_calls(calls: Any) -> list[dict[str, Any]]:
    """Tool calls in assistant messages, neutral: ``{"id", "name", "arguments": {...}}``.

    Accepts OpenAI's ``{"id", "type": "function", "function": {"name", "arguments": "<json>"}}``.
    """
    out = []
    for call in calls:
        spec = call.get("function") if isinstance(call.get("function"), Mapping) else call
        arguments = spec.get("arguments", spec.get("args", spec.get("input"))) or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ConfigError(f"tool call arguments are not JSON: {arguments!r}") from exc
        out.append(
            {"id": str(call.get("id", "")), "name": spec["name"], "arguments": _plain(arguments)}
        )
    return out


def _normalize_content(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, Mapping):
        content = [content]
    return [_normalize_part(part) for part in content]


def _normalize_part(part: Any) -> Any:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if (
        isinstance(part, Mapping)
        and "text" in part
        and set(part) <= {"text", "type"}
        and part.get("type", "text") == "text"
    ):
        return {"type": "text", "text": part["text"]}
    return _plain(part)


def _text_of(parts: list[Any]) -> str:
    texts = [p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    if len(texts) != len(parts):
        raise ConfigError("a system message may only hold text")
    return "\n".join(texts)


def normalize_tools(tools: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the neutral form ``{"name", "description", "parameters"}``.

    Accepts the neutral form, OpenAI's ``{"type": "function", "function": {...}}`` and Bedrock's
    ``{"toolSpec": {"name", "description", "inputSchema": {"json": ...}}}``.
    """
    return [_normalize_tool(tool) for tool in tools]


def _normalize_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if "function" in tool and isinstance(tool["function"], Mapping):
        spec: Mapping[str, Any] = tool["function"]
        parameters = spec.get("parameters")
    elif "toolSpec" in tool:
        spec = tool["toolSpec"]
        parameters = (spec.get("inputSchema") or {}).get("json")
    elif "name" in tool:
        spec = tool
        parameters = spec.get("parameters", spec.get("input_schema"))
    else:
        raise ConfigError(f"a tool needs a name (neutral, OpenAI or Bedrock spelling): {tool!r}")
    out: dict[str, Any] = {
        "name": str(spec["name"]),
        "parameters": _plain(parameters or {"type": "object", "properties": {}}),
    }
    if spec.get("description"):
        out["description"] = str(spec["description"])
    return out


def _normalize_tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return _TOOL_CHOICE_WORDS.get(choice.lower(), {"name": choice})
    if isinstance(choice, Mapping):
        if isinstance(choice.get("function"), Mapping):
            return {"name": choice["function"]["name"]}
        if isinstance(choice.get("tool"), Mapping):
            return {"name": choice["tool"]["name"]}
        if "name" in choice:
            return {"name": choice["name"]}
        if choice.get("type") in _TOOL_CHOICE_WORDS:
            return _TOOL_CHOICE_WORDS[choice["type"]]
        for word in ("auto", "any", "none"):
            if word in choice:
                return _TOOL_CHOICE_WORDS[word]
    return _plain(choice)


def _plain(value: Any) -> Any:
    """JSON-ready copy: mappings to dicts, sequences to lists, pydantic models dumped."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(exclude_none=True))
    raise ConfigError(f"cannot use a {type(value).__name__} in a cached request: {value!r}")
