"""Provider-neutral values: tool specs and calls, usage, and the responses models return.

A response is stored in the cache as a plain JSON dict (``to_dict``) and rebuilt on a hit
(``from_dict``); both directions are cheap because they are on the hit path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Choice",
    "EmbeddingResponse",
    "ModelResponse",
    "Price",
    "ToolCall",
    "ToolSpec",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per one million tokens for one model id; ``as_of`` is the date the price was read.

    ``cache_read_per_million`` and ``cache_write_per_million`` are the provider's prompt-cache
    rates; None bills those tokens at the full input rate (docs/costs.md).
    """

    input_per_million: float
    output_per_million: float
    as_of: str | None = None
    cache_read_per_million: float | None = None
    cache_write_per_million: float | None = None

    def cost(self, usage: Usage) -> float:
        """The cost in USD of a call with ``usage`` (its cached input at the cache rates)."""
        read, write = usage.cache_read_tokens, usage.cache_write_tokens
        uncached = max(usage.input_tokens - read - write, 0)
        read_rate = _rate(self.cache_read_per_million, self.input_per_million)
        write_rate = _rate(self.cache_write_per_million, self.input_per_million)
        return (
            uncached * self.input_per_million
            + read * read_rate
            + write * write_rate
            + usage.output_tokens * self.output_per_million
        ) / 1_000_000

    def cache_saving(self, usage: Usage) -> float:
        """What the cache-read tokens of ``usage`` would have cost more at the full input rate."""
        read_rate = _rate(self.cache_read_per_million, self.input_per_million)
        return max(self.input_per_million - read_rate, 0.0) * usage.cache_read_tokens / 1_000_000


