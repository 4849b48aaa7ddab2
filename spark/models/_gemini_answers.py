"""Reading Gemini's answers (docs/models.md, "Gemini"): every candidate of a response or a
stream, kept apart by index, tool calls, finish reasons, usage, logprobs when asked for; and
embedding vectors. Reads ``google.genai.types`` objects by attribute: no SDK import here."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from spark.errors import ProviderServerError
from spark.models._answer_checks import MalformedAnswerError, provider_counts
from spark.models._gemini_contents import synthetic_call_id
from spark.types import Choice, EmbeddingResponse, ModelResponse, ToolCall, Usage

__all__ = ["PROVIDER", "ResponseAssembler", "embedding_response", "finish_reason", "usage_of"]

PROVIDER = "gemini"

_FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
# Finish reasons that mean "a filter stopped the answer" (OpenAI's ``content_filter``).
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


# The candidate's reports of its sources (``Choice.citations``), by the SDK's names.
_CITATIONS = ("grounding_metadata", "citation_metadata", "url_context_metadata")


class _Candidate:
    """What the chunks of one candidate said so far."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[ToolCall] = []
        self.raw_finish: str | None = None
        self.logprobs: dict[str, Any] | None = None
        self.citations: dict[str, Any] = {}
        self.thoughts: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []  # code execution, media, ...: as JSON parts

    def feed(self, candidate: Any) -> list[str]:
        """Take in one candidate of a response or chunk; return its new answer text."""
        pieces: list[str] = []
        thoughts = 0  # of this response or chunk
        for part in getattr(getattr(candidate, "content", None), "parts", None) or []:
            call = getattr(part, "function_call", None)
            if call is not None:
                signed = getattr(part, "thought_signature", None)
                self.calls.append(_tool_call(call, len(self.calls), signed))
            elif getattr(part, "thought", None):
                self._think(part.model_dump(mode="json", exclude_none=True), thoughts == 0)
                thoughts += 1
            elif getattr(part, "text", None):
                pieces.append(part.text)
            elif getattr(part, "text", None) is None:
                self.other.append(part.model_dump(mode="json", exclude_none=True))
        raw = getattr(candidate, "finish_reason", None)
        if raw is not None:
            self.raw_finish = str(getattr(raw, "value", raw))
        result = getattr(candidate, "logprobs_result", None)
        if result is not None:
            self.logprobs = _merged_logprobs(
                self.logprobs, result.model_dump(mode="json", exclude_none=True)
            )
        for name in _CITATIONS:  # (a stream reports them in its last chunk)
            report = getattr(candidate, name, None)
            if report is not None:
                self.citations[name] = report.model_dump(mode="json", exclude_none=True)
        self.texts.extend(pieces)
        return pieces

    def _think(self, part: dict[str, Any], first: bool) -> None:
        """One thought part. A stream's pieces of one thought are one part: the first thought
        text of a chunk continues the previous chunk's last one while that has no signature;
        the parts of one response, and thoughts that are not text (an image), stay apart."""
        last = self.thoughts[-1] if self.thoughts else None
        open_text = last is not None and "thought_signature" not in last and _text_thought(last)
        if last is None or not (first and open_text and _text_thought(part)):
            self.thoughts.append(part)
            return
        last["text"] = last.get("text", "") + part.get("text", "")
        if "thought_signature" in part:
            last["thought_signature"] = part["thought_signature"]

    def choice(self, blocked: bool) -> Choice:
        """This candidate as one of the answer's choices."""
        reason = "content_filter" if blocked else finish_reason(self.raw_finish, self.calls)
        return Choice(
            "".join(self.texts),
            tuple(self.calls),
            reason,
            self.logprobs,
            None,
            self.citations or None,
            self.thoughts or None,
            self.other or None,
        )


def _text_thought(part: dict[str, Any]) -> bool:
    return set(part) <= {"text", "thought", "thought_signature"}


def _merged_logprobs(before: dict[str, Any] | None, chunk: dict[str, Any]) -> dict[str, Any]:
    """A stream reports the log-probabilities of each chunk's tokens: one report of them all."""
    if before is None:
        return chunk
    merged = dict(before)
    for name in ("top_candidates", "chosen_candidates"):
        if name in chunk:
            merged[name] = [*merged.get(name, []), *chunk[name]]
    if "log_probability_sum" in chunk:
        merged["log_probability_sum"] = (
            merged.get("log_probability_sum", 0.0) + chunk["log_probability_sum"]
        )
    return merged


