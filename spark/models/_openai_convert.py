"""Pure translation between Spark's normalized request and OpenAI's Chat Completions shapes.

No I/O and no SDK import at run time: requests become plain keyword arguments for
``client.chat.completions.create`` and SDK answers are read by attribute, so this module is
tested without a server and importing it costs nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spark.types import EmbeddingResponse, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessageToolCallUnion,
    )
    from openai.types.completion_usage import CompletionUsage

__all__ = [
    "StreamAssembler",
    "chat_arguments",
    "embedding_arguments",
    "embedding_response",
    "response_from_completion",
    "to_openai_messages",
    "to_openai_tool_choice",
    "to_openai_tools",
]

# Normalized parameters the Chat Completions API takes under another name.
_RENAMED = {"max_tokens": "max_completion_tokens"}
# Parameters ``create()`` accepts as keywords; anything else travels in ``extra_body`` (same
# JSON on the wire), so a new or server-specific parameter (``top_k`` on vLLM) never becomes a
# TypeError inside the SDK. Rejected: inspecting the SDK signature (slow, breaks on fakes).
_CHAT_KEYWORDS = frozenset(
    {
        "temperature",
        "top_p",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "response_format",
        "reasoning_effort",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "parallel_tool_calls",
    }
)
# ``embed()`` hands its parameters over raw (not normalized): transport options stay keywords.
_EMBEDDING_KEYWORDS = frozenset({"dimensions", "user", "timeout", "extra_headers", "extra_query"})
_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_RESPONSE_FORMAT_TYPES = frozenset({"text", "json_object", "json_schema"})


# -- requests ---------------------------------------------------------------------------------


def chat_arguments(model_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.completions.create`` from a normalized request."""
    arguments: dict[str, Any] = {
        "model": model_id,
        "messages": to_openai_messages(request.get("system") or [], request["messages"]),
    }
    extra: dict[str, Any] = {}
    for name, value in (request.get("params") or {}).items():
        name = _RENAMED.get(name, name)
        if name == "response_format":
            value = _response_format(value)
        (arguments if name in _CHAT_KEYWORDS else extra)[name] = value
    if request.get("tools"):
        arguments["tools"] = to_openai_tools(request["tools"])
    if "tool_choice" in request:
        arguments["tool_choice"] = to_openai_tool_choice(request["tool_choice"])
    if extra:
        arguments["extra_body"] = extra
    return arguments


def embedding_arguments(
    model_id: str, texts: list[str], params: Mapping[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for ``client.embeddings.create`` from the caller's raw parameters.

    ``encoding_format`` is dropped: the SDK picks the wire encoding and decodes it, while a
    caller's ``"base64"`` would hand back strings instead of vectors.
    """
    arguments: dict[str, Any] = {"model": model_id, "input": texts}
    extra: dict[str, Any] = dict(params.get("extra_body") or {})
    for name, value in params.items():
        if name in _EMBEDDING_KEYWORDS:
            arguments[name] = value
        elif name not in {"encoding_format", "extra_body"}:
            extra[name] = value
    if extra:
        arguments["extra_body"] = extra
    return arguments


def to_openai_messages(
    system: Sequence[str], messages: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """System texts first (one system message each), then the conversation in OpenAI's form."""
    out: list[dict[str, Any]] = [{"role": "system", "content": text} for text in system]
    out.extend(_to_openai_message(message) for message in messages)
    return out


def _to_openai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message["role"]
    out: dict[str, Any] = {k: v for k, v in message.items() if k not in {"content", "tool_calls"}}
    parts = list(message.get("content") or [])
    if role == "tool":
        out["content"] = _joined_text(parts) if _all_text(parts) else parts
    elif role == "assistant" and message.get("tool_calls"):
        # OpenAI wants ``null`` content next to tool calls when the model said nothing.
        text = _joined_text(parts) if _all_text(parts) else None
        out["content"] = parts if text is None else (text or None)
        out["tool_calls"] = [_to_openai_tool_call(call) for call in message["tool_calls"]]
    else:
        out["content"] = _content(parts)
    return out


def _content(parts: list[Any]) -> str | list[Any]:
    """One text part becomes a plain string (every OpenAI-compatible server reads that)."""
    if len(parts) == 1 and _all_text(parts):
        return str(parts[0]["text"])
    if not parts:
        return ""
    return parts


def _all_text(parts: list[Any]) -> bool:
    return all(isinstance(p, Mapping) and p.get("type") == "text" for p in parts)


def _joined_text(parts: list[Any]) -> str:
    return "".join(str(p["text"]) for p in parts)


def _to_openai_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": json.dumps(call.get("arguments") or {})},
    }


def to_openai_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Neutral ``{"name", "description"?, "parameters"}`` tools as OpenAI function tools."""
    out = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out


def to_openai_tool_choice(choice: Any) -> Any:
    """``"auto" | "none" | "required"`` pass; ``{"name": n}`` becomes a forced function call."""
    if isinstance(choice, Mapping) and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _response_format(value: Any) -> Any:
    """A bare JSON schema (``output_schema=``) is wrapped as OpenAI's ``json_schema`` format."""
    if isinstance(value, Mapping) and value.get("type") not in _RESPONSE_FORMAT_TYPES:
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(value.get("title") or "response"))[:64]
        schema = {"name": name, "schema": dict(value)}
        return {"type": "json_schema", "json_schema": schema}
    return value