def _rate(rate: float | None, fallback: float) -> float:
    return fallback if rate is None else rate


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The neutral dict form (what ``tools=[...]`` accepts)."""
        out: dict[str, Any] = {
            "name": self.name,
            "parameters": dict(self.parameters or {"type": "object", "properties": {}}),
        }
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for: the provider's call id, the tool name, parsed arguments.

    ``signature`` is the provider's opaque signature of the call, when it gives one (Gemini's
    ``thought_signature``, base64 text): sent back with the call, so the model keeps its
    reasoning across a tool loop; other providers never see it.
    """

    id: str
    name: str
    arguments: Mapping[str, Any]
    signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The neutral dict form (also how it is stored and sent back in messages)."""
        out = {"id": self.id, "name": self.name, "arguments": dict(self.arguments)}
        return _with_given(out, signature=self.signature)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, the same names and meaning for every provider.

    ``input_tokens`` is every prompt token, those the provider read from or wrote to its prompt
    cache included (``cache_read_tokens`` and ``cache_write_tokens`` are parts of it);
    ``output_tokens`` is every generated token, reasoning included (``reasoning_tokens`` is part
    of it). Each provider's fields are read into these meanings (docs/costs.md).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int]:
        """The stored form (a count that is 0 is left out, beyond input and output)."""
        out = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        for name, value in (
            ("cache_read_tokens", self.cache_read_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
            ("reasoning_tokens", self.reasoning_tokens),
        ):
            if value:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Usage:
        """Rebuild from the stored form (missing counts are 0: older entries have only input
        and output)."""
        if not data:
            return cls()
        get = data.get
        read, write, reasoning = (
            get("cache_read_tokens"),
            get("cache_write_tokens"),
            get("reasoning_tokens"),
        )
        return cls(
            int(get("input_tokens", 0)),
            int(get("output_tokens", 0)),
            int(read) if read else 0,  # (most entries have none: the hit path skips int())
            int(write) if write else 0,
            int(reasoning) if reasoning else 0,
        )


def _with_given(out: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """``out`` with the optional fields that are set (None ones stay out of the stored form)."""
    out.update((name, value) for name, value in optional.items() if value is not None)
    return out


def _calls_from(data: Any) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(c["id"], c["name"], c.get("arguments") or {}, c.get("signature"))
        for c in data or ()
    )


@dataclass(frozen=True, slots=True)
class Choice:
    """One of the answers of a call (``n`` / ``candidate_count`` > 1 asks for several).

    ``logprobs`` is the provider's log-probability report of this choice as plain JSON, in the
    provider's own shape; None when none was requested. ``refusal`` is the model's refusal to
    answer, when the provider reports one apart from the text (OpenAI); None otherwise.
    ``citations`` is the provider's report of the sources behind this choice, as plain JSON in
    its own shape (OpenAI's ``annotations``, Gemini's grounding and citation metadata, Bedrock's
    ``citationsContent`` blocks); None when it reports none. ``reasoning`` is the model's reasoning as the provider returns it, in
    its own shape, signatures included, to send back in a tool loop (Bedrock's
    ``reasoningContent`` blocks, Gemini's thought parts, the Responses API's ``reasoning``
    items); None when it returns none. ``provider_output`` is the rest of the answer, which
    Spark has no field for, as plain JSON in the provider's own shape (Gemini's code execution
    and media parts, the Responses API's built-in tool items such as ``web_search_call``); None
    when there is none.
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    logprobs: Any = None
    refusal: str | None = None
    citations: Any = None
    reasoning: Any = None
    provider_output: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        out: dict[str, Any] = {
            "text": self.text,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "finish_reason": self.finish_reason,
        }
        return _with_given(
            out,
            logprobs=self.logprobs,
            refusal=self.refusal,
            citations=self.citations,
            reasoning=self.reasoning,
            provider_output=self.provider_output,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        """Rebuild from the stored form."""
        return cls(
            text=data.get("text") or "",
            tool_calls=_calls_from(data.get("tool_calls")),
            finish_reason=data.get("finish_reason") or "stop",
            logprobs=data.get("logprobs"),
            refusal=data.get("refusal"),
            citations=data.get("citations"),
            reasoning=data.get("reasoning"),
            provider_output=data.get("provider_output"),
        )


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The answer of a text call.

    ``text``, ``tool_calls``, ``finish_reason`` and ``logprobs`` are those of the first choice;
    ``choices`` holds every choice the provider returned, in order (one unless ``n`` > 1).
    ``cost_usd`` is what the original provider call cost (None when the model has no price);
    ``provider_cache_saved_usd`` what the provider's prompt cache took off that cost (its
    cache-read tokens at the cached rate instead of the full input rate; None when unpriced);
    ``cached`` says whether this answer came from the cache (then it cost nothing now);
    ``refusal``, ``citations``, ``reasoning`` and ``provider_output`` are the first choice's
    (``Choice``).
    ``response_model`` is the model the provider says answered (OpenAI's dated snapshot such
    as ``gpt-4o-mini-2024-07-18``, Gemini's ``modelVersion``; None when it names none), while
    ``model_id`` is the one asked for.
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    usage: Usage = Usage()
    cost_usd: float | None = None
    cached: bool = False
    provider: str = ""
    model_id: str = ""
    logprobs: Any = None
    choices: tuple[Choice, ...] = ()
    provider_cache_saved_usd: float | None = None
    refusal: str | None = None
    citations: Any = None
    response_model: str | None = None
    reasoning: Any = None
    provider_output: Any = None

    def __post_init__(self) -> None:
        if not self.choices:
            first = Choice(
                self.text,
                self.tool_calls,
                self.finish_reason,
                self.logprobs,
                self.refusal,
                self.citations,
                self.reasoning,
                self.provider_output,
            )
            object.__setattr__(self, "choices", (first,))

    @classmethod
    def of_choices(
        cls,
        choices: tuple[Choice, ...],
        usage: Usage = Usage(),
        response_model: str | None = None,
    ) -> ModelResponse:
        """The response whose answers are ``choices`` (the first one's fields up front)."""
        first = choices[0] if choices else Choice("")
        return cls(
            text=first.text,
            tool_calls=first.tool_calls,
            finish_reason=first.finish_reason,
            usage=usage,
            logprobs=first.logprobs,
            choices=choices or (first,),
            refusal=first.refusal,
            citations=first.citations,
            response_model=response_model,
            reasoning=first.reasoning,
            provider_output=first.provider_output,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored form (without ``cached``, which belongs to one call)."""
        out: dict[str, Any] = {
            "text": self.text,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
        }
        if self.provider_cache_saved_usd:
            out["provider_cache_saved_usd"] = self.provider_cache_saved_usd
        _with_given(
            out,
            logprobs=self.logprobs,
            refusal=self.refusal,
            citations=self.citations,
            response_model=self.response_model,
            reasoning=self.reasoning,
            provider_output=self.provider_output,
        )
        if len(self.choices) > 1:
            out["choices"] = [choice.to_dict() for choice in self.choices]
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, cached: bool, provider: str = "", model_id: str = ""
    ) -> ModelResponse:
        """Rebuild a response from its stored form (a priced answer's prompt-cache saving is
        stored only when there was one: 0.0 when left out, None only for an unpriced one)."""
        stored = data.get("choices")
        cache_saved = data.get("provider_cache_saved_usd")
        if cache_saved is None and data.get("cost_usd") is not None:
            cache_saved = 0.0
        return cls(
            text=data.get("text") or "",
            tool_calls=_calls_from(data.get("tool_calls")),
            finish_reason=data.get("finish_reason") or "stop",
            usage=Usage.from_dict(data.get("usage")),
            cost_usd=data.get("cost_usd"),
            cached=cached,
            provider=provider,
            model_id=model_id,
            logprobs=data.get("logprobs"),
            choices=tuple(Choice.from_dict(c) for c in stored) if stored else (),
            provider_cache_saved_usd=cache_saved,
            refusal=data.get("refusal"),
            citations=data.get("citations"),
            response_model=data.get("response_model"),
            reasoning=data.get("reasoning"),
            provider_output=data.get("provider_output"),
        )


@dataclass(frozen=True, slots=True)
class EmbeddingResponse:
    """Vectors for a batch of texts, in input order."""

    embeddings: list[list[float]]
    usage: Usage = Usage()
    cost_usd: float | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "embeddings": self.embeddings,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, cached: bool) -> EmbeddingResponse:
        """Rebuild from the stored form."""
        return cls(
            embeddings=data["embeddings"],
            usage=Usage.from_dict(data.get("usage")),
            cost_usd=data.get("cost_usd"),
            cached=cached,
        )
