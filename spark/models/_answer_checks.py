"""What a provider's answer must be before Spark returns or stores it (docs/models.md, "Errors").

An answer Spark's readers cannot read (HTTP 200 with an error body and no choices, a null
message, a list where an object belongs) is a ``ProviderServerError`` that names the provider
and the model and says what was wrong, raised in one place: ``malformed_answers``, around the
model layer's calls of a provider (answers, streams, embeddings). A token count the provider
reports that is no count (negative, not a whole number, past 2**63) is taken as 0 with one
warning (``provider_counts``): the answer itself is fine, and Spark never invents counts. An
answer read must have the shape the cache's reader requires of a stored one (``check_shape``:
text a string, ...), so what is returned and stored is what every later reader accepts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from spark.cache.shape import check_payload, valid_count
from spark.errors import ProviderServerError
from spark.types import ModelResponse

__all__ = [
    "MalformedAnswerError",
    "check_shape",
    "checked_stream",
    "error_note",
    "malformed_answers",
    "provider_counts",
]

logger = logging.getLogger("spark.models")


class MalformedAnswerError(Exception):
    """Raised by an answer reader: what the answer lacks or holds wrong. Never reaches a user:
    ``malformed_answers`` turns it into a ``ProviderServerError`` naming the model."""


# What reading an answer of the wrong structure raises (a None where an object belongs, a string
# where a list does). Spark's own errors are SparkErrors, none of these, and pass through; so do
# cancellation and the exceptions a caller throws into a stream (never raised inside ``with``).
# (Rejected: catching every Exception, which would call a bug in Spark a malformed answer.)
_READ_FAILURES = (
    MalformedAnswerError,
    TypeError,
    AttributeError,
    LookupError,
    ValueError,
    ArithmeticError,
)


@contextmanager
def malformed_answers(provider: str, model_id: str) -> Iterator[None]:
    """Turn a reader's failure on a malformed answer into a ``ProviderServerError`` (the
    reader's exception as ``__cause__``); nothing from such an answer is cached."""
    try:
        yield
    except _READ_FAILURES as exc:
        raise malformed_answer(provider, model_id, exc) from exc


def malformed_answer(provider: str, model_id: str, problem: Exception) -> ProviderServerError:
    """The error of a malformed answer of ``model_id``; ``problem`` says what was wrong."""
    what = str(problem) if isinstance(problem, MalformedAnswerError) else _unreadable(problem)
    message = f"{provider} model {model_id!r}: the provider's answer is malformed: {what}"
    return ProviderServerError(message, provider=provider)


def _unreadable(problem: Exception) -> str:
    return f"it cannot be read ({type(problem).__name__}: {problem})"


def check_shape(stored: dict[str, Any], kind: str = "chat") -> None:
    """Raise ``MalformedAnswerError`` unless ``stored`` (an answer in its stored form, of a
    ``kind`` request) has the shape the cache's reader requires (``check_payload``): an answer
    every later reader would refuse is neither returned nor stored."""
    problem = check_payload({"request": {"kind": kind}, "response": stored}, check_request=False)
    if problem is not None:
        raise MalformedAnswerError(problem)


def error_note(error: Any) -> str:
    """The error an answer carries instead of its content (some gateways answer so with HTTP
    200), as a note for the malformed-answer message; "" when it carries none."""
    if not error:
        return ""
    message = error.get("message") if isinstance(error, Mapping) else getattr(error, "message", "")
    return f"; it holds an error: {str(message or error)[:300]}"


async def checked_stream(
    provider: str, model_id: str, stream: AsyncIterator[str | ModelResponse]
) -> AsyncIterator[str | ModelResponse]:
    """``stream``'s pieces, each read under ``malformed_answers`` and checked: a text chunk must
    be text, the whole answer that ends it of the stored shape (``check_shape``). Only the reads
    are wrapped, never this generator's ``yield``: what a caller throws in is not the
    provider's fault."""
    pieces = aiter(stream)
    try:
        while True:
            with malformed_answers(provider, model_id):
                try:
                    piece = await anext(pieces)
                except StopAsyncIteration:
                    return
                _check_piece(piece)
            yield piece
    finally:
        close = getattr(pieces, "aclose", None)
        if close is not None:  # the caller stopped early: the provider's stream ends now
            await close()


def _check_piece(piece: object) -> None:
    if isinstance(piece, ModelResponse):
        check_shape(piece.to_dict())
    elif type(piece) is not str:
        raise MalformedAnswerError(
            f"a streamed text chunk is not a string ({type(piece).__name__})"
        )


def provider_counts(provider: str, given: Mapping[str, Any]) -> dict[str, int]:
    """The token counts of an answer by the provider's field names: a count the provider left
    out (or null) is 0; one that is no count is 0 too, with one warning naming every such field.
    """
    counts: dict[str, int] = {}
    invalid: list[str] = []
    for name, value in given.items():
        count = 0 if value is None else valid_count(value)
        if count is None:
            invalid.append(f"{name}={value!r:.40}")
        counts[name] = count or 0
    if invalid:
        logger.warning(
            "%s reported token counts that are not counts, taken as 0: %s",
            provider,
            ", ".join(invalid),
        )
    return counts
