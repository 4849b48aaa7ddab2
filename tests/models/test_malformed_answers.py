"""A provider answer Spark cannot read (HTTP 200 with an error body, a null message, missing
content, wrong types) is a ``ProviderServerError`` naming the provider and model, on every
provider, plain, streamed and for embeddings, and nothing of it is cached; a token count that is
no count is taken as 0 with one warning, and the answer is served and cached
(docs/models.md, "Errors")."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from spark.errors import ProviderServerError
from spark.testing import ProviderServer
from tests.models._answer_cases import CHAT, MODELS, QUESTION, RESPONSE, case_ids

_HI = {"role": "assistant", "content": "hi"}
_GEMINI_HI = {"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}
_BEDROCK_HI = {"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}}

# (case, what the provider sends): answers of a plain call that no reader can read.
PLAIN: list[tuple[str, str, Any]] = [
    ("openai-chat", "error body", {"error": {"message": "upstream overloaded"}}),
    ("openai-chat", "message null", {**CHAT, "choices": [{"index": 0, "message": None}]}),
    ("openai-chat", "choices not a list", {**CHAT, "choices": "hi"}),
    ("openai-responses", "error body", {"error": {"message": "upstream overloaded"}}),
    ("openai-responses", "content null", {**RESPONSE, "output": [{"type": "message"}]}),
    ("bedrock", "error body", {"message": "upstream overloaded"}),
    ("bedrock", "message null", {"output": {"message": None}, "stopReason": "end_turn"}),
    ("bedrock", "content not a list", {"output": {"message": {"content": "hi"}}}),
    ("gemini", "error body", {"error": {"code": 500, "message": "upstream overloaded"}}),
    ("gemini", "parts not a list", {"candidates": [{"content": {"parts": "hi"}}]}),
]
# (case, what the stream sends): its events, in each provider's framing.
_CHUNK = {**CHAT, "object": "chat.completion.chunk"}
STREAMED: list[tuple[str, str, Any]] = [
    ("openai-chat", "delta null", [{**_CHUNK, "choices": [{"index": 0, "delta": None}]}]),
    (
        "openai-responses",
        "output null",
        [{"type": "response.completed", "sequence_number": 0, "response": RESPONSE}],
    ),
    (
        "bedrock",
        "tool use without id",
        [{"contentBlockStart": {"start": {"toolUse": {"name": "f"}}, "contentBlockIndex": 0}}],
    ),
    ("gemini", "parts not a list", [{"candidates": [{"content": {"parts": "hi"}}]}]),
]
EMBEDDERS: dict[str, tuple[str, str, Any]] = {
    "openai": ("openai", "text-embedding-3-small", {"object": "list", "model": "m"}),
    "bedrock": ("bedrock", "amazon.titan-embed-text-v2:0", {"embedding": None}),
    "gemini": ("gemini", "gemini-embedding-001", {"embeddings": [{"values": "x"}]}),
}


def _assert_malformed(error: pytest.ExceptionInfo[ProviderServerError], model: Any) -> None:
    message = str(error.value)
    assert "malformed" in message
    assert repr(model.model_id) in message
    assert error.value.provider == model.provider


@pytest.mark.parametrize(("case", "name", "body"), PLAIN, ids=case_ids(PLAIN))
async def test_a_malformed_answer_is_a_provider_error_and_not_cached(
    models: Callable[..., Any], server: ProviderServer, case: str, name: str, body: Any
) -> None:
    provider, model_id, options = MODELS[case]
    model = models(provider, model_id, **options)
    server.queue_raw(body)

    with pytest.raises(ProviderServerError) as error:
        await model.get_text(QUESTION)

    _assert_malformed(error, model)
    assert not model.cache_manager.has_entry(model.cache_key(QUESTION))
    again = await model.generate(QUESTION)  # the next call asks the provider again
    assert (again.cached, server.count()) == (False, 2)


@pytest.mark.parametrize(("case", "name", "body"), PLAIN[:2], ids=case_ids(PLAIN[:2]))
async def test_a_malformed_answer_is_an_error_when_uncached_too(
    models: Callable[..., Any], server: ProviderServer, case: str, name: str, body: Any
) -> None:
    provider, model_id, options = MODELS[case]
    model = models(provider, model_id, enable_cache=False, **options)
    server.queue_raw(body)

    with pytest.raises(ProviderServerError) as error:
        await model.generate(QUESTION)

    _assert_malformed(error, model)


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "uncached"])
@pytest.mark.parametrize(("case", "name", "events"), STREAMED, ids=case_ids(STREAMED))
async def test_a_malformed_stream_is_a_provider_error_and_not_cached(
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

    with pytest.raises(ProviderServerError) as error:
        [chunk async for chunk in model.stream_text(QUESTION)]

    _assert_malformed(error, model)
    assert not model.cache_manager.has_entry(model.cache_key(QUESTION))


@pytest.mark.parametrize("case", sorted(EMBEDDERS))
async def test_a_malformed_embeddings_answer_is_a_provider_error_and_not_cached(
    models: Callable[..., Any], server: ProviderServer, case: str
) -> None:
    provider, model_id, body = EMBEDDERS[case]
    model = models(provider, model_id)
    server.queue_raw(body)

    with pytest.raises(ProviderServerError) as error:
        await model.embed("hello")

    _assert_malformed(error, model)
    assert not model.cache_manager.has_entry(model.embedding_cache_key("hello"))


# (case, an answer that is fine but for one count, the count Spark reads).
BAD_COUNTS: list[tuple[str, Any, str]] = [
    (
        "openai-chat",
        {
            **CHAT,
            "choices": [{"index": 0, "message": _HI, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": -1, "completion_tokens": 3, "total_tokens": 2},
        },
        "input_tokens",
    ),
    (
        "openai-responses",
        {
            **RESPONSE,
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "m",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "hi", "annotations": []}],
                }
            ],
            "usage": {"input_tokens": 4, "output_tokens": 1.5, "total_tokens": 5},
        },
        "output_tokens",
    ),
    (
        "bedrock",
        {**_BEDROCK_HI, "stopReason": "end_turn", "usage": {"inputTokens": -1, "outputTokens": 3}},
        "input_tokens",
    ),
    (
        "gemini",
        {
            "candidates": [_GEMINI_HI],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": -3},
        },
        "output_tokens",
    ),
]


@pytest.mark.parametrize(("case", "body", "count"), BAD_COUNTS, ids=[c[0] for c in BAD_COUNTS])
async def test_an_invalid_token_count_is_taken_as_zero_with_one_warning(
    models: Callable[..., Any],
    server: ProviderServer,
    caplog: pytest.LogCaptureFixture,
    case: str,
    body: Any,
    count: str,
) -> None:
    provider, model_id, options = MODELS[case]
    model = models(provider, model_id, **options)
    server.queue_raw(body)

    with caplog.at_level(logging.WARNING, logger="spark"):
        answer = await model.generate(QUESTION)

    assert answer.text == "hi"
    assert getattr(answer.usage, count) == 0
    warnings = [r for r in caplog.records if "not counts" in r.getMessage()]
    assert len(warnings) == 1
    assert provider in warnings[0].getMessage()
    hit = await model.generate(QUESTION)
    assert (hit.cached, hit.text, getattr(hit.usage, count)) == (True, "hi", 0)
