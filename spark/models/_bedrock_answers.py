"""Bedrock's answers as Spark's neutral values: Converse responses, ConverseStream events and
InvokeModel embeddings (Titan, Cohere).

Pure code: dicts in, neutral values out, so every rule is testable without boto3.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from spark.errors import ProviderServerError
from spark.models._answer_checks import MalformedAnswerError, error_note, provider_counts
from spark.types import Choice, EmbeddingResponse, ModelResponse, ToolCall, Usage

__all__ = [
    "StreamAssembler",
    "embedding_response",
    "finish_reason",
    "parse_converse",
]

_PROVIDER = "bedrock"
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# The content blocks Spark reads into fields of its own; any other is ``provider_output``.
_READ_BLOCKS = ("text", "reasoningContent", "citationsContent")  # (and a client toolUse)
_SERVER_TOOL = "server_tool_use"  # a ``toolUse`` the provider ran itself
# The vector type Spark returns when an embeddings call asks for several.
_VECTOR_TYPES = ("float", "int8", "uint8", "binary", "ubinary")


def finish_reason(stop_reason: str | None) -> str:
    """Bedrock's ``stopReason`` in the neutral words ("stop", "length", "tool_calls", ...)."""
    if stop_reason is None:
        return "stop"
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def _usage(usage: Mapping[str, Any] | None) -> Usage:
    """Bedrock's ``inputTokens`` leaves out the tokens read from or written to the prompt
    cache: Spark's ``input_tokens`` counts them all (docs/costs.md)."""
    names = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
    given = usage if isinstance(usage, Mapping) else {}
    counts = provider_counts(_PROVIDER, {name: given.get(name) for name in names})
    read, write = counts["cacheReadInputTokens"], counts["cacheWriteInputTokens"]
    return Usage(
        input_tokens=counts["inputTokens"] + read + write,
        output_tokens=counts["outputTokens"],
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def parse_converse(response: Mapping[str, Any]) -> ModelResponse:
    """A ``converse`` answer as a neutral ``ModelResponse`` (cost is the base class's job)."""
    blocks = _content_blocks(response)
    cited = [block["citationsContent"] for block in blocks if "citationsContent" in block]
    text = "".join(_block_text(block) for block in blocks)
    calls = tuple(
        ToolCall(use["toolUseId"], use["name"], _arguments(use.get("input")))
        for use in (block["toolUse"] for block in blocks if _client_call(block))
    )
    reasoning = [_plain(b["reasoningContent"]) for b in blocks if "reasoningContent" in b]
    other = [_plain(b) for b in blocks if not _read(b)]
    asked = response.get("additionalModelResponseFields")
    if asked is not None:
        other.append({"additionalModelResponseFields": _plain(asked)})
    return ModelResponse(
        text=text,
        tool_calls=calls,
        finish_reason=finish_reason(response.get("stopReason")),
        usage=_usage(response.get("usage")),
        citations=cited or None,
        reasoning=[{"reasoningContent": block} for block in reasoning] or None,
        provider_output=other or None,
    )


def _content_blocks(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The content blocks of a ``converse`` answer's message; an answer without that message,
    or with blocks that are not objects, is malformed."""
    message = (response.get("output") or {}).get("message")
    if not isinstance(message, Mapping):  # e.g. HTTP 200 with an error body
        raise MalformedAnswerError(f"it has no output message{error_note(response.get('message'))}")
    blocks = message.get("content") or []
    if not isinstance(blocks, list) or not all(isinstance(b, Mapping) for b in blocks):
        raise MalformedAnswerError("its message content is not a list of content blocks")
    return blocks


def _plain(value: Any) -> Any:
    """A value of a Converse answer as JSON: bytes (an image's, redacted reasoning) as base64
    text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(name): _plain(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _read(block: Mapping[str, Any]) -> bool:
    """Whether Spark reads a block into a field of its own (text, a call for the caller,
    reasoning, citations); any other block is ``provider_output``."""
    if "toolUse" in block:
        return _client_call(block)
    return any(name in block for name in _READ_BLOCKS)


def _client_call(block: Mapping[str, Any]) -> bool:
    """Whether a block is a call for the caller to run: a ``toolUse`` that is not the
    provider's own (``type: server_tool_use``, which it ran: its result follows)."""
    use = block.get("toolUse")
    return isinstance(use, Mapping) and use.get("type") != _SERVER_TOOL


def _arguments(given: Any) -> dict[str, Any]:
    """A call's input as arguments: an object as it is; any other JSON (a list, a string) as
    its JSON text under ``_raw`` (as OpenAI's arguments are)."""
    if isinstance(given, Mapping):
        return dict(given)
    return {} if given is None else {"_raw": json.dumps(given)}


def _block_text(block: Mapping[str, Any]) -> str:
    """The answer text of a content block: a text block's, or a cited passage's
    (``citationsContent``, what a document with citations enabled is answered with)."""
    if "text" in block:
        text = block["text"]
        if type(text) is not str:  # (not made text: an answer is checked, never converted)
            raise MalformedAnswerError(
                f"a text block's text is not a string ({type(text).__name__})"
            )
        return text
    cited = block.get("citationsContent")
    if isinstance(cited, Mapping):
        return "".join(str(part.get("text", "")) for part in cited.get("content") or ())
    return ""


class StreamAssembler:
    """Collects ``converse_stream`` events: ``add`` returns each text delta, ``response``
    the assembled answer (text, tool calls from their JSON input pieces, stop reason, usage)."""

    def __init__(self, model_id: str) -> None:
        self._model_id = model_id
        self._text: list[str] = []
        self._tools: dict[int, dict[str, Any]] = {}
        self._reasoning: dict[int, dict[str, Any]] = {}  # by block: text pieces, signature
        self._blocks: dict[int, list[str]] = {}  # text pieces by block (for cited passages)
        self._cited: dict[int, list[Any]] = {}  # the citations of a block's text
        self._stop_reason: str | None = None
        self._asked: Any = None  # ``additionalModelResponseFields`` (in ``messageStop``)
        self._usage = Usage()

    def add(self, event: Mapping[str, Any]) -> str:
        """Take one event; return its text delta ("" when it carries none)."""
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use is not None:
                index = int(start.get("contentBlockIndex", 0))
                tool = {"id": use["toolUseId"], "name": use["name"], "input": []}
                if use.get("type") == _SERVER_TOOL:
                    tool["type"] = _SERVER_TOOL
                self._tools[index] = tool
        elif "contentBlockDelta" in event:
            return self._delta(event["contentBlockDelta"])
        elif "messageStop" in event:
            self._stop_reason = event["messageStop"].get("stopReason")
            self._asked = event["messageStop"].get("additionalModelResponseFields")
        elif "metadata" in event:
            self._usage = _usage(event["metadata"].get("usage"))
        return ""

    def _delta(self, block: Mapping[str, Any]) -> str:
        delta = block.get("delta", {})
        index = int(block.get("contentBlockIndex", 0))
        if "text" in delta:
            text = delta["text"]
            if type(text) is not str:
                raise MalformedAnswerError(f"a text delta is not a string ({type(text).__name__})")
            self._text.append(text)
            self._blocks.setdefault(index, []).append(text)
            return text
        if "citation" in delta:
            self._cited.setdefault(index, []).append(delta["citation"])
        if "reasoningContent" in delta:
            self._reason(index, delta["reasoningContent"])
        if "toolUse" in delta:
            tool = self._tools.get(index)
            if tool is None:
                raise self._broken("a tool input delta arrived before its toolUse start")
            tool["input"].append(delta["toolUse"].get("input", ""))
        return ""

    def _reason(self, index: int, delta: Mapping[str, Any]) -> None:
        """One reasoning delta: a piece of its text, its signature, or redacted bytes."""
        block = self._reasoning.setdefault(index, {"text": []})
        if "text" in delta:
            block["text"].append(str(delta["text"]))
        for name in ("signature", "redactedContent"):
            if name in delta:
                block[name] = delta[name]

    def response(self) -> ModelResponse:
        """The assembled answer; a stream that ended before ``messageStop`` is broken."""
        if self._stop_reason is None:
            raise self._broken("the stream ended before its messageStop event")
        calls = [(tool, self._tool_call(tool)) for _, tool in sorted(self._tools.items())]
        other = [_server_block(call) for tool, call in calls if "type" in tool]
        if self._asked is not None:
            other.append({"additionalModelResponseFields": _plain(self._asked)})
        return ModelResponse(
            text="".join(self._text),
            tool_calls=tuple(call for tool, call in calls if "type" not in tool),
            finish_reason=finish_reason(self._stop_reason),
            usage=self._usage,
            citations=[self._cited_block(i) for i in sorted(self._cited)] or None,
            provider_output=other or None,
            reasoning=[_streamed_block(self._reasoning[i]) for i in sorted(self._reasoning)]
            or None,
        )

    def _cited_block(self, index: int) -> dict[str, Any]:
        """A streamed text block with citations in the shape ``converse`` returns it."""
        text = "".join(self._blocks.get(index, ()))
        return {"content": [{"text": text}], "citations": self._cited[index]}

    def _tool_call(self, tool: Mapping[str, Any]) -> ToolCall:
        """A streamed call; input cut short by the stop (``max_tokens``) is kept as text under
        ``_raw`` (as OpenAI's is); input that is not JSON in a finished call is a broken
        stream."""
        raw = "".join(tool["input"])
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            if self._stop_reason != "tool_use":
                return ToolCall(tool["id"], tool["name"], {"_raw": raw})
            raise self._broken(f"tool {tool['name']!r} input is not JSON: {raw!r}") from exc
        return ToolCall(tool["id"], tool["name"], _arguments(arguments))

    def _broken(self, why: str) -> ProviderServerError:
        return ProviderServerError(
            f"bedrock model {self._model_id!r}: broken stream: {why}", provider=_PROVIDER
        )


def _server_block(call: ToolCall) -> dict[str, Any]:
    """A streamed call the provider ran itself, in the shape ``converse`` returns it."""
    use = {"toolUseId": call.id, "name": call.name, "input": dict(call.arguments)}
    return {"toolUse": {**use, "type": _SERVER_TOOL}}


def _streamed_block(block: Mapping[str, Any]) -> dict[str, Any]:
    """A streamed reasoning block in the shape ``converse`` returns it."""
    if "redactedContent" in block:
        return {"reasoningContent": _plain({"redactedContent": block["redactedContent"]})}
    text: dict[str, Any] = {"text": "".join(block["text"])}
    if "signature" in block:
        text["signature"] = block["signature"]
    return {"reasoningContent": {"reasoningText": text}}


def embedding_response(
    answers: Sequence[tuple[Mapping[str, Any], int | str | None]], kind: str | None = None
) -> EmbeddingResponse:
    """The vectors of InvokeModel answers, in order: Titan's ``embedding`` (or its
    ``embeddingsByType``), Cohere's ``embeddings`` (a list, or a map by type). ``kind``: the
    first type the request asked for (Titan's ``embeddingTypes``, Cohere's
    ``embedding_types``): its vectors, not Titan's float ``embedding`` that comes with them.

    Each answer comes with the input token count Bedrock reported in its response header (its
    text); a Titan body's own ``inputTextTokenCount`` wins.
    """
    vectors: list[list[float]] = []
    tokens = 0
    for answer, counted in answers:
        if not isinstance(answer, Mapping):
            raise MalformedAnswerError(
                f"an embeddings answer is a {type(answer).__name__}, not an object"
            )
        vectors += _vectors(answer, kind)
        header = int(counted) if isinstance(counted, str) and counted.isdecimal() else counted
        given = answer.get("inputTextTokenCount", header)
        tokens += provider_counts(_PROVIDER, {"inputTextTokenCount": given})["inputTextTokenCount"]
    return EmbeddingResponse(vectors, Usage(input_tokens=tokens))


def _vectors(answer: Mapping[str, Any], asked: str | None) -> list[list[float]]:
    by_type = answer.get("embeddingsByType", answer.get("embeddings"))
    if "embedding" in answer and not (isinstance(by_type, Mapping) and asked in by_type):
        return [[float(x) for x in answer["embedding"]]]
    found: Any = by_type
    if isinstance(found, Mapping):
        kind = asked if asked in found else next((k for k in _VECTOR_TYPES if k in found), None)
        found = found.get(kind) if kind else None
        if found and not isinstance(found[0], list):  # Titan's by-type map holds one vector
            found = [found]
    if not isinstance(found, list):
        raise ProviderServerError(
            f"bedrock embeddings answer holds no vectors (fields: {sorted(answer)})",
            provider=_PROVIDER,
        )
    return [[float(x) for x in vector] for vector in found]


def unwrap_structured(response: ModelResponse, tool_name: str) -> ModelResponse:
    """A forced call of ``tool_name`` (structured output through a tool, docs/models.md) as
    what it stands for: a text answer holding its input as JSON. The answer's other tool calls
    (of the caller's own tools) stay, and so do its reasoning, citations and other output; a
    cut-off or filtered answer keeps its finish reason."""
    call = next((c for c in response.tool_calls if c.name == tool_name), None)
    if call is None:
        return response
    others = tuple(c for c in response.tool_calls if c.name != tool_name)
    reason = response.finish_reason
    if reason == "tool_calls" and not others:
        reason = "stop"
    choice = Choice(
        json.dumps(call.arguments),
        others,
        reason,
        citations=response.citations,
        reasoning=response.reasoning,
        provider_output=response.provider_output,
    )
    return ModelResponse.of_choices((choice,), response.usage, response.response_model)
