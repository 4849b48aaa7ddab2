"""Pure translation between Spark's normalized request and google-genai's shapes, both ways.

No I/O and no SDK import: requests become the plain dicts ``google.genai`` validates into its
own types (``contents``, ``GenerateContentConfig``, ``EmbedContentConfig``), and SDK answers are
read by attribute, so this module is tested without a server and importing it costs nothing.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Mapping, Sequence
from typing import Any

from spark.errors import ConfigError, ProviderServerError
from spark.types import EmbeddingResponse, ModelResponse, ToolCall, Usage

__all__ = [
    "SKIP_THOUGHT_SIGNATURE",
    "ResponseAssembler",
    "embed_config",
    "embedding_response",
    "finish_reason",
    "generate_config",
    "synthetic_call_id",
    "to_gemini_contents",
    "usage_of",
]

# Gemini 3 rejects a replayed function call without the thought signature it was issued with;
# Spark's neutral ToolCall cannot carry that opaque blob (and the cache key drops unknown
# fields), so replayed calls carry Google's documented "skip the validator" sentinel instead.
# Rejected: smuggling the signature inside the call id (ids then change with every re-record).
SKIP_THOUGHT_SIGNATURE = b"skip_thought_signature_validator"

# Normalized parameter names whose GenerateContentConfig field is spelled differently.
_RENAMED = {
    "max_tokens": "max_output_tokens",
    "stop": "stop_sequences",
    "n": "candidate_count",
}
_FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
# Finish reasons that mean "a filter stopped the answer" (OpenAI's ``content_filter``).
_FILTERED = frozenset(
    [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    ]
)
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]+);base64,(?P<data>.*)$", re.DOTALL)


# -- request ----------------------------------------------------------------------------------


def to_gemini_contents(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Normalized messages as Gemini ``contents``: roles ``user``/``model``, parts as dicts.

    Assistant tool calls become ``function_call`` parts; ``tool`` messages become a user turn of
    ``function_response`` parts named after the call they answer (looked up by id). Adjacent
    turns of one role are merged, so parallel tool results form one turn as Gemini expects.
    """
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for message in messages:
        role = message["role"]
        if role == "user":
            turn = {"role": "user", "parts": _parts(message.get("content") or [])}
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            call_names.update({str(call["id"]): str(call["name"]) for call in calls})
            parts = _parts(message.get("content") or []) + _call_parts(calls)
            turn = {"role": "model", "parts": parts}
        elif role == "tool":
            turn = {"role": "user", "parts": [_function_response(message, call_names)]}
        else:
            raise ConfigError(
                f"Gemini has no {role!r} turn: system text is only accepted at the start of "
                "the conversation, other messages must be user, assistant or tool"
            )
        _append(contents, turn)
    return contents


def _append(contents: list[dict[str, Any]], turn: dict[str, Any]) -> None:
    if not turn["parts"]:
        return  # Gemini rejects empty turns; an empty message carries nothing anyway
    if contents and contents[-1]["role"] == turn["role"]:
        contents[-1]["parts"].extend(turn["parts"])
    else:
        contents.append(turn)


def _parts(content: Sequence[Any]) -> list[dict[str, Any]]:
    parts = [_part(part) for part in content]
    return [part for part in parts if part is not None]


def _part(part: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"text": part["text"]} if part["text"] else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        return _url_part(str(url))
    for name in ("inline_data", "inlineData"):
        if isinstance(part.get(name), Mapping):
            return {"inline_data": _blob(part[name])}
    for name in ("file_data", "fileData"):
        if isinstance(part.get(name), Mapping):
            return {"file_data": dict(part[name])}
    raise ConfigError(
        f"Gemini cannot take this content part: {sorted(part)!r}; use text, image_url "
        "(data: or http URL), inline_data or file_data parts"
    )


def _url_part(url: str) -> dict[str, Any]:
    found = _DATA_URL.match(url)
    if found:
        return {"inline_data": {"mime_type": found["mime"], "data": _b64(found["data"])}}
    mime = mimetypes.guess_type(url)[0] or "application/octet-stream"
    return {"file_data": {"file_uri": url, "mime_type": mime}}


def _blob(blob: Mapping[str, Any]) -> dict[str, Any]:
    mime = blob.get("mime_type", blob.get("mimeType"))
    return {"mime_type": mime, "data": _b64(str(blob.get("data", "")))}


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise ConfigError(f"inline data is not valid base64: {exc}") from exc


