"""Replay misses explain themselves: the nearest stored request and a field-level difference."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache
from spark.cache.explain import diff_requests
from spark.cache.keys import canonical_json
from spark.cache.sealed import value_digest
from spark.errors import CacheMissError

CONVERSATION = [
    {"role": "user", "content": "Plan a trip to Lisbon."},
    {"role": "assistant", "content": "Sure: three days?"},
    {"role": "user", "content": "Yes, three days in May."},
]
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
OPENAI_WEATHER = {"type": "function", "function": WEATHER}  # (as it is sent, and keyed)


async def answer() -> Mapping[str, Any]:
    return {"text": "Day 1: Alfama."}


def caches(tmp_path: Path, **config: Any) -> tuple[BoundCache, BoundCache]:
    """A recording cache and a replaying cache over one directory."""
    record = CacheConfig(enabled=True, cache_dir=tmp_path / "c", **config)
    replay = CacheConfig(enabled=True, cache_dir=tmp_path / "c", mode="replay", **config)
    manager = CacheManager.get_instance(tmp_path / "c")
    return manager.bind(record), manager.bind(replay)


def test_diff_names_changed_added_and_removed_fields() -> None:
    stored = {"params": {"temperature": 0.7}, "messages": [1, 2], "tools": []}
    requested = {"params": {"temperature": 0.9, "seed": 1}, "messages": [1], "tools": [WEATHER]}
    assert diff_requests(stored, requested) == [
        "messages[1] removed (was 2)",
        "params.seed added: 1",
        "params.temperature: 0.7 -> 0.9",
        'tools[0] added: {"name": "get_weather", "parameters": {"properties": {}, ...',
    ]


def test_a_plaintext_diff_shows_both_texts_where_they_differ() -> None:
    def asking(text: str) -> dict[str, Any]:
        return {"body": {"messages": [{"role": "user", "content": text}]}}

    long = "Summarize: the cat sat on the mat, and then it went to sleep for a long time."
    assert diff_requests(asking(long), asking(long.replace("mat", "rug"))) == [
        'body.messages[0].content changed: ..."ize: the cat sat on the mat, and then i"... -> '
        '..."ize: the cat sat on the rug, and then i"...'
    ]
    parts = {"content": [{"type": "text", "text": "hello"}]}
    other = {"content": [{"type": "text", "text": "help"}]}
    assert diff_requests(parts, other) == [
        'content changed: [{"text": "hello", "type": "... -> [{"text": "help", "type": "...'
    ]


def test_a_sealed_diff_names_fields_and_shows_digests_not_values() -> None:
    secret_tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "internal CRM",
            "parameters": {"type": "object", "properties": {"customer_ssn": {"type": "string"}}},
        },
    }
    renamed = {
        "type": "function",
        "function": {
            **secret_tool["function"],
            "parameters": {"type": "object", "properties": {"pin": {}}},
        },
    }
    system = {"role": "system", "content": "be terse"}
    stored = {
        "v": 2,
        "body": {
            "messages": [system, {"role": "user", "content": "hi"}],
            "temperature": 0.7,
            "logprobs": True,
            "reasoning_effort": "low",
            "tools": [secret_tool],
        },
    }
    schema = {"type": "object", "properties": {"account_no": {}}}
    requested = {
        "v": 2,
        "body": {
            "messages": [{"role": "user", "content": "hello"}],
            "temperature": 0.9,
            "logprobs": False,
            "reasoning_effort": "high",
            "response_format": schema,
            "odd name!": 1,
            "tools": [renamed, OPENAI_WEATHER],
        },
    }
    lines = diff_requests(stored, requested, sealed=True)
    text = "\n".join(lines)
    for secret in ("be terse", "hello", "low", "high", "customer_ssn", "pin", "account_no"):
        assert secret not in text
    assert "odd name" not in text, "a parameter name that is no identifier stays unnamed"
    body, asked = stored["body"], requested["body"]
    assert lines == [
        "body.logprobs: true -> false",
        f"body.messages[0].content changed ({value_digest('be terse')} -> {value_digest('hello')})",
        f"body.messages[0].role changed ({value_digest('system')} -> {value_digest('user')})",
        f"body.messages[1] removed (was {value_digest(body['messages'][1])})",
        f"body.reasoning_effort changed ({value_digest('low')} -> {value_digest('high')})",
        f"body.response_format added ({value_digest(schema)})",
        "body.temperature: 0.7 -> 0.9",
        f"body.tools[0].function.parameters changed "
        f"({value_digest(secret_tool['function']['parameters'])} -> "
        f"{value_digest(renamed['function']['parameters'])})",
        f"body.tools[1] added ({value_digest(OPENAI_WEATHER)})",
        f"body: other fields changed ({value_digest({})} -> {value_digest({'odd name!': 1})})",
    ]
    assert asked["tools"][1] == OPENAI_WEATHER
    assert diff_requests(
        {"v": 2, "body": {}}, {"v": 2, "body": {"tools": [WEATHER]}}, sealed=True
    ) == [f"body.tools added (1 item, {value_digest([WEATHER])})"]


def test_digests_are_short_stable_and_canonical() -> None:
    assert value_digest({"b": 1, "a": "x"}) == value_digest({"a": "x", "b": 1})
    assert value_digest("x") != value_digest("y")
    assert re.fullmatch(r"sha256:[0-9a-f]{8}", value_digest("x"))
    expected = hashlib.sha256(canonical_json(["x"])).hexdigest()[:8]
    assert value_digest(["x"]) == f"sha256:{expected}"


def test_a_response_schema_is_named_by_its_fields_keys_stay_unnamed() -> None:
    def wrapped(prop: str) -> dict[str, Any]:
        schema = {"type": "object", "properties": {prop: {"type": "string"}}}
        return {
            "body": {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "report", "strict": True, "schema": schema},
                }
            }
        }

    lines = diff_requests(wrapped("salary"), wrapped("bonus"), sealed=True)
    assert len(lines) == 1
    assert lines[0].startswith("body.response_format.json_schema.schema changed (sha256:")
    assert "salary" not in lines[0]
    assert "bonus" not in lines[0]


async def test_replay_miss_shows_the_nearest_entry_and_the_difference(tmp_path: Path) -> None:
    record, replay = caches(tmp_path)
    await record.get_or_call(record.chat_request("openai", "gpt-4o", "unrelated"), answer)
    stored = record.chat_request("openai", "gpt-4o", CONVERSATION, temperature=0.7)
    await record.get_or_call(stored, answer)
    changed = [*CONVERSATION[:2], {"role": "user", "content": "Yes, four days in May."}]
    request = replay.chat_request("openai", "gpt-4o", changed, temperature=0.9, tools=[WEATHER])
    with pytest.raises(CacheMissError) as info:
        await replay.get_or_call(request, answer)
    message = str(info.value)
    assert "openai/gpt-4o" in message
    assert stored.key in message, "names the nearest stored entry's file"
    assert "body.temperature: 0.7 -> 0.9" in message
    assert "body.messages[2].content changed" in message
    assert "body.tools added" in message
    assert "SPARK_CACHE_MODE=read_write" in message


async def test_replay_miss_with_no_entry_for_the_model(tmp_path: Path) -> None:
    _, replay = caches(tmp_path)
    with pytest.raises(CacheMissError, match="No entry is stored for this model"):
        await replay.get_or_call(replay.chat_request("gemini", "g", "hi"), answer)


async def test_encrypted_entries_without_the_key_say_which_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    record, _ = caches(tmp_path, encrypt=True)
    await record.get_or_call(record.chat_request("openai", "gpt-4o", "hi"), answer)
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())  # a different key: cannot compare
    _, replay = caches(tmp_path, encrypt=True)
    with pytest.raises(CacheMissError, match=r"encrypted .* set SPARK_CACHE_KEY"):
        await replay.get_or_call(replay.chat_request("openai", "gpt-4o", "hello"), answer)


@pytest.mark.parametrize("damage", ["truncated", "edited"])
async def test_replay_names_a_damaged_entry_and_its_reason(tmp_path: Path, damage: str) -> None:
    record, replay = caches(tmp_path)
    request = record.chat_request("openai", "gpt-4o", "hi")
    await record.get_or_call(request, answer)
    path = Path(record.manager.store.location("openai", "gpt-4o", request.key))
    data = path.read_bytes()
    path.write_bytes(
        data[: len(data) // 2] if damage == "truncated" else data.replace(b"hi", b"yo")
    )
    record.manager.memory.clear()
    with pytest.raises(CacheMissError, match="is unusable") as info:
        await replay.get_or_call(request, answer)
    assert str(path) in str(info.value)
    assert "re-record it" in str(info.value)


@pytest.mark.parametrize("sealed", [False, True])
def test_a_message_put_first_is_one_message_added(sealed: bool) -> None:
    """A system prompt added to an OpenAI call (a message in front) read as every message
    changed and the last one added."""
    user = {"role": "user", "content": "Summarize: the cat sat on the mat."}
    stored = {"v": 2, "body": {"messages": [user]}}
    requested = {"v": 2, "body": {"messages": [{"role": "system", "content": "Be brief."}, user]}}
    [line] = diff_requests(stored, requested, sealed=sealed)
    assert line.startswith("body.messages[0] added")
    middle = {"v": 2, "body": {"messages": [user, {"role": "assistant", "content": "ok"}, user]}}
    dropped = {"v": 2, "body": {"messages": [user, user]}}
    [gone] = diff_requests(middle, dropped, sealed=sealed)
    assert gone.startswith("body.messages[1] removed")