# -- answers ----------------------------------------------------------------------------------


def response_from_completion(completion: ChatCompletion) -> ModelResponse:
    """The neutral answer of a non-streamed completion (its first choice)."""
    if not completion.choices:
        return ModelResponse(text="", usage=_usage(completion.usage))
    choice = completion.choices[0]
    message = choice.message
    calls = tuple(_tool_calls(message.tool_calls or ()))
    return ModelResponse(
        text=message.content or "",
        tool_calls=calls,
        finish_reason=normalize_finish_reason(choice.finish_reason, bool(calls)),
        usage=_usage(completion.usage),
    )


def _tool_calls(calls: Iterable[ChatCompletionMessageToolCallUnion]) -> Iterator[ToolCall]:
    """Function calls as neutral ``ToolCall``s (Spark offers no custom, free-text tools)."""
    for call in calls:
        if call.type == "function":
            function = call.function
            yield ToolCall(call.id, function.name, parse_arguments(function.arguments))


def normalize_finish_reason(reason: str | None, called_tools: bool) -> str:
    """``stop`` / ``length`` / ``tool_calls`` / ``content_filter`` (``tool_calls`` wins)."""
    if called_tools:
        return "tool_calls"
    return _FINISH_REASONS.get(reason or "stop", reason or "stop")


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """Tool call arguments as a dict; text that is not a JSON object is kept under ``_raw``."""
    if not raw or not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return parsed if isinstance(parsed, dict) else {"_raw": raw}


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    return Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Collects a streamed completion: text deltas, tool call deltas (by index), finish, usage."""

    chunks: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    _calls: dict[int, _PartialCall] = field(default_factory=dict)

    def feed(self, chunk: ChatCompletionChunk) -> str | None:
        """Take one chunk; return its new text (None when it carries none)."""
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        text: str | None = None
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # ``n > 1``: like a plain call, the first choice is the answer
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
            delta = choice.delta
            for call in delta.tool_calls or ():
                self._feed_call(call.index, call.id, call.function)
            if delta.content:
                text = delta.content
                self.chunks.append(text)
        return text

    def _feed_call(self, index: int, call_id: str | None, function: Any) -> None:
        partial = self._calls.setdefault(index, _PartialCall())
        partial.id = call_id or partial.id
        if function is not None:
            partial.name = function.name or partial.name
            if function.arguments:
                partial.arguments.append(function.arguments)

    @property
    def finished(self) -> bool:
        """Whether the stream said how it ended (a stream cut short never does)."""
        return self.finish_reason is not None

    def result(self) -> ModelResponse:
        """The assembled answer: joined text, tool calls in index order, finish reason, usage."""
        calls = tuple(
            ToolCall(p.id, p.name, parse_arguments("".join(p.arguments)))
            for _, p in sorted(self._calls.items())
        )
        return ModelResponse(
            text="".join(self.chunks),
            tool_calls=calls,
            finish_reason=normalize_finish_reason(self.finish_reason, bool(calls)),
            usage=self.usage,
        )


def embedding_response(response: CreateEmbeddingResponse) -> EmbeddingResponse:
    """Vectors in input order as plain Python floats, with the prompt token count."""
    ordered = sorted(response.data, key=lambda item: item.index)
    vectors = [[float(x) for x in item.embedding] for item in ordered]
    tokens = response.usage.prompt_tokens if response.usage is not None else 0
    return EmbeddingResponse(embeddings=vectors, usage=Usage(input_tokens=int(tokens or 0)))
