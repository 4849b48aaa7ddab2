"""Reading Responses API answers (a ``Response``, or its stream of events) into Spark's neutral
``ModelResponse``: the text, function calls as ``ToolCall``, finish reason, usage with cached
and reasoning tokens, the reasoning items, and the other items as they are (built-in tools'
``web_search_call``, ...) (docs/models.md, "Responses API").

SDK answers are read by attribute; the SDK is imported for types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spark.errors import ProviderServerError, RateLimitError
from spark.models._answer_checks import MalformedAnswerError, error_note, provider_counts
from spark.models._openai_answers import parse_arguments
from spark.types import Choice, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    from openai.types.responses import Response, ResponseStreamEvent
    from openai.types.responses.response_usage import ResponseUsage

__all__ = ["ResponsesStreamAssembler", "response_from_responses"]

PROVIDER = "openai"
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def response_from_responses(response: Response) -> ModelResponse:
    """The neutral answer of a ``Response``: its output text, function calls, finish, usage."""
    texts: list[str] = []
    refusals: list[str] = []
    notes: list[Any] = []
    calls: list[ToolCall] = []
    logprobs: list[Any] = []
    reasoning: list[Any] = []
    other: list[Any] = []  # built-in tool items (web_search_call, ...), as JSON
    if not isinstance(response.output, list):  # e.g. HTTP 200 with an error body
        raise MalformedAnswerError(f"it has no output{_error_of(response)}")
    for item in response.output:
        if item.type == "message":
            for part in item.content:
                if part.type == "output_text":
                    if type(part.text) is not str:  # (checked, never made text)
                        kind = type(part.text).__name__
                        raise MalformedAnswerError(f"an output_text is not a string ({kind})")
                    at = sum(map(len, texts))  # where this part starts in the joined text
                    texts.append(part.text)
                    logprobs.extend(p.model_dump(mode="json") for p in part.logprobs or ())
                    notes.extend(
                        _shifted(a.model_dump(mode="json"), at) for a in part.annotations or ()
                    )
                elif part.type == "refusal":
                    refusals.append(part.refusal)
        elif item.type == "function_call":
            calls.append(ToolCall(item.call_id, item.name, parse_arguments(item.arguments)))
        elif item.type == "custom_tool_call":
            calls.append(ToolCall(item.call_id, item.name, {"input": item.input}))
        elif item.type == "reasoning":  # an input item as it is, to send back in a tool loop
            reasoning.append(item.model_dump(mode="json", exclude_none=True))
        else:
            other.append(item.model_dump(mode="json", exclude_none=True))
    choice = Choice(
        "".join(texts),
        tuple(calls),
        _finish_reason(response, bool(calls)),
        logprobs or None,
        "".join(refusals) if refusals else None,
        notes or None,
        reasoning or None,
        other or None,
    )
    return ModelResponse.of_choices((choice,), usage_of(response.usage), response.model or None)


def _error_of(response: Response) -> str:
    return error_note(response.error or (response.model_extra or {}).get("error"))


def _shifted(note: dict[str, Any], at: int) -> dict[str, Any]:
    """An annotation of a text part whose offsets count from ``at`` in the answer's text (the
    parts' texts joined): ``text[start_index:end_index]`` is the cited span."""
    for name in ("start_index", "end_index", "index"):
        if at and isinstance(note.get(name), int):
            note[name] += at
    return note


def _finish_reason(response: Response, called_tools: bool) -> str:
    """``length`` / ``content_filter`` for an incomplete response (its calls may be cut off),
    else ``tool_calls`` when it called tools, else ``stop``."""
    details = response.incomplete_details
    if response.status == "incomplete" and details is not None and details.reason:
        return _INCOMPLETE.get(details.reason, details.reason)
    return "tool_calls" if called_tools else "stop"


def usage_of(usage: ResponseUsage | None) -> Usage:
    """Token counts: ``input_tokens`` includes the cached ones, ``output_tokens`` the
    reasoning ones, as on the API."""
    if usage is None:
        return Usage()
    given = usage.input_tokens_details
    made = usage.output_tokens_details
    counts = provider_counts(
        PROVIDER,
        {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_tokens": getattr(given, "cached_tokens", None),
            "cache_write_tokens": getattr(given, "cache_write_tokens", None),
            "reasoning_tokens": getattr(made, "reasoning_tokens", None),
        },
    )
    return Usage(
        input_tokens=counts["input_tokens"],
        output_tokens=counts["output_tokens"],
        cache_read_tokens=counts["cached_tokens"],
        cache_write_tokens=counts["cache_write_tokens"],
        reasoning_tokens=counts["reasoning_tokens"],
    )


@dataclass
class ResponsesStreamAssembler:
    """Collects a streamed response: the text deltas as they come, then the final response of
    ``response.completed`` (or ``response.incomplete``)."""

    model_id: str
    chunks: list[str] = field(default_factory=list)
    final: ModelResponse | None = None

    def feed(self, event: ResponseStreamEvent) -> str | None:
        """Take one event; return its new answer text (None when it carries none).

        ``error`` and ``response.failed`` events raise the Spark error of the failure.
        """
        data: Any = event  # read by its ``type`` (a union of 60 event classes)
        kind = data.type
        if kind == "response.output_text.delta":
            delta = data.delta
            if type(delta) is not str:  # (not made text: an answer is checked, never converted)
                raise MalformedAnswerError(f"a text delta is not a string ({type(delta).__name__})")
            if delta:
                self.chunks.append(delta)
                return delta
        elif kind in {"response.completed", "response.incomplete"}:
            self.final = response_from_responses(data.response)
        elif kind == "error":
            self._fail(data.code, data.message)
        elif kind == "response.failed":
            error = data.response.error
            self._fail(error.code if error else None, error.message if error else "failed")
        return None

    def _fail(self, code: str | None, message: str) -> None:
        cls = RateLimitError if code == "rate_limit_exceeded" else ProviderServerError
        text = f"OpenAI model {self.model_id!r}: the stream broke off: {message}"
        raise cls(text, provider=PROVIDER)

    @property
    def finished(self) -> bool:
        """Whether the response said how it ended (a stream cut short never does)."""
        return self.final is not None

    def result(self) -> ModelResponse:
        """The final response (the streamed text when the final event carried no output)."""
        final = self.final or ModelResponse(text="".join(self.chunks))
        if final.text or not self.chunks or final.tool_calls:
            return final
        streamed = Choice(
            "".join(self.chunks),
            (),
            final.finish_reason,
            final.logprobs,
            final.refusal,
            final.citations,
            final.reasoning,
            final.provider_output,
        )
        return ModelResponse.of_choices((streamed,), final.usage, final.response_model)