def _call_parts(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call in calls:
        function_call: dict[str, Any] = {"name": call["name"], "args": dict(call["arguments"])}
        if not _is_synthetic(str(call.get("id", "")), str(call["name"])):
            function_call["id"] = call["id"]
        part: dict[str, Any] = {"function_call": function_call}
        if not parts:  # like Gemini's own answers: the first call of a turn holds the signature
            part["thought_signature"] = SKIP_THOUGHT_SIGNATURE
        parts.append(part)
    return parts


def _function_response(message: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    call_id = str(message.get("tool_call_id") or "")
    name = names.get(call_id) or message.get("name")
    if not name:
        raise ConfigError(
            f"a tool result answers call id {call_id!r}, but no earlier assistant message "
            "made a tool call with that id (Gemini needs the function's name)"
        )
    texts = [part.get("text", "") for part in message.get("content") or []]
    response: dict[str, Any] = {"name": name, "response": {"result": "".join(texts)}}
    if call_id and not _is_synthetic(call_id, str(name)):
        response["id"] = call_id
    return {"function_response": response}


def synthetic_call_id(index: int, name: str) -> str:
    """The id Spark gives a Gemini function call that came without one (stable per answer)."""
    return f"call_{index}_{name}"


def _is_synthetic(call_id: str, name: str) -> bool:
    """Ids Spark made up are not sent back: Gemini never issued them."""
    return re.fullmatch(rf"call_\d+_{re.escape(name)}", call_id) is not None


def generate_config(request: Mapping[str, Any]) -> dict[str, Any]:
    """The ``GenerateContentConfig`` fields of a normalized request, as a plain dict.

    Parameters Spark does not know travel as they are, so any ``GenerateContentConfig`` field
    (``safety_settings``, ``thinking_config``, ...) works; the SDK's validation rejects the rest.
    """
    config: dict[str, Any] = {}
    system = [text for text in request.get("system") or [] if text]
    if system:
        config["system_instruction"] = {"parts": [{"text": text} for text in system]}
    params: dict[str, Any] = dict(request.get("params") or {})
    response_format = params.pop("response_format", None)
    effort = params.pop("reasoning_effort", None)
    for name, value in params.items():
        config[_RENAMED.get(name, name)] = value
    if response_format is not None:
        for name, value in _response_format(response_format).items():
            config.setdefault(name, value)
    if effort is not None:
        config.setdefault("thinking_config", _thinking(str(effort)))
    if request.get("tools"):
        config["tools"] = [{"function_declarations": [_declaration(t) for t in request["tools"]]}]
        # Declarations only, never Python callables: the SDK must not try to run anything.
        config["automatic_function_calling"] = {"disable": True}
    if request.get("tool_choice") is not None:
        config["tool_config"] = {"function_calling_config": _tool_mode(request["tool_choice"])}
    return config


def _declaration(tool: Mapping[str, Any]) -> dict[str, Any]:
    # ``parameters_json_schema`` takes the JSON Schema as it is; ``parameters`` would need a
    # lossy conversion to Gemini's OpenAPI-subset ``Schema`` (no ``additionalProperties``...).
    declaration: dict[str, Any] = {
        "name": tool["name"],
        "parameters_json_schema": tool.get("parameters") or {"type": "object"},
    }
    if tool.get("description"):
        declaration["description"] = tool["description"]
    return declaration


def _tool_mode(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _TOOL_MODES:
        return {"mode": _TOOL_MODES[choice]}
    if isinstance(choice, Mapping) and "name" in choice:
        return {"mode": "ANY", "allowed_function_names": [choice["name"]]}
    raise ConfigError(
        f"Gemini cannot take tool_choice {choice!r}; use auto, none, required or a tool name"
    )


def _response_format(value: Any) -> dict[str, Any]:
    """OpenAI's ``response_format`` spellings, or a bare JSON schema, as Gemini JSON mode."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"response_format must be a dict, got {value!r}")
    kind = value.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"response_mime_type": "application/json"}
    if kind == "json_schema":
        spec = value.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        config: dict[str, Any] = {"response_mime_type": "application/json"}
        if schema:
            config["response_json_schema"] = schema
        return config
    return {"response_mime_type": "application/json", "response_json_schema": dict(value)}


def _thinking(effort: str) -> dict[str, Any]:
    if effort.lower() == "none":
        return {"thinking_budget": 0}
    return {"thinking_level": effort.upper()}


def embed_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """``EmbedContentConfig`` fields: ``dimensions`` is ``output_dimensionality``; the rest as is."""
    config = dict(params)
    if "dimensions" in config:
        config["output_dimensionality"] = config.pop("dimensions")
    return config


# -- response ---------------------------------------------------------------------------------


class ResponseAssembler:
    """Reads ``GenerateContentResponse`` objects (one answer, or each chunk of a stream).

    ``feed`` returns the new answer text of a chunk; ``result`` assembles the whole answer.
    Thought parts (``part.thought``) are reasoning, not answer, and are left out.
    """

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[ToolCall] = []
        self.raw_finish: str | None = None
        self.blocked = False
        self.usage: Usage = Usage()

    def feed(self, chunk: Any) -> list[str]:
        """Take in one response or stream chunk; return its text pieces."""
        candidates = getattr(chunk, "candidates", None) or []
        pieces: list[str] = []
        if candidates:
            candidate = candidates[0]  # n > 1 is billed by Gemini but Spark keeps the first
            content = getattr(candidate, "content", None)
            for part in getattr(content, "parts", None) or []:
                call = getattr(part, "function_call", None)
                if call is not None:
                    self.calls.append(_tool_call(call, len(self.calls)))
                elif getattr(part, "text", None) and not getattr(part, "thought", None):
                    pieces.append(part.text)
            raw = getattr(candidate, "finish_reason", None)
            if raw is not None:
                self.raw_finish = str(getattr(raw, "value", raw))
        elif getattr(getattr(chunk, "prompt_feedback", None), "block_reason", None):
            self.blocked = True
        usage = getattr(chunk, "usage_metadata", None)
        if usage is not None:
            self.usage = usage_of(usage)
        self.texts.extend(pieces)
        return pieces

    @property
    def finished(self) -> bool:
        """Whether the answer ended properly (a finish reason, or a blocked prompt)."""
        return self.raw_finish is not None or self.blocked

    def result(self) -> ModelResponse:
        """The assembled answer (cost and cache flags are the base class's business)."""
        reason = "content_filter" if self.blocked else finish_reason(self.raw_finish, self.calls)
        return ModelResponse(
            text="".join(self.texts),
            tool_calls=tuple(self.calls),
            finish_reason=reason,
            usage=self.usage,
        )


def _tool_call(call: Any, index: int) -> ToolCall:
    name = str(call.name or "")
    call_id = getattr(call, "id", None) or synthetic_call_id(index, name)
    return ToolCall(id=str(call_id), name=name, arguments=dict(call.args or {}))


def finish_reason(raw: str | None, calls: Sequence[ToolCall] = ()) -> str:
    """Gemini's finish reason in Spark's words; a turn that called tools is ``tool_calls``.

    Gemini says ``STOP`` even when it called a function, so the calls decide.
    """
    if calls and raw in (None, "STOP"):
        return "tool_calls"
    if raw is None:
        return "stop"
    if raw in _FILTERED:
        return "content_filter"
    return _FINISH_REASONS.get(raw, raw.lower())


def usage_of(usage: Any) -> Usage:
    """Token counts from ``usage_metadata``: thinking tokens count as output (billed so)."""
    prompt = (getattr(usage, "prompt_token_count", None) or 0) + (
        getattr(usage, "tool_use_prompt_token_count", None) or 0
    )
    output = (getattr(usage, "candidates_token_count", None) or 0) + (
        getattr(usage, "thoughts_token_count", None) or 0
    )
    return Usage(input_tokens=int(prompt), output_tokens=int(output))


def embedding_response(response: Any, expected: int) -> EmbeddingResponse:
    """Vectors of an ``EmbedContentResponse``; input tokens only when Gemini reports them.

    The API-key endpoint reports no token counts for embeddings, so usage is then 0 (and the
    cost 0): Spark never estimates a count it was not given. A batch must come back with one
    vector per text, or the answer is refused (it would be cached wrong forever).
    """
    vectors = [list(embedding.values or []) for embedding in response.embeddings or []]
    if len(vectors) != expected:
        raise ProviderServerError(
            f"Gemini returned {len(vectors)} embeddings for {expected} texts", provider="gemini"
        )
    usage = getattr(response, "usage_metadata", None)
    tokens = getattr(usage, "prompt_token_count", None) or 0
    return EmbeddingResponse(embeddings=vectors, usage=Usage(input_tokens=int(tokens)))
