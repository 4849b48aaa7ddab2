"""``get_json``: native structured output per provider, checked before it is stored.

The real SDKs against spark.testing's server, which answers a request that asks for a JSON
schema with JSON that fits it (as a model with structured output does) unless a test scripts
the answer's text (``queue_text``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, field_validator

from spark.cache import CacheConfig
from spark.errors import CacheMissError, ConfigError, StructuredOutputError
from spark.models.structured import structured_schema
from spark.testing import ProviderServer

Models = Callable[..., Any]

NATIVE_BEDROCK = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"  # outputConfig.textFormat
TOOL_BEDROCK = "anthropic.claude-3-haiku-20240307-v1:0"  # no native form: a forced tool call
PROVIDERS = [
    ("openai", "gpt-4o-mini"),
    ("bedrock", NATIVE_BEDROCK),
    ("bedrock", TOOL_BEDROCK),
    ("gemini", "gemini-2.5-flash"),
]
DICT_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "minimum": 1}},
    "required": ["city", "rank"],
}


class City(BaseModel):
    name: str
    population: int


def entry_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.parent.parent.parent == root)


def schema_on_wire(provider: str, body: dict[str, Any]) -> Any:
    """The JSON schema a recorded request asked for, wherever its provider puts it."""
    if provider == "openai":
        return body["response_format"]["json_schema"]["schema"]
    if provider == "bedrock" and "outputConfig" in body:
        return json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])
    if provider == "bedrock":
        (tool,) = body["toolConfig"]["tools"]
        assert body["toolConfig"]["toolChoice"] == {"tool": {"name": tool["toolSpec"]["name"]}}
        return tool["toolSpec"]["inputSchema"]["json"]
    return body["generationConfig"]["responseJsonSchema"]


@pytest.mark.parametrize(("provider", "model_id"), PROVIDERS)
async def test_pydantic_schema_gives_an_instance_sent_natively_and_cached(
    models: Models, server: ProviderServer, provider: str, model_id: str
) -> None:
    model = models(provider, model_id)
    first = await model.get_json(City, "The largest city of Peru?")
    assert isinstance(first, City)
    assert server.count(provider) == 1
    assert schema_on_wire(provider, server.requests[-1].body) == City.model_json_schema()
    again = await model.get_json(City, "The largest city of Peru?")
    assert again == first
    assert again is not first  # the caller's own object
    assert server.count(provider) == 1  # a hit


@pytest.mark.parametrize(("provider", "model_id"), PROVIDERS)
async def test_dict_schema_gives_the_parsed_object(
    models: Models, server: ProviderServer, provider: str, model_id: str
) -> None:
    model = models(provider, model_id)
    value = await model.get_json(DICT_SCHEMA, "Rank a city")
    assert isinstance(value, dict)
    assert set(value) == {"city", "rank"}
    assert value["rank"] >= 1
    value["city"] = "changed by the caller"
    assert (await model.get_json(DICT_SCHEMA, "Rank a city"))["city"] != "changed by the caller"
    assert server.count(provider) == 1


@pytest.mark.parametrize(("provider", "model_id"), PROVIDERS)
@pytest.mark.parametrize(
    "bad_text",
    ["Sure! Here is the city.", '{"name": "Lima"}', '{"name": "Lima", "population": "many"}'],
)
async def test_an_invalid_answer_raises_and_is_never_stored(
    models: Models,
    server: ProviderServer,
    cache_config: CacheConfig,
    provider: str,
    model_id: str,
    bad_text: str,
) -> None:
    model = models(provider, model_id)
    server.queue_text(bad_text, provider=provider)
    with pytest.raises(StructuredOutputError) as caught:
        await model.get_json(City, "The largest city of Chile?")
    assert caught.value.raw_text == bad_text
    assert caught.value.problems
    assert entry_files(cache_config.resolved_dir) == []  # nothing stored
    good = await model.get_json(City, "The largest city of Chile?")  # reaches the server again
    assert isinstance(good, City)
    assert server.count(provider) == 2
    assert len(entry_files(cache_config.resolved_dir)) == 1


async def test_a_fenced_json_answer_is_read(models: Models, server: ProviderServer) -> None:
    model = models("bedrock", NATIVE_BEDROCK)
    server.queue_text('```json\n{"name": "Quito", "population": 2800000}\n```')
    assert await model.get_json(City, "Capital of Ecuador?") == City(
        name="Quito", population=2800000
    )


async def test_the_schema_is_part_of_the_key(models: Models, server: ProviderServer) -> None:
    model = models("openai", "gpt-4o-mini")
    await model.get_json(City, "Describe a city")
    await model.get_json(DICT_SCHEMA, "Describe a city")
    await model.get_text("Describe a city")
    assert server.count("openai") == 3  # three requests, three keys


@pytest.mark.parametrize(("provider", "model_id"), PROVIDERS)
async def test_the_schema_keyed_once_keys_as_the_schema_itself(
    models: Models, server: ProviderServer, provider: str, model_id: str
) -> None:
    """get_json keys its schema once per schema; its key is the key of the same call given a
    fresh plain copy of the schema it sends (keyed in full, as any call's keywords)."""
    model = models(provider, model_id)
    for schema in (City, DICT_SCHEMA):
        server.queue_text(json.dumps({"name": "Lima", "population": 1, "city": "Lima", "rank": 1}))
        await model.get_json(schema, "Describe a city")
        plain = json.loads(json.dumps(structured_schema(schema).spec))
        stored = {path.stem for path in entry_files(model.cache_manager.cache_dir)}
        assert model.cache_key("Describe a city", output_schema=plain) in stored


async def test_a_schema_keying_would_change_is_sent_as_given(
    models: Models, server: ProviderServer
) -> None:
    """A long data: URL in a schema is keyed as a digest, but the schema goes on the wire as it
    was given (the key-once shortcut is only taken for a schema keying leaves alone)."""
    url = "data:image/png;base64," + "QUJD" * 100
    schema = {**DICT_SCHEMA, "description": url}
    model = models("openai", "gpt-4o-mini")
    server.queue_text(json.dumps({"city": "Lima", "rank": 1}))
    assert await model.get_json(schema, "Describe a city") == {"city": "Lima", "rank": 1}
    assert schema_on_wire("openai", server.requests[-1].body) == schema
    (entry,) = entry_files(model.cache_manager.cache_dir)
    assert entry.stem == model.cache_key("Describe a city", output_schema=dict(schema))
    assert url not in entry.read_text()  # the key and the stored request hold its digest


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


async def test_openai_strict_when_the_schema_allows_it(
    models: Models, server: ProviderServer
) -> None:
    model = models("openai", "gpt-4o-mini")
    await model.get_json(Strict, "Name one")
    assert server.requests[-1].body["response_format"]["json_schema"]["strict"] is True
    await model.get_json(City, "Name one")  # extra fields allowed: not strict-compatible
    assert "strict" not in server.requests[-1].body["response_format"]["json_schema"]


class Lenient(BaseModel):
    name: str
    population: int


class Picky(BaseModel):  # the same JSON schema as Lenient, a stricter validator
    model_config = ConfigDict(title="Lenient")
    name: str
    population: int

    @field_validator("population")
    @classmethod
    def huge(cls, value: int) -> int:
        if value < 10**9:
            raise ValueError("too small for this schema")
        return value


async def test_a_stored_answer_that_no_longer_validates_is_a_miss(
    models: Models, server: ProviderServer, cache_config: CacheConfig
) -> None:
    assert Picky.model_json_schema() == Lenient.model_json_schema()
    model = models("gemini", "gemini-2.5-flash")
    server.queue_text('{"name": "Lima", "population": 10000000}')
    await model.get_json(Lenient, "A big city")
    server.queue_text('{"name": "Earth", "population": 8000000000}')
    fresh = await model.get_json(Picky, "A big city")  # the stored answer fails Picky: a miss
    assert fresh.population == 8000000000
    assert server.count("gemini") == 2
    assert await model.get_json(Picky, "A big city") == fresh  # the new answer replaced it
    assert server.count("gemini") == 2
    assert len(entry_files(cache_config.resolved_dir)) == 1


async def test_get_json_in_replay(
    server: ProviderServer, cache_config: CacheConfig, tmp_path: Path
) -> None:
    recorder = server.model("openai", "gpt-4o-mini", cache_config=cache_config, api_key="sk-x")
    recorded = await recorder.get_json(City, "A city to replay")
    replaying = CacheConfig(enabled=True, cache_dir=cache_config.resolved_dir, mode="replay")
    replayer = server.model("openai", "gpt-4o-mini", cache_config=replaying, api_key="sk-x")
    assert await replayer.get_json(City, "A city to replay") == recorded
    with pytest.raises(CacheMissError):
        await replayer.get_json(City, "A city never recorded")
    assert server.count("openai") == 1
    await recorder.aclose()
    await replayer.aclose()


async def test_a_replayed_answer_that_no_longer_validates_names_the_file(
    server: ProviderServer, cache_config: CacheConfig
) -> None:
    recorder = server.model("openai", "gpt-4o-mini", cache_config=cache_config, api_key="sk-x")
    server.queue_text('{"name": "Lima", "population": 10}')
    await recorder.get_json(Lenient, "Replay me")
    replaying = CacheConfig(enabled=True, cache_dir=cache_config.resolved_dir, mode="replay")
    replayer = server.model("openai", "gpt-4o-mini", cache_config=replaying, api_key="sk-x")
    with pytest.raises(CacheMissError, match=r"no longer matches the schema") as caught:
        await replayer.get_json(Picky, "Replay me")
    assert str(cache_config.resolved_dir) in str(caught.value)
    assert server.count("openai") == 1
    await recorder.aclose()
    await replayer.aclose()


async def test_without_a_cache(server: ProviderServer) -> None:
    model = server.model("openai", "gpt-4o-mini", api_key="sk-x")
    assert isinstance(await model.get_json(City, "No cache"), City)
    server.queue_text("nope")
    with pytest.raises(StructuredOutputError):
        await model.get_json(City, "No cache either")
    await model.aclose()


@pytest.mark.parametrize(
    ("schema", "kwargs", "match"),
    [
        ("not a schema", {}, "pydantic BaseModel subclass or a JSON-schema dict"),
        (int, {}, "pydantic BaseModel subclass"),
        ({}, {}, "needs a schema"),
        ({"type": "no-such-type"}, {}, "not a valid JSON schema"),
        (City, {"response_format": {"type": "json_object"}}, "leave out response_format"),
    ],
)
async def test_bad_schemas_are_config_errors(
    models: Models, server: ProviderServer, schema: Any, kwargs: dict[str, Any], match: str
) -> None:
    model = models("openai", "gpt-4o-mini")
    with pytest.raises(ConfigError, match=match):
        await model.get_json(schema, "Hi", **kwargs)
    assert server.count() == 0


async def test_echo_model_answers_json_that_fits(tmp_path: Path) -> None:
    from spark.models.echo import EchoModel

    model = EchoModel("echo-1", cache_config=CacheConfig(enabled=True, cache_dir=tmp_path / "c"))
    city = await model.get_json(City, "Lima")
    assert city == City(name="Echo: Lima", population=1)
    assert await model.get_json(DICT_SCHEMA, "x") == {"city": "Echo: x", "rank": 2}


@pytest.mark.parametrize(
    ("model_id", "native"),
    [
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", False),
        ("anthropic.claude-sonnet-4-20250514-v1:0", False),
        ("amazon.nova-pro-v1:0", False),
        ("meta.llama3-70b-instruct-v1:0", False),
        ("anthropic.claude-haiku-4-5-20251001-v1:0", True),
        ("global.anthropic.claude-opus-4-6-v1", True),
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
    ],
)
def test_which_bedrock_models_get_the_native_form(model_id: str, native: bool) -> None:
    from spark.models._bedrock_convert import native_structured_output

    assert native_structured_output(model_id) is native


async def test_bedrock_forced_tool_next_to_the_callers_tools(
    models: Models, server: ProviderServer
) -> None:
    """With tools of the caller's, any tool may be called: theirs, or the answer's."""
    model = models("bedrock", TOOL_BEDROCK)
    weather = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    response, value = await model.structured_call(
        structured_schema(City), "Weather?", {"tools": [weather]}
    )
    config = server.requests[-1].body["toolConfig"]
    assert [t["toolSpec"]["name"] for t in config["tools"]] == ["get_weather", "structured_answer"]
    assert config["toolChoice"] == {"any": {}}
    assert isinstance(value, City)
    assert response.tool_calls == ()
    assert json.loads(response.text) == value.model_dump()


@pytest.mark.parametrize("first", ["stream", "plain"])
async def test_bedrock_forced_tool_streams_its_json_whichever_call_comes_first(
    models: Models, server: ProviderServer, first: str
) -> None:
    """A stream of a structured answer given through the forced tool yields its JSON text
    (it yielded nothing, and stored no chunk, so every replay was empty)."""
    model = models("bedrock", TOOL_BEDROCK)

    async def streamed() -> str:
        return "".join([c async for c in model.stream_text("Describe a city", **asked)])

    asked = {"output_schema": DICT_SCHEMA}
    if first == "plain":
        text = (await model.generate("Describe a city", **asked)).text
        assert await streamed() == text
    else:
        text = await streamed()
        assert (await model.generate("Describe a city", **asked)).text == text
    assert json.loads(text)["city"]
    assert await streamed() == text  # the replay, the same
    assert server.count(provider="bedrock") == 1


async def test_bedrock_forced_tool_cut_off_says_length(
    models: Models, server: ProviderServer
) -> None:
    server.queue_cut_off()
    response = await models("bedrock", TOOL_BEDROCK).generate(
        "Describe a city", output_schema=DICT_SCHEMA
    )

    assert response.finish_reason == "length"


def test_bedrock_forced_tool_next_to_a_call_of_the_callers_keeps_that_call() -> None:
    from spark.models._bedrock_answers import parse_converse, unwrap_structured

    blocks = [
        {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "s"}}},
        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Oslo"}}},
        {"toolUse": {"toolUseId": "t2", "name": "structured_answer", "input": {"city": "Oslo"}}},
    ]
    answer = parse_converse({"output": {"message": {"content": blocks}}, "stopReason": "tool_use"})

    unwrapped = unwrap_structured(answer, "structured_answer")

    assert json.loads(unwrapped.text) == {"city": "Oslo"}
    assert [c.name for c in unwrapped.tool_calls] == ["get_weather"]
    assert unwrapped.finish_reason == "tool_calls"
    assert unwrapped.reasoning == answer.reasoning
