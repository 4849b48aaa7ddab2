"""An answer is checked when it comes in with the rules the cache's reader applies to a stored
one (``spark.cache.shape.check_payload``): one with a text that is not a string (``"content":
42``) or another field of the wrong type is a malformed answer — a ``ProviderServerError`` —
never returned by ``get_text`` nor stored, plain or streamed (docs/models.md, "Errors").

Gemini is not here: google-genai itself refuses such an answer, which is a malformed answer
too (tests/models/test_malformed_answers.py); nor is a chat-completions stream, whose chunks of
non-text content cannot be joined into its answer, already a malformed answer there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spark.cache.manager import CacheManager
from spark.errors import ProviderServerError
from spark.testing import ProviderServer
from tests.models._answer_cases import CHAT, MODELS, QUESTION, RESPONSE, case_ids


def _chat(content: Any, finish: Any = "stop") -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {**CHAT, "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


def _responses(text: Any) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"type": "message", "id": "m", "role": "assistant", "content": [part]}
    return {**RESPONSE, "status": "completed", "output": [{**item, "status": "completed"}]}


def _converse(text: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": [{"text": text}]}
    return {"output": {"message": message}, "stopReason": "end_turn"}


# (case, what the provider sends): an answer whose text, or another field, has the wrong type.
PLAIN: list[tuple[str, str, Any]] = [
    ("openai-chat", "content 42", _chat(42)),
    ("openai-chat", "finish reason 42", _chat("hi", finish=42)),
    ("openai-responses", "text 42", _responses(42)),
    ("bedrock", "text 42", _converse(42)),
]
_DONE = {"type": "response.completed", "sequence_number": 2, "response": _responses("hi")}
STREAMED: list[tuple[str, str, Any]] = [
    (
        "openai-responses",
        "delta 42",
        [
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "m",
                "output_index": 0,
                "content_index": 0,
                "delta": 42,
            },
            _DONE,
        ],
    ),
    (
        "bedrock",
        "delta text 42",
        [
            {"messageStart": {"role": "assistant"}},
            {"contentBlockDelta": {"delta": {"text": 42}, "contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
        ],
    ),
]


def _assert_not_stored(model: Any) -> None:
    assert not model.cache_manager.has_entry(model.cache_key(QUESTION))
    assert model.cache_manager.get_stats()["total_entries"] == 0


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "uncached"])
@pytest.mark.parametrize(("case", "name", "body"), PLAIN, ids=case_ids(PLAIN))
async def test_an_answer_of_the_wrong_shape_is_malformed_and_not_stored(
    models: Callable[..., Any],
    server: ProviderServer,
    case: str,
    name: str,
    body: Any,
    cached: bool,
) -> None:
    provider, model_id, options = MODELS[case]
    model = models(provider, model_id, enable_cache=cached, **options)
    server.queue_raw(body)

    with pytest.raises(ProviderServerError) as error:
        await model.get_text(QUESTION)

    assert "malformed" in str(error.value)
    assert "wrong shape" in str(error.value) or "not a string" in str(error.value)
    _assert_not_stored(model)
    CacheManager.reset_instances()  # another process: nothing to read, nothing corrupt
    fresh = models(provider, model_id, **options)
    answer = await fresh.generate(QUESTION)
    assert (answer.cached, type(answer.text)) == (False, str)


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "uncached"])
@pytest.mark.parametrize(("case", "name", "events"), STREAMED, ids=case_ids(STREAMED))
async def test_a_stream_whose_text_is_not_a_string_is_malformed_and_not_stored(
    models: Callable[..., Any],
    server: ProviderServer,
    case: str,
    name: str,
    events: Any,
    cached: bool,
) -> None:
    provider, model_id, options = MODELS[case]
    model = models(provider, model_id, enable_cache=cached, **options)
    server.queue_raw(events)
    chunks: list[Any] = []

    async def read() -> None:
        async for chunk in model.stream_text(QUESTION):
            chunks.append(chunk)

    with pytest.raises(ProviderServerError) as error:
        await read()

    assert "malformed" in str(error.value)
    assert all(type(chunk) is str for chunk in chunks)
    assert "42" not in chunks  # never made text
    _assert_not_stored(model)
