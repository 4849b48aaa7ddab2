"""Bedrock fidelity with the real boto3 against the local server: Converse's fields go where boto3
sends them, refusals, media bytes, cachePoint, nested None, streams, embeddings parameters."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from spark.errors import BadRequestError, ConfigError
from spark.models._bedrock_convert import CONVERSE_FIELDS, UNKEYED_FIELDS
from spark.models._bedrock_messages import MEDIA_PATHS
from spark.models.bedrock import BedrockModel
from spark.testing import ProviderServer

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
HI = [{"role": "user", "content": [{"text": "Hi"}]}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}
CACHE_POINT = {"cachePoint": {"type": "default"}}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MakeModel = Callable[..., BedrockModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """BedrockModels on the local server (``tests/models/conftest.py``: ``models``)."""
    return lambda model_id=MODEL, **options: models("bedrock", model_id, **options)


@pytest.fixture
def raw_client(server: ProviderServer) -> Any:
    """A plain boto3 client on the local server: what a user without Spark sends."""
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


def png(size: int, seed: bytes = b"spark") -> bytes:
    """A PNG-headed payload of ``size`` bytes that does not compress into anything small."""
    blocks = (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))
    return (PNG_MAGIC + b"".join(blocks))[:size]


def entry_file(model: BedrockModel, key: str) -> Path:
    (path,) = model.cache_manager.cache_dir.rglob(f"{key}.json")
    return path


# -- the field tables match botocore's service model ----------------------------------------


def _service_model() -> Any:
    return boto3.client("bedrock-runtime", region_name="us-east-1").meta.service_model


@pytest.mark.parametrize("operation", ["Converse", "ConverseStream"])
def test_converse_fields_are_botocores(operation: str) -> None:
    members = _service_model().operation_model(operation).input_shape.members

    assert set(members) == CONVERSE_FIELDS
    assert UNKEYED_FIELDS <= CONVERSE_FIELDS


def _blob_paths(shape: Any, path: str, seen: frozenset[str]) -> list[str]:
    if shape.type_name == "blob":
        return [path]
    if shape.name in seen:
        return []
    seen |= {shape.name}
    if shape.type_name == "structure":
        return [p for n, m in shape.members.items() for p in _blob_paths(m, f"{path}.{n}", seen)]
    if shape.type_name == "list":
        return _blob_paths(shape.member, f"{path}[]", seen)
    if shape.type_name == "map":
        return _blob_paths(shape.value, f"{path}{{}}", seen)
    return []


def test_media_paths_are_botocores_blobs() -> None:
    shape = _service_model().operation_model("Converse").input_shape

    assert sorted(p.lstrip(".") for p in _blob_paths(shape, "", frozenset())) == sorted(MEDIA_PATHS)


# -- native fields go where boto3 sends them ----------------------------------------------

NATIVE: dict[str, Any] = {
    "system": [{"text": "Be brief."}, CACHE_POINT],
    "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["X"]},
    "toolConfig": {
        "tools": [
            {"toolSpec": {"name": "t", "inputSchema": {"json": SCHEMA}, "strict": True}},
            CACHE_POINT,
        ],
        "toolChoice": {"tool": {"name": "t"}},
    },
    "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1", "trace": "enabled"},
    "additionalModelRequestFields": {"top_k": 3, "thinking": {"type": "disabled"}},
    "promptVariables": {"city": {"text": "Oslo"}},
    "additionalModelResponseFieldPaths": ["/stop_sequence"],
    "requestMetadata": {"team": "search"},
    "performanceConfig": {"latency": "optimized"},
    "serviceTier": {"type": "flex"},
    "projectIdentifier": "default",
    "outputConfig": {"effort": "low"},
}


def test_the_native_table_covers_every_field() -> None:
    assert set(NATIVE) == CONVERSE_FIELDS - {"modelId", "messages"}


@pytest.mark.parametrize("field", sorted(NATIVE))
async def test_a_native_field_is_sent_as_boto3_sends_it(
    make_model: MakeModel, server: ProviderServer, raw_client: Any, field: str
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text(HI, **{field: NATIVE[field]})
    raw_client.converse(modelId=MODEL, messages=HI, **{field: NATIVE[field]})

    spark_body, raw_body = (r.body for r in server.requests[-2:])
    assert spark_body == raw_body
    assert spark_body[field] == NATIVE[field]
    assert set(spark_body) == {"messages", field}  # nowhere else (additionalModelRequestFields)
    keyed = model.cache_key(HI, **{field: NATIVE[field]}) != model.cache_key(HI)
    assert keyed == (field not in UNKEYED_FIELDS)


async def test_every_native_field_at_once_is_boto3s_body(
    make_model: MakeModel, server: ProviderServer, raw_client: Any
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text(HI, **NATIVE)
    raw_client.converse(modelId=MODEL, messages=HI, **NATIVE)

    assert server.requests[-2].body == server.requests[-1].body


async def test_neutral_names_merge_into_the_native_fields(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text(
        HI,
        temperature=0.2,
        inferenceConfig={"maxTokens": 64},
        top_k=3,
        additionalModelRequestFields={"thinking": {"type": "disabled"}},
        tools=[WEATHER],
        toolConfig={"toolChoice": {"auto": {}}},
        request_metadata={"team": "a"},
    )

    body = server.requests[-1].body
    assert body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2}
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "disabled"}, "top_k": 3}
    assert body["toolConfig"]["toolChoice"] == {"auto": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert body["requestMetadata"] == {"team": "a"}


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temprature": 0.2}, r"'temprature'.*did you mean 'temperature'"),
        ({"inference_config": {}}, r"'inference_config'.*'inferenceConfig'"),
        ({"anthropic_beta": ["x"]}, r"additionalModelRequestFields"),
        ({"model": "other"}, r"model id belongs to the constructor"),
        ({"modelId": "other"}, r"model id belongs to the constructor"),
        ({"aws_secret_access_key": "s"}, r"aws_secret_access_key is not a per-call option"),
        ({"region": "eu-west-1"}, r"region is not a per-call option"),
        ({"n": 2}, r"n=2 is not supported by Converse"),
        ({"logprobs": True}, r"no log probabilities"),
        ({"temperature": 0.2, "inferenceConfig": {"temperature": 0.3}}, r"conflicts with"),
        ({"top_k": 3, "additionalModelRequestFields": {"top_k": 4}}, r"conflicts with"),
        ({"system_prompt": "a", "system": [{"text": "b"}]}, r"system text once"),
        ({"tool_choice": "required"}, r"needs tools"),
        ({"metadata": {"a": 1}, "requestMetadata": {"a": 2}}, r"conflicts with"),
    ],
)
async def test_refused_keywords_name_the_problem_and_send_nothing(
    make_model: MakeModel, server: ProviderServer, kwargs: dict[str, Any], match: str
) -> None:
    model = make_model()

    with pytest.raises(ConfigError, match=match):
        model.cache_key(HI, **kwargs)
    with pytest.raises(ConfigError, match=match):
        await model.get_text(HI, **kwargs)
    assert server.count("bedrock") == 0


async def test_a_none_boto3_refuses_is_a_bad_request_not_a_cached_answer(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    # None inside a typed Converse member is sent as given, and boto3 refuses it.
    with pytest.raises(BadRequestError, match=r"inferenceConfig\.temperature"):
        await model.get_text(HI, inferenceConfig={"temperature": None})
    assert server.count("bedrock") == 0


# -- media ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cached", [True, False])
async def test_five_megabyte_image_bytes_reach_the_wire_once_encoded(
    make_model: MakeModel, server: ProviderServer, cached: bool
) -> None:
    model = make_model(enable_cache=cached)
    data = png(5 * 1024 * 1024)
    messages = [
        {
            "role": "user",
            "content": ["What is this?", {"image": {"format": "png", "source": {"bytes": data}}}],
        }
    ]

    first = await model.generate(messages)
    second = await model.generate(messages)

    sent = server.requests[0].body["messages"][0]["content"][1]["image"]["source"]["bytes"]
    assert base64.b64decode(sent) == data
    assert second.text == first.text
    if not cached:
        assert server.count("bedrock") == 2
        return
    assert (second.cached, server.count("bedrock")) == (True, 1)
    path = entry_file(model, model.cache_key(messages))
    assert path.stat().st_size < 20_000
    stored = path.read_text()
    assert hashlib.sha256(data).hexdigest() in stored
    assert sent[:64] not in stored


@pytest.mark.parametrize(
    "block",
    [
        {"document": {"format": "pdf", "name": "report", "source": {"bytes": b"%PDF-1.7\x00\xff"}}},
        {"video": {"format": "mp4", "source": {"bytes": b"\x00\x00\x00\x18ftypmp42\xff"}}},
        {"audio": {"format": "mp3", "source": {"bytes": b"ID3\x04\x00\xff\xfe"}}},
    ],
    ids=["document", "video", "audio"],
)
async def test_document_video_and_audio_bytes_round_trip(
    make_model: MakeModel, server: ProviderServer, block: dict[str, Any]
) -> None:
    model = make_model()
    (kind,) = block
    messages = [{"role": "user", "content": ["Describe", block]}]

    first = await model.get_text(messages)
    again = await model.get_text(messages)

    sent = server.requests[0].body["messages"][0]["content"][1][kind]
    assert base64.b64decode(sent["source"]["bytes"]) == block[kind]["source"]["bytes"]
    assert {k: v for k, v in sent.items() if k != "source"} == {
        k: v for k, v in block[kind].items() if k != "source"
    }
    assert (again, server.count("bedrock")) == (first, 1)


async def test_base64_text_for_bytes_is_refused_before_boto3_encodes_it_again(
    make_model: MakeModel, server: ProviderServer, raw_client: Any
) -> None:
    model = make_model()
    text = base64.b64encode(png(64)).decode()
    messages = [
        {"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": text}}}]}
    ]

    with pytest.raises(ConfigError, match="raw bytes"):
        await model.get_text(messages)
    # What the raw SDK does with it: encoded a second time, which Bedrock cannot read.
    with pytest.raises(raw_client.exceptions.ValidationException):
        raw_client.converse(modelId=MODEL, messages=messages)


async def test_image_in_a_tool_result_round_trips(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    data = png(1000)
    result = {
        "toolResult": {
            "toolUseId": "t1",
            "content": [{"image": {"format": "png", "source": {"bytes": data}}}],
        }
    }
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Draw"},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
        },
        {"role": "user", "content": [result]},
    ]

    await model.get_text(messages, tools=[WEATHER])

    block = server.requests[-1].body["messages"][2]["content"][0]["toolResult"]["content"][0]
    assert base64.b64decode(block["image"]["source"]["bytes"]) == data


# -- cachePoint ----------------------------------------------------------------------------


def _system(body: dict[str, Any]) -> Any:
    return body["system"]


def _tools(body: dict[str, Any]) -> Any:
    return body["toolConfig"]["tools"]


def _content(body: dict[str, Any]) -> Any:
    return body["messages"][0]["content"]


@pytest.mark.parametrize(
    ("messages", "kwargs", "where", "without"),
    [
        (
            HI,
            {"system": [{"text": "Be brief."}, CACHE_POINT]},
            _system,
            {"system_prompt": "Be brief."},
        ),
        (
            HI,
            {"system_prompt": ["Be brief.", CACHE_POINT]},
            _system,
            {"system_prompt": "Be brief."},
        ),
        (
            [{"role": "system", "content": ["Be brief.", CACHE_POINT]}, *HI],
            {},
            _system,
            {"system_prompt": "Be brief."},
        ),
        (HI, {"tools": [WEATHER, CACHE_POINT]}, _tools, {"tools": [WEATHER]}),
        ([{"role": "user", "content": ["Hi", CACHE_POINT]}], {}, _content, {}),
    ],
    ids=["system", "system_prompt", "system_message", "tools", "messages"],
)
async def test_cache_points_pass_through_and_are_keyed(
    make_model: MakeModel,
    server: ProviderServer,
    messages: Any,
    kwargs: dict[str, Any],
    where: Callable[[dict[str, Any]], Any],
    without: dict[str, Any],
) -> None:
    model = make_model()

    await model.get_text(messages, **kwargs)
    again = await model.generate(messages, **kwargs)

    assert where(server.requests[0].body)[-1] == CACHE_POINT
    assert again.cached
    assert model.cache_key(messages, **kwargs) != model.cache_key(HI, **without)
    assert server.count("bedrock") == 1


# -- nested None -----------------------------------------------------------------------------


async def test_nested_none_in_arguments_results_and_schemas_is_sent(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    schema = {
        "type": "object",
        "properties": {"unit": {"type": ["string", "null"], "default": None}},
    }
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "t1", "name": "w", "arguments": {"unit": None}}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": {"temp": 21, "wind": None}},
    ]
    native_result = [{"toolResult": {"toolUseId": "t2", "content": [{"json": {"rain": None}}]}}]

    await model.get_text(messages, tools=[{"name": "w", "parameters": schema}])
    await model.get_text(
        [*messages[:2], {"role": "user", "content": native_result}],
        tools=[{"name": "w", "parameters": schema}],
    )

    first, second = (r.body for r in server.requests)
    assert first["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"] == schema
    assert first["messages"][1]["content"][0]["toolUse"]["input"] == {"unit": None}
    result = first["messages"][2]["content"][0]["toolResult"]["content"][0]["text"]
    assert json.loads(result) == {"temp": 21, "wind": None}
    assert second["messages"][2]["content"][0]["toolResult"]["content"][0] == {
        "json": {"rain": None}
    }
    assert model.cache_key(messages, tools=[{"name": "w", "parameters": schema}]) != (
        model.cache_key(messages, tools=[{"name": "w", "parameters": {"type": "object"}}])
    )


# -- streams ---------------------------------------------------------------------------------


async def test_streamed_tool_call_yields_no_chunks_on_miss_and_hit(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Oslo", "unit": None}, provider="bedrock")

    miss = [chunk async for chunk in model.stream_text("Weather?", tools=[WEATHER])]
    hit = [chunk async for chunk in model.stream_text("Weather?", tools=[WEATHER])]
    response = await model.generate("Weather?", tools=[WEATHER])

    assert (miss, hit) == ([], [])
    assert response.cached
    assert dict(response.tool_calls[0].arguments) == {"city": "Oslo", "unit": None}
    assert server.count("bedrock") == 1


async def test_text_stream_replays_its_exact_chunks_and_concurrent_streams_share_one_call(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()
    server.latency = 0.2

    async def collect() -> list[str]:
        return [chunk async for chunk in model.stream_text(HI, temperature=0.3)]

    streams = await asyncio.gather(*(collect() for _ in range(4)))
    replay = await collect()

    assert all(chunk for chunk in streams[0])
    assert len(streams[0]) >= 3
    assert all(stream == streams[0] for stream in streams)
    assert replay == streams[0]
    assert server.count("bedrock", "converse_stream") == 1


# -- default_params --------------------------------------------------------------------------


async def test_default_params_reach_converse_and_the_key(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(default_params={"temperature": 0.3, "top_k": 4})
    plain = make_model()

    await model.get_text(HI, temperature=None)
    _ = [chunk async for chunk in model.stream_text(HI, max_tokens=20)]

    first, streamed = (r.body for r in server.requests)
    assert first["inferenceConfig"] == {"temperature": 0.3}
    assert first["additionalModelRequestFields"] == {"top_k": 4}
    assert streamed["inferenceConfig"] == {"temperature": 0.3, "maxTokens": 20}
    assert model.cache_key(HI) == plain.cache_key(HI, temperature=0.3, top_k=4)


# -- embeddings ------------------------------------------------------------------------------


async def test_titan_parameters_and_default_params_reach_the_body(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(TITAN, default_params={"dimensions": 256})
    plain = make_model(TITAN)

    vectors = await model.embed(["a", "b"], normalize=True, embeddingTypes=["float", "binary"])

    assert sorted((r.body for r in server.requests), key=lambda b: b["inputText"]) == [
        {
            "inputText": t,
            "dimensions": 256,
            "normalize": True,
            "embeddingTypes": ["float", "binary"],
        }
        for t in ["a", "b"]
    ]
    assert [len(v) for v in vectors.embeddings] == [256, 256]
    assert model.embedding_cache_key("a") == plain.embedding_cache_key("a", dimensions=256)
    assert plain.embedding_cache_key("a") != plain.embedding_cache_key("a", dimensions=256)
    assert (
        await model.embed(["a", "b"], normalize=True, embeddingTypes=["float", "binary"])
    ).cached


@pytest.mark.parametrize(
    ("model_id", "kwargs", "match"),
    [
        (TITAN, {"dimension": 256}, r"'dimension'.*did you mean 'dimensions'"),
        ("amazon.titan-embed-text-v1", {"dimensions": 256}, r"'dimensions'"),
        (TITAN, {"model": "x"}, r"model id belongs to the constructor"),
        (TITAN, {"timeout": 3}, r"timeout is not a per-call option"),
    ],
)
def test_unknown_embedding_fields_of_known_models_are_refused(
    make_model: MakeModel, model_id: str, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        make_model(model_id).embedding_cache_key("a", **kwargs)


async def test_cohere_batches_in_one_request_with_its_fields_passed_through(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(COHERE)

    first = await model.embed(["one", "two"], input_type="search_document")
    typed = await model.embed(["one"], input_type="search_query", embedding_types=["float"])
    again = await model.embed(["one", "two"], input_type="search_document")

    assert [r.body for r in server.requests] == [
        {"texts": ["one", "two"], "input_type": "search_document"},
        {"texts": ["one"], "input_type": "search_query", "embedding_types": ["float"]},
    ]
    assert [len(v) for v in first.embeddings] == [1024, 1024]
    assert first.usage.input_tokens > 0
    assert len(typed.embeddings) == 1
    assert (again.cached, again.embeddings) == (True, first.embeddings)