class ResponseAssembler:
    """Reads ``GenerateContentResponse`` objects (one answer, or each chunk of a stream).

    Candidates (``candidate_count`` > 1) are kept apart by their ``index``; ``feed`` returns the
    new answer text of the first one; ``result`` assembles every candidate. Thought parts
    (``part.thought``) are reasoning, not answer: they are the choice's ``reasoning``, as JSON
    parts (signature as base64 text), never its text. Other parts (``executable_code``,
    ``code_execution_result``, ``inline_data``, ...) are its ``provider_output``, as JSON.
    """

    def __init__(self) -> None:
        self.candidates: dict[int, _Candidate] = {}
        self.blocked = False
        self.usage: Usage = Usage()
        self.model: str | None = None  # the answer's ``modelVersion``

    def feed(self, chunk: Any) -> list[str]:
        """Take in one response or stream chunk; return the first candidate's text pieces."""
        candidates = getattr(chunk, "candidates", None) or []
        pieces: list[str] = []
        for position, candidate in enumerate(candidates):
            index = getattr(candidate, "index", None)
            index = position if index is None else int(index)
            new = self.candidates.setdefault(index, _Candidate()).feed(candidate)
            if index == 0:
                pieces = new
        if not candidates and getattr(
            getattr(chunk, "prompt_feedback", None), "block_reason", None
        ):
            self.blocked = True
        self.model = getattr(chunk, "model_version", None) or self.model
        usage = getattr(chunk, "usage_metadata", None)
        if usage is not None:
            self.usage = usage_of(usage)
        return pieces

    @property
    def started(self) -> bool:
        """Whether any answer (text, a tool call, other output) has arrived."""
        return any(c.texts or c.calls or c.other for c in self.candidates.values())

    @property
    def finished(self) -> bool:
        """Whether the answer ended properly (each candidate finished, or the prompt blocked)."""
        if self.blocked:
            return True
        return bool(self.candidates) and all(
            c.raw_finish is not None for c in self.candidates.values()
        )

    def result(self) -> ModelResponse:
        """The assembled answer (cost and cache flags are the base class's business)."""
        if not self.candidates and not self.blocked:  # e.g. HTTP 200 with an error body
            raise MalformedAnswerError("it has no candidates, and no prompt feedback says why")
        candidates = [self.candidates[i] for i in sorted(self.candidates)] or [_Candidate()]
        choices = tuple(c.choice(self.blocked) for c in candidates)
        return ModelResponse.of_choices(choices, self.usage, self.model)


def _tool_call(call: Any, index: int, signature: bytes | None) -> ToolCall:
    """A ``function_call`` part as a call; its part's thought signature as base64 text."""
    name = str(call.name or "")
    call_id = getattr(call, "id", None) or synthetic_call_id(index, name)
    signed = base64.b64encode(signature).decode("ascii") if signature else None
    return ToolCall(str(call_id), name, dict(call.args or {}), signed)


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
    """Token counts from ``usage_metadata``: thinking tokens count as output (billed so) and
    are the reasoning tokens; ``prompt_token_count`` includes the cached content's tokens."""
    counts = provider_counts(PROVIDER, {name: getattr(usage, name, None) for name in _COUNTS})
    prompt = counts["prompt_token_count"] + counts["tool_use_prompt_token_count"]
    thoughts = counts["thoughts_token_count"]
    return Usage(
        input_tokens=prompt,
        output_tokens=counts["candidates_token_count"] + thoughts,
        cache_read_tokens=counts["cached_content_token_count"],
        reasoning_tokens=thoughts,
    )


_COUNTS = (
    "prompt_token_count",
    "tool_use_prompt_token_count",
    "thoughts_token_count",
    "candidates_token_count",
    "cached_content_token_count",
)


def embedding_response(response: Any, expected: int) -> EmbeddingResponse:
    """Vectors of an ``EmbedContentResponse``; input tokens only when Gemini reports them.

    The API-key endpoint reports no token counts for embeddings, so usage is then 0 (and the
    cost unknown): Spark never estimates a count it was not given. A batch must come back with
    one vector per text, or the answer is refused (it would be cached wrong forever).
    """
    vectors = [list(embedding.values or []) for embedding in response.embeddings or []]
    if len(vectors) != expected:
        raise ProviderServerError(
            f"Gemini returned {len(vectors)} embeddings for {expected} texts", provider=PROVIDER
        )
    usage = getattr(response, "usage_metadata", None)
    tokens = {"prompt_token_count": getattr(usage, "prompt_token_count", None)}
    counted = provider_counts(PROVIDER, tokens)["prompt_token_count"]
    return EmbeddingResponse(embeddings=vectors, usage=Usage(input_tokens=counted))
