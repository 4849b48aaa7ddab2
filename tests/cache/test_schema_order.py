"""A JSON Schema's property order steers the order of a structured answer's fields (OpenAI
structured outputs, Gemini's ``propertyOrdering``): two schemas in two orders put two requests on
the wire and must never share an entry; the same order, and dict order anywhere else, still
does. A replay miss names the change, and an entry of key schema 2 is re-keyed by migrate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spark.cache import CacheConfig
from spark.cache.codec import EntryMeta, encode_entry
from spark.cache.keys import canonical_json
from spark.cli import cli
from spark.errors import CacheMissError
from spark.testing import ProviderServer

A_FIRST = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
B_FIRST = {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "string"}}}


def _format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "pair", "schema": schema}}


CASES = [
    pytest.param("openai", "gpt-4o-mini", {}, lambda s: {"response_format": _format(s)}, id="chat"),
    pytest.param(
        "openai",
        "gpt-4o-mini",
        {"api": "responses"},
        lambda s: {"response_format": _format(s)},
        id="responses",
    ),
    pytest.param(
        "gemini",
        "gemini-2.0-flash",
        {},
        lambda s: {"response_mime_type": "application/json", "response_schema": s},
        id="gemini-response-schema",
    ),
    pytest.param(
        "gemini",
        "gemini-2.0-flash",
        {},
        lambda s: {"response_mime_type": "application/json", "response_json_schema": s},
        id="gemini-json-schema",
    ),
    pytest.param(
        "openai",
        "gpt-4o-mini",
        {},
        lambda s: {"tools": [{"name": "f", "parameters": s}]},
        id="openai-tool",
    ),
    pytest.param(
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        {},
        lambda s: {"tools": [{"name": "f", "parameters": s}]},
        id="bedrock-tool",
    ),
]


@pytest.mark.parametrize(("provider", "model_id", "options", "given"), CASES)
async def test_another_property_order_is_another_request(
    server: ProviderServer, tmp_path: Path, provider: str, model_id: str, options: Any, given: Any
) -> None:
    model = server.model(provider, model_id, enable_cache=True, cache_dir=tmp_path, **options)
    first = await model.generate("hi", **given(A_FIRST))
    server.queue_text('{"b": "1", "a": "2"}', provider)  # (what the b-first schema is answered)
    second = await model.generate("hi", **given(B_FIRST))
    assert not second.cached
    assert second.text == '{"b": "1", "a": "2"}' != first.text
    assert server.count(provider) == 2
    again = await model.generate("hi", **given({**B_FIRST}))
    assert again.cached, "the same order is still a hit"
    assert again.text == second.text
    assert server.count(provider) == 2
    await model.aclose()


async def test_dict_order_outside_a_schema_still_shares_the_entry(
    server: ProviderServer, tmp_path: Path
) -> None:
    model = server.model("openai", "gpt-4o", enable_cache=True, cache_dir=tmp_path)
    await model.generate([{"role": "user", "content": "hi"}], response_format=_format(A_FIRST))
    flipped = {"json_schema": {"schema": A_FIRST, "name": "pair"}, "type": "json_schema"}
    hit = await model.generate([{"content": "hi", "role": "user"}], response_format=flipped)
    assert hit.cached
    assert server.count("openai") == 1
    await model.aclose()


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "sealed"])
async def test_a_replay_miss_names_the_changed_order(
    server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypt: bool
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", "q" * 43 + "=")
    record = CacheConfig(enabled=True, cache_dir=tmp_path, encrypt=encrypt)
    model = server.model("openai", "gpt-4o", cache_config=record)
    await model.generate("hi", response_format=_format(A_FIRST))
    replay_config = CacheConfig(enabled=True, cache_dir=tmp_path, encrypt=encrypt, mode="replay")
    replay = server.model("openai", "gpt-4o", cache_config=replay_config)
    with pytest.raises(CacheMissError) as caught:
        await replay.generate("hi", response_format=_format(B_FIRST))
    message = str(caught.value)
    if encrypt:
        assert "a schema's property order changed (sha256:" in message
        assert "a, b" not in message
    else:
        assert (
            "body.response_format.json_schema.schema.properties: property order changed "
            "(a, b -> b, a)" in message
        )
    await model.aclose()
    await replay.aclose()


async def test_migrate_rekeys_an_entry_of_key_schema_2(
    server: ProviderServer, tmp_path: Path
) -> None:
    """An entry Spark recorded before the bump: the same stored request under ``"v": 2``,
    keyed by the canonical JSON alone. Replay says to migrate; migrate makes it a hit."""
    model = server.model("openai", "gpt-4o", enable_cache=True, cache_dir=tmp_path)
    answer = await model.generate("hi", response_format=_format(B_FIRST))
    [path] = tmp_path.rglob("*.json")
    entry = json.loads(path.read_text())
    payload = entry["payload"]
    request = {**payload["request"], "v": 2}
    old_key = hashlib.sha256(canonical_json(request)).hexdigest()
    meta = EntryMeta(old_key, "openai", request["model"], entry["created_at"], None)
    path.unlink()
    (path.parent / f"{old_key}.json").write_bytes(
        encode_entry(meta, {"request": request, "response": payload["response"]}, None)
    )
    replay = CacheConfig(enabled=True, cache_dir=tmp_path, mode="replay")
    replayed = server.model("openai", "gpt-4o", cache_config=replay)
    with pytest.raises(CacheMissError, match="key schema v2"):
        await replayed.generate("hi", response_format=_format(B_FIRST))

    result = CliRunner().invoke(cli, ["cache", "migrate", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Re-keyed 1 entry to key schema v3" in result.output
    hit = await replayed.generate("hi", response_format=_format(B_FIRST))
    assert hit.cached
    assert hit.text == answer.text
    assert server.count("openai") == 1
    await model.aclose()
    await replayed.aclose()


def _reasoning_first(*names: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": list(names),
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("provider", "model_id"),
    [
        ("openai", "gpt-4o"),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("gemini", "gemini-2.0-flash"),
    ],
)
async def test_get_json_sends_its_schema_in_the_order_given(
    server: ProviderServer, tmp_path: Path, provider: str, model_id: str
) -> None:
    """A schema that puts its reasoning before its answer must reach the provider so (it was
    sent sorted by name: answer first), and the other order is another request."""
    model = server.model(provider, model_id, enable_cache=True, cache_dir=tmp_path)
    await model.get_json(_reasoning_first("reasoning", "answer"), "Is 17 prime?")
    sent = json.dumps(server.requests[-1].body)
    assert sent.index('"reasoning"') < sent.index('"answer"')
    await model.get_json(_reasoning_first("answer", "reasoning"), "Is 17 prime?")
    assert server.count(provider) == 2
    sent = json.dumps(server.requests[-1].body)
    assert sent.index('"answer"') < sent.index('"reasoning"')
    await model.aclose()
