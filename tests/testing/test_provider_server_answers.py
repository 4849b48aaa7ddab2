"""The pure parts: deterministic answers, stream splitting, embeddings, event-stream frames."""

from __future__ import annotations

import json
import math

import pytest
from botocore.eventstream import EventStreamBuffer

from spark.testing import _answers
from spark.testing._eventstream import encode_frame, event_frame, exception_frame


@pytest.mark.parametrize("chars", [1, 2, 7, 16, 17, 200, 1024, 5000])
def test_answer_text_has_exactly_the_requested_length(chars: int) -> None:
    seed = _answers.request_seed("openai", "m", {"messages": []})

    text = _answers.answer_text(seed, chars)

    assert len(text) == chars
    assert text == _answers.answer_text(seed, chars)


def test_answer_text_is_readable_words_and_quotes_tool_results() -> None:
    seed = _answers.request_seed("gemini", "m", {"contents": []})

    text = _answers.answer_text(seed, 200)
    with_result = _answers.answer_text(seed, 30, tool_result="a long tool result " * 3)

    assert text.startswith(f"Answer {seed[:6]}: ")
    assert all(word.isalpha() for word in text[16:-1].split())
    assert "a long tool result " * 3 in with_result
    assert len(_answers.answer_text(seed, 500, tool_result="x")) == 500


def test_request_seed_ignores_stream_flags_only() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    seed = _answers.request_seed("openai", "m", body)

    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    assert _answers.request_seed("openai", "m", streamed) == seed
    assert _answers.request_seed("openai", "m", dict(reversed(body.items()))) == seed
    assert _answers.request_seed("openai", "m", {**body, "temperature": 0}) != seed
    assert _answers.request_seed("gemini", "m", body) != seed
    assert _answers.request_seed("openai", "m2", body) != seed


@pytest.mark.parametrize("length", [0, 1, 3, 10, 100, 200, 1024])
def test_split_chunks_rejoins_and_sizes(length: int) -> None:
    text = "abcdefghij" * (length // 10) + "x" * (length % 10)

    chunks = _answers.split_chunks(text)

    assert "".join(chunks) == text
    assert all(len(chunk) <= 32 for chunk in chunks)
    assert len(chunks) >= min(3, max(1, length))


def test_collect_text_reads_every_message_spelling() -> None:
    fragments = _answers.collect_text(
        [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {
                "role": "user",
                "content": [{"text": "c"}, {"toolResult": {"content": [{"json": {"k": 1}}]}}],
            },
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 2}}}]},
        ]
    )

    assert fragments == ["a", "b", "c", '{"k":1}', '{"r":2}']
    assert _answers.input_tokens(["abcd", "e"]) == 2
    assert _answers.token_count(0) == 1


def test_embedding_is_deterministic_unit_length() -> None:
    vector = _answers.embedding("openai", "m", "hello", 64)

    assert len(vector) == 64
    assert math.fsum(x * x for x in vector) == pytest.approx(1.0)
    assert vector == _answers.embedding("openai", "m", "hello", 64)
    assert vector != _answers.embedding("openai", "m", "hello!", 64)


def _decode(frame: bytes) -> list[tuple[dict[str, str], bytes]]:
    buffer = EventStreamBuffer()  # botocore's own decoder checks both CRCs
    buffer.add_data(frame)
    return [(dict(message.headers), message.payload) for message in buffer]


def test_event_frames_decode_with_botocore() -> None:
    frame = event_frame("contentBlockDelta", {"delta": {"text": "héllo"}, "contentBlockIndex": 0})

    [(headers, payload)] = _decode(frame)

    assert headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(payload) == {"delta": {"text": "héllo"}, "contentBlockIndex": 0}


def test_exception_frame_and_empty_payload() -> None:
    [(headers, payload)] = _decode(exception_frame("throttlingException", {"message": "slow"}))
    assert headers[":message-type"] == "exception"
    assert headers[":exception-type"] == "throttlingException"
    assert json.loads(payload) == {"message": "slow"}

    assert _decode(encode_frame({}, b"")) == [({}, b"")]
