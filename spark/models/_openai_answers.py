"""Reading OpenAI's answers: completions (every choice, logprobs), streamed chunks assembled by
choice index, and embeddings, into Spark's neutral responses (docs/models.md, "OpenAI").

SDK answers are read by attribute; the SDK is imported for types only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spark.models._answer_checks import MalformedAnswerError, error_note, provider_counts
from spark.types import Choice, EmbeddingResponse, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessageToolCallUnion,
    )
    from openai.types.chat.chat_completion import Choice as SdkChoice
    from openai.types.chat.chat_completion_chunk import Choice as SdkChunkChoice
    from openai.types.completion_usage import CompletionUsage

__all__ = [
    "StreamAssembler",
    "embedding_response",
    "normalize_finish_reason",
    "parse_arguments",
    "response_from_completion",
]

_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def response_from_completion(completion: ChatCompletion) -> ModelResponse:
    """The neutral answer of a non-streamed completion: every choice, in index order."""
    if not isinstance(completion.choices, list):  # e.g. HTTP 200 with an error body
        raise MalformedAnswerError(f"it has no choices{_error_in(completion)}")
    ordered = sorted(completion.choices, key=lambda choice: choice.index)
    choices = tuple(map(_choice, ordered))
    return ModelResponse.of_choices(choices, _usage(completion.usage), completion.model or None)


def _error_in(answer: Any) -> str:
    return error_note((getattr(answer, "model_extra", None) or {}).get("error"))


def _choice(choice: SdkChoice) -> Choice:
    message = choice.message
    if message is None:
        raise MalformedAnswerError(f"choice {choice.index} has no message")
    calls = tuple(_tool_calls(message.tool_calls or ()))
    legacy = message.function_call  # the answer to ``functions=`` (no id on this API)
    if not calls and legacy is not None:
        calls = (ToolCall("", legacy.name, parse_arguments(legacy.arguments)),)
    logprobs = choice.logprobs.model_dump(mode="json") if choice.logprobs is not None else None
    reason = normalize_finish_reason(choice.finish_reason, bool(calls))
    notes = [a.model_dump(mode="json") for a in message.annotations or ()] or None
    spoken = message.audio  # the answer as audio (``modalities=["text", "audio"]``)
    other = [{"audio": spoken.model_dump(mode="json", exclude_none=True)}] if spoken else None
    return Choice(
        message.content or "",
        calls,
        reason,
        logprobs,
        message.refusal,
        notes,
        provider_output=other,
    )


def _tool_calls(calls: Iterable[ChatCompletionMessageToolCallUnion]) -> Iterator[ToolCall]:
    """Function calls with parsed arguments; a custom tool's free text under ``input``."""
    for call in calls:
        if call.type == "function":
            yield ToolCall(call.id, call.function.name, parse_arguments(call.function.arguments))
        else:
            yield ToolCall(call.id, call.custom.name, {"input": call.custom.input})


def normalize_finish_reason(reason: str | None, called_tools: bool) -> str:
    """``stop`` / ``length`` / ``tool_calls`` / ``content_filter``. An answer with tool calls
    that stopped normally is ``tool_calls`` (some servers say ``stop``); one cut off
    (``length``) or filtered keeps that reason: its calls may be incomplete."""
    normal = _FINISH_REASONS.get(reason or "stop", reason or "stop")
    if called_tools and normal in ("stop", "tool_calls"):
        return "tool_calls"
    return normal


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
    """OpenAI's counts as they are: ``prompt_tokens`` includes the cached tokens (read from
    the prompt cache, and written to it) and ``completion_tokens`` the reasoning tokens
    (docs/costs.md)."""
    if usage is None:
        return Usage()
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    counts = provider_counts(
        "openai",
        {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": getattr(prompt, "cached_tokens", None),
            "cache_write_tokens": getattr(prompt, "cache_write_tokens", None),
            "reasoning_tokens": getattr(completion, "reasoning_tokens", None),
        },
    )
    return Usage(
        input_tokens=counts["prompt_tokens"],
        output_tokens=counts["completion_tokens"],
        cache_read_tokens=counts["cached_tokens"],
        cache_write_tokens=counts["cache_write_tokens"],
        reasoning_tokens=counts["reasoning_tokens"],
    )


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _PartialChoice:
    """One choice of a streamed completion, as its deltas arrive."""

    chunks: list[str] = field(default_factory=list)
    refusal: list[str] | None = None  # the refusal's deltas, when the model refused
    annotations: list[Any] = field(default_factory=list)  # (the SDK does not model them)
    finish_reason: str | None = None
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    logprobs: dict[str, list[Any] | None] | None = None
    audio: dict[str, Any] | None = None  # id and expiry; data and transcript pieces

    def feed(self, choice: SdkChunkChoice) -> str:
        """Take this choice's delta of one chunk; return its new text."""
        if choice.delta is None:
            raise MalformedAnswerError(f"streamed choice {choice.index} has no delta")
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
        if choice.logprobs is not None:
            self._feed_logprobs(choice.logprobs.model_dump(mode="json"))
        for call in choice.delta.tool_calls or ():
            partial = self.calls.setdefault(call.index, _PartialCall())
            partial.id = call.id or partial.id
            if call.function is not None:
                partial.name = call.function.name or partial.name
                if call.function.arguments:
                    partial.arguments.append(call.function.arguments)
        legacy = choice.delta.function_call  # the answer to ``functions=``: one call, no id
        if legacy is not None:
            partial = self.calls.setdefault(0, _PartialCall())
            partial.name = legacy.name or partial.name
            if legacy.arguments:
                partial.arguments.append(legacy.arguments)
        extra = choice.delta.model_extra or {}
        if isinstance(extra.get("annotations"), list):
            self.annotations.extend(extra["annotations"])
        if choice.delta.refusal is not None:
            self.refusal = [*(self.refusal or []), choice.delta.refusal]
        if choice.delta.audio is not None:
            self._feed_audio(choice.delta.audio.model_dump(exclude_none=True))
        text = choice.delta.content or ""
        if text:
            self.chunks.append(text)
        return text

    def _feed_audio(self, delta: dict[str, Any]) -> None:
        """A piece of the answer's audio: its id, expiry, or pieces of its data and transcript."""
        audio = self.audio = self.audio or {"data": [], "transcript": []}
        for name, value in delta.items():
            if name in ("data", "transcript"):
                audio[name].append(str(value))
            else:
                audio[name] = value

    def _audio(self) -> list[dict[str, Any]] | None:
        """The streamed audio in the shape a plain call's ``message.audio`` has."""
        if self.audio is None:
            return None
        audio = dict(self.audio)
        audio["data"], audio["transcript"] = "".join(audio["data"]), "".join(audio["transcript"])
        return [{"audio": audio}]

    def _feed_logprobs(self, dumped: dict[str, Any]) -> None:
        """Concatenate token lists, so the result has the shape of a plain call's logprobs."""
        merged = self.logprobs if self.logprobs is not None else {}
        for name, tokens in dumped.items():
            if tokens is None:
                merged.setdefault(name, None)
            else:
                merged[name] = [*(merged.get(name) or []), *tokens]
        self.logprobs = merged

    def result(self) -> Choice:
        calls = tuple(
            ToolCall(p.id, p.name, parse_arguments("".join(p.arguments)))
            for _, p in sorted(self.calls.items())
        )
        reason = normalize_finish_reason(self.finish_reason, bool(calls))
        refusal = None if self.refusal is None else "".join(self.refusal)
        notes = self.annotations or None
        return Choice(
            "".join(self.chunks),
            calls,
            reason,
            self.logprobs,
            refusal,
            notes,
            provider_output=self._audio(),
        )


@dataclass
class StreamAssembler:
    """Collects a streamed completion, every choice kept apart by index, and its usage."""

    usage: Usage = field(default_factory=Usage)
    model: str | None = None  # the model that answered, as each chunk names it
    _choices: dict[int, _PartialChoice] = field(default_factory=dict)

    def feed(self, chunk: ChatCompletionChunk) -> str | None:
        """Take one chunk; return the first choice's new text (None when it carries none)."""
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        self.model = chunk.model or self.model
        text: str | None = None
        for choice in chunk.choices or ():  # (a chunk of usage alone may leave them out)
            new = self._choices.setdefault(choice.index, _PartialChoice()).feed(choice)
            if choice.index == 0 and new:
                text = new
        return text

    @property
    def finished(self) -> bool:
        """Whether every choice said how it ended (a stream cut short never does)."""
        choices = self._choices.values()
        return bool(choices) and all(choice.finish_reason is not None for choice in choices)

    def result(self) -> ModelResponse:
        """The assembled answer: every choice in index order, usage."""
        choices = tuple(partial.result() for _, partial in sorted(self._choices.items()))
        return ModelResponse.of_choices(choices, self.usage, self.model)


def embedding_response(response: CreateEmbeddingResponse) -> EmbeddingResponse:
    """Vectors in input order as plain Python floats, with the prompt token count."""
    if not isinstance(response.data, list):
        raise MalformedAnswerError(f"it has no embeddings (data){_error_in(response)}")
    ordered = sorted(response.data, key=lambda item: item.index)
    vectors = [[float(x) for x in item.embedding] for item in ordered]
    tokens = response.usage.prompt_tokens if response.usage is not None else None
    counted = provider_counts("openai", {"prompt_tokens": tokens})["prompt_tokens"]
    return EmbeddingResponse(embeddings=vectors, usage=Usage(input_tokens=counted))
