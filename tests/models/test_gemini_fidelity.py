"""Gemini fidelity (docs/models.md, "Gemini"): every request field reaches the wire where the real
google-genai SDK puts it, media bytes round trip, built-in tools, several candidates and
logprobs on miss and hit, streams that keep candidates apart, and embeddings."""

from __future__ import annotations

import base64
import enum
import hashlib
import typing
from pathlib import Path
from typing import Any

import pydantic
import pytest
from google.genai import types

from spark.cache import CacheConfig
from spark.errors import ConfigError
from spark.models import _gemini_fields as gemini_fields
from spark.models import _gemini_keyed as gemini_keyed
from spark.models.gemini import GeminiModel
from spark.testing import ProviderServer

MODEL = "gemini-2.0-flash"
EMBED_MODEL = "gemini-embedding-001"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {"name": "get_weather", "description": "Weather", "parameters": WEATHER}


@pytest.fixture
def make_model(server: ProviderServer, cache_config: CacheConfig) -> Any:
    def make(model_id: str = MODEL, **options: Any) -> GeminiModel:
        options.setdefault("api_key", "test-key")
        options.setdefault("base_url", server.gemini_base_url)
        options.setdefault("max_retries", 0)
        options.setdefault("cache_config", cache_config)
        return GeminiModel(model_id, **options)

    return make


def last_body(server: ProviderServer) -> dict[str, Any]:
    return server.requests[-1].body


# -- the SDK's own field lists ----------------------------------------------------------------


def test_config_field_sets_are_the_installed_sdks() -> None:
    assert set(types.GenerateContentConfig.model_fields) == gemini_fields.CONFIG_FIELDS
    assert set(types.EmbedContentConfig.model_fields) == gemini_fields.EMBED_CONFIG_FIELDS


def _reachable_models() -> dict[str, type[pydantic.BaseModel]]:
    roots: list[type[pydantic.BaseModel]] = [
        types.GenerateContentConfig, types.Content, types.Part, types.Tool,
        types.EmbedContentConfig,
    ]  # fmt: skip
    seen: dict[str, type[pydantic.BaseModel]] = {}
    while roots:
        model = roots.pop()
        if model.__name__ in seen:
            continue
        seen[model.__name__] = model
        for name, field in model.model_fields.items():
            if name != "http_options":  # transport: never keyed
                roots.extend(c for c in _components(field.annotation) if _is_model(c))
    return seen


def _components(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is None:
        return [annotation]
    return [c for arg in typing.get_args(annotation) for c in _components(arg)]


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, pydantic.BaseModel)


def test_opaque_and_enum_field_tables_match_the_sdks_types() -> None:
    opaque, enums = set(), set()
    for model in _reachable_models().values():
        for name, field in model.model_fields.items():
            parts = _components(field.annotation)
            text = repr(field.annotation)
            if typing.Any in parts or ("dict[" in text and not any(map(_is_model, parts))):
                opaque.add(name)
            if any(isinstance(p, type) and issubclass(p, enum.Enum) for p in parts):
                enums.add(name)

    assert opaque == gemini_keyed.OPAQUE_FIELDS
    assert enums == gemini_keyed.ENUM_FIELDS


# -- native fields go where the SDK sends them ------------------------------------------------

# (keywords, where the SDK puts it: top level or generationConfig, the wire field, its value)
PLACEMENTS: list[tuple[dict[str, Any], str, str, Any]] = [
    ({"temperature": 0.25}, "generationConfig", "temperature", 0.25),
    ({"top_p": 0.5}, "generationConfig", "topP", 0.5),
    ({"topK": 3}, "generationConfig", "topK", 3.0),
    ({"candidate_count": 2}, "generationConfig", "candidateCount", 2),
    ({"max_output_tokens": 9}, "generationConfig", "maxOutputTokens", 9),
    ({"stopSequences": ["x"]}, "generationConfig", "stopSequences", ["x"]),
    ({"response_logprobs": True}, "generationConfig", "responseLogprobs", True),
    ({"logprobs": 3}, "generationConfig", "logprobs", 3),
    ({"presence_penalty": 0.5}, "generationConfig", "presencePenalty", 0.5),
    ({"frequencyPenalty": 0.5}, "generationConfig", "frequencyPenalty", 0.5),
    ({"seed": 11}, "generationConfig", "seed", 11),
    ({"response_mime_type": "text/x.enum"}, "generationConfig", "responseMimeType", "text/x.enum"),
    (
        {"response_schema": {"type": "STRING"}},
        "generationConfig",
        "responseSchema",
        {"type": "STRING"},
    ),
    ({"response_json_schema": WEATHER}, "generationConfig", "responseJsonSchema", WEATHER),
    ({"response_modalities": ["TEXT"]}, "generationConfig", "responseModalities", ["TEXT"]),
    (
        {"media_resolution": "MEDIA_RESOLUTION_LOW"},
        "generationConfig",
        "mediaResolution",
        "MEDIA_RESOLUTION_LOW",
    ),
    (
        {"speech_config": "Kore"},
        "generationConfig",
        "speechConfig",
        {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}},
    ),
    (
        {"thinking_config": {"thinkingLevel": "low"}},
        "generationConfig",
        "thinkingConfig",
        {"thinking_level": "LOW"},
    ),
    (
        {"image_config": {"aspect_ratio": "16:9"}},
        "generationConfig",
        "imageConfig",
        {"aspectRatio": "16:9"},
    ),
    (
        {"enable_enhanced_civic_answers": True},
        "generationConfig",
        "enableEnhancedCivicAnswers",
        True,
    ),
    (
        {"audio_transcription_config": {"language_codes": ["en"]}},
        "generationConfig",
        "audioTranscriptionConfig",
        {"language_codes": ["en"]},
    ),
    (
        {"system_instruction": "Be brief."},
        "",
        "systemInstruction",
        {"parts": [{"text": "Be brief."}], "role": "user"},
    ),
    (
        {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]},
        "",
        "safetySettings",
        [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    ),
    ({"tools": [{"url_context": {}}]}, "", "tools", [{"urlContext": {}}]),
    (
        {"tools": [TOOL], "tool_config": {"function_calling_config": {"mode": "NONE"}}},
        "",
        "toolConfig",
        {"functionCallingConfig": {"mode": "NONE"}},
    ),
    ({"cached_content": "c-1"}, "", "cachedContent", "cachedContents/c-1"),
    ({"continuation_token": b"token"}, "", "continuationToken", "dG9rZW4="),
    ({"labels": {"team": "a"}}, "", "labels", {"team": "a"}),
    ({"service_tier": "flex"}, "", "serviceTier", "flex"),
    ({"store": True}, "", "store", True),
]
UNKEYED = {"labels", "serviceTier", "store"}


@pytest.mark.parametrize(
    ("kwargs", "where", "field", "value"), PLACEMENTS, ids=lambda v: str(v)[:40]
)
async def test_native_fields_reach_the_wire_where_the_sdk_puts_them(
    make_model: Any,
    server: ProviderServer,
    kwargs: dict[str, Any],
    where: str,
    field: str,
    value: Any,
) -> None:
    model = make_model(enable_cache=False)

    await model.generate("Hi", **kwargs)

    body = last_body(server)
    sent = body.get(where, {}) if where else body
    assert sent[field] == value
    keyed = model.cache_key("Hi", **kwargs) != model.cache_key("Hi")
    assert keyed == (field not in UNKEYED)


async def test_client_side_fields_are_not_sent_and_http_options_are_transport(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    kwargs = {
        "automatic_function_calling": {"disable": True},
        "http_options": {"headers": {"x-trace": "t-1"}, "timeout": 30_000},
    }

    await model.generate("Hi", **kwargs)

    request = server.requests[-1]
    assert request.headers["x-trace"] == "t-1"
    assert "automaticFunctionCalling" not in str(request.body)
    assert model.cache_key("Hi", **kwargs) == model.cache_key("Hi")
    off = {"automatic_continuation": False}
    assert model.cache_key("Hi", **off) != model.cache_key("Hi")  # it changes the answer


async def test_extra_body_is_merged_by_the_sdk_and_keyed(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    extra = {"http_options": {"extra_body": {"generationConfig": {"topK": 2}}}}

    await model.generate("Hi", temperature=0.5, **extra)

    assert last_body(server)["generationConfig"] == {"temperature": 0.5, "topK": 2}
    assert model.cache_key("Hi", temperature=0.5, **extra) != model.cache_key("Hi", temperature=0.5)


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temprature": 0.5}, "unknown parameter 'temprature'.*'temperature'"),
        ({"maxOutputToken": 5}, "did you mean.*'maxOutputTokens'"),
        ({"safety_setting": []}, "'safety_settings'"),
        ({"model": "gemini-2.5-pro"}, "model id belongs to the constructor"),
        ({"modelId": "gemini-2.5-pro"}, "model id belongs to the constructor"),
        ({"api_key": "k"}, "api_key is not a per-call option of gemini"),
        ({"base_url": "http://x"}, "base_url is not a per-call option of gemini"),
        ({"http_options": {"base_url": "http://x"}}, "http_options.base_url is not a per-call"),
        ({"routing_config": {}}, "routing_config is only supported on Vertex AI"),
        ({"should_return_http_response": True}, "raw HTTP response"),
        ({"top_p": 0.5, "topP": 0.5}, "top_p is given twice"),
        ({"max_tokens": 5, "max_output_tokens": 5}, "max_output_tokens is given twice"),
        ({"system_prompt": "A", "system_instruction": "B"}, "give the system text once"),
        ({"thinking_config": {"thinking_budget": 1, "thinkingBudget": 2}}, "given twice"),
    ],
)
async def test_what_no_spelling_accepts_is_a_config_error(
    make_model: Any, server: ProviderServer, kwargs: dict[str, Any], message: str
) -> None:
    model = make_model()

    with pytest.raises(ConfigError, match=message):
        await model.get_text("Hi", **kwargs)
    with pytest.raises(ConfigError, match=message):
        model.cache_key("Hi", **kwargs)
    assert server.count() == 0


# -- media ------------------------------------------------------------------------------------

FIVE_MB = bytes(range(256)) * (5 * 4096) + b"\x00tail\xff"


def _sent_image(server: ProviderServer) -> bytes:
    part = last_body(server)["contents"][0]["parts"][1]["inlineData"]
    assert part["mime_type"] == "image/png"
    return base64.urlsafe_b64decode(part["data"])


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("spelling", ["inline_data", "inlineData", "Part.from_bytes"])
async def test_media_bytes_round_trip_once_encoded_and_stored_as_a_digest(
    make_model: Any, server: ProviderServer, tmp_path: Path, enabled: bool, spelling: str
) -> None:
    model = make_model(enable_cache=enabled)
    if spelling == "Part.from_bytes":
        image: Any = types.Part.from_bytes(data=FIVE_MB, mime_type="image/png")
    else:
        mime = "mime_type" if spelling == "inline_data" else "mimeType"
        image = {spelling: {mime: "image/png", "data": FIVE_MB}}
    messages = [{"role": "user", "content": [{"text": "Describe"}, image]}]

    miss = await model.generate(messages)
    again = await model.generate(messages)

    assert _sent_image(server) == FIVE_MB  # base64 once: the exact bytes arrive
    assert again.text == miss.text
    files = list((tmp_path / "llm-cache").rglob("*.json"))
    if not enabled:
        assert server.count() == 2
        assert files == []
        return
    assert (server.count(), again.cached) == (1, True)
    (entry,) = files
    assert entry.stat().st_size < 16_384
    assert hashlib.sha256(FIVE_MB).hexdigest() in entry.read_text()


async def test_file_data_passes_through(make_model: Any, server: ProviderServer) -> None:
    part = {"file_data": {"file_uri": "https://files.test/a.pdf", "mime_type": "application/pdf"}}

    await make_model().get_text([{"role": "user", "content": [part, "Summarize"]}])

    assert last_body(server)["contents"][0]["parts"][0] == {
        "fileData": {"file_uri": "https://files.test/a.pdf", "mime_type": "application/pdf"}
    }


# -- built-in tools ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "wire"),
    [
        ({"google_search": {}}, {"googleSearch": {}}),
        ({"code_execution": {}}, {"codeExecution": {}}),
        ({"url_context": {}}, {"urlContext": {}}),
        (types.Tool(google_search=types.GoogleSearch()), {"googleSearch": {}}),
    ],
)
async def test_built_in_tools_pass_through_and_are_keyed(
    make_model: Any, server: ProviderServer, tool: Any, wire: dict[str, Any]
) -> None:
    model = make_model()

    first = await model.generate("Search for it", tools=[tool, TOOL])
    second = await model.generate("Search for it", tools=[tool, TOOL])

    tools = last_body(server)["tools"]
    assert tools[0] == wire
    assert tools[1]["functionDeclarations"][0]["name"] == "get_weather"
    assert (second.cached, second.text, server.count()) == (True, first.text, 1)
    names = ("google_search", "code_execution", "url_context")
    keys = [model.cache_key("Q", tools=[{name: {}}]) for name in names]
    assert len({*keys, model.cache_key("Q")}) == 4
    assert model.cache_key("Q", tools=[tool]) in keys


# -- several candidates and logprobs ----------------------------------------------------------


async def test_every_candidate_and_its_logprobs_are_returned_and_cached(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()
    kwargs = {"candidate_count": 3, "response_logprobs": True, "logprobs": 2}

    miss = await model.generate("Three ways", **kwargs)
    hit = await model.generate("Three ways", **kwargs)

    assert last_body(server)["generationConfig"]["candidateCount"] == 3
    assert len(miss.choices) == 3
    assert len({c.text for c in miss.choices}) == 3
    assert miss.text == miss.choices[0].text
    for choice in miss.choices:
        assert choice.logprobs["chosen_candidates"]
        assert len(choice.logprobs["top_candidates"][0]["candidates"]) == 2
    assert miss.logprobs == miss.choices[0].logprobs
    assert (hit.cached, hit.choices, hit.logprobs) == (True, miss.choices, miss.logprobs)
    assert server.count() == 1


async def test_a_stream_keeps_candidates_apart_and_replays_exactly(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()
    plain = await make_model(enable_cache=False).generate(
        "Two stories", n=2, response_logprobs=True
    )

    chunks = [c async for c in model.stream_text("Two stories", n=2, response_logprobs=True)]
    replay = [c async for c in model.stream_text("Two stories", n=2, response_logprobs=True)]
    stored = await model.generate("Two stories", n=2, response_logprobs=True)

    assert "".join(chunks) == plain.choices[0].text
    assert replay == chunks
    assert stored.cached
    assert [c.text for c in stored.choices] == [c.text for c in plain.choices]
    assert [c.logprobs for c in stored.choices] == [c.logprobs for c in plain.choices]
    assert server.count("gemini", "generate_stream") == 1


async def test_a_streamed_tool_call_replays_no_chunk(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model()
    server.queue_tool_call("get_weather", {"city": "Oslo"}, provider="gemini")

    first = [c async for c in model.stream_text("Weather?", tools=[TOOL])]
    second = [c async for c in model.stream_text("Weather?", tools=[TOOL])]

    assert first == second == []
    assert server.count() == 1


# -- None values the caller sends are sent ----------------------------------------------------


async def test_nested_none_in_tool_arguments_results_and_schemas_is_sent(
    make_model: Any, server: ProviderServer
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "default": None}}}
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c-7", "name": "get_weather", "arguments": {"city": None}}],
        },
        {"role": "tool", "tool_call_id": "c-7", "content": {"temp": None, "unit": "C"}},
    ]

    await make_model().get_text(
        messages, tools=[{**TOOL, "parameters": schema}], response_json_schema={"default": None}
    )

    body = last_body(server)
    assert body["contents"][1]["parts"][0]["functionCall"]["args"] == {"city": None}
    response = body["contents"][2]["parts"][0]["functionResponse"]["response"]
    assert response == {"result": {"temp": None, "unit": "C"}}
    assert body["tools"][0]["functionDeclarations"][0]["parameters_json_schema"] == schema
    assert body["generationConfig"]["responseJsonSchema"] == {"default": None}


# -- model ids --------------------------------------------------------------------------------


async def test_models_prefix_shares_the_key_and_the_entry_folder(
    make_model: Any, server: ProviderServer, tmp_path: Path
) -> None:
    prefixed, bare = make_model(f"models/{MODEL}"), make_model(MODEL)

    first = await prefixed.get_text("Same model")
    second = await bare.generate("Same model")

    assert prefixed.cache_key("Same model") == bare.cache_key("Same model")
    assert (second.cached, second.text, server.count()) == (True, first, 1)
    assert [p.parent.name for p in (tmp_path / "llm-cache").rglob("*.json")] == [MODEL]


# -- default parameters and embeddings --------------------------------------------------------


async def test_default_params_reach_every_call_kind(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model(default_params={"temperature": 0.1, "top_k": 2})

    await model.get_text("Hi")
    assert last_body(server)["generationConfig"] == {"temperature": 0.1, "topK": 2.0}
    _ = [c async for c in model.stream_text("Stream")]
    assert last_body(server)["generationConfig"] == {"temperature": 0.1, "topK": 2.0}
    assert model.cache_key("Hi") == model.cache_key("Hi", temperature=0.1, top_k=2)

    embedder = make_model(EMBED_MODEL, default_params={"task_type": "RETRIEVAL_QUERY"})
    await embedder.embed(["a"])
    assert last_body(server)["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


async def test_embedding_fields_reach_the_wire_and_are_keyed_by_it(
    make_model: Any, server: ProviderServer
) -> None:
    model = make_model(EMBED_MODEL)
    texts = ["alpha", "beta"]

    response = await model.embed(texts, task_type="RETRIEVAL_DOCUMENT", title="Doc", dimensions=8)

    requests = last_body(server)["requests"]
    assert [r["content"] for r in requests] == [{"parts": [{"text": t}]} for t in texts]
    for request in requests:
        assert (request["taskType"], request["title"], request["outputDimensionality"]) == (
            "RETRIEVAL_DOCUMENT",
            "Doc",
            8,
        )
    assert {len(v) for v in response.embeddings} == {8}
    same = {
        model.embedding_cache_key(texts, dimensions=8),
        model.embedding_cache_key(texts, output_dimensionality=8),
        model.embedding_cache_key(texts, outputDimensionality=8, timeout=5),
    }
    assert len(same) == 1
    assert model.embedding_cache_key(texts, dimensions=8, taskType="CLUSTERING") not in same
    with pytest.raises(ConfigError, match="did you mean 'task_type'"):
        model.embedding_cache_key(texts, task_typ="X")
    with pytest.raises(ConfigError, match="mime_type is only supported on Vertex AI"):
        model.embedding_cache_key(texts, mime_type="text/plain")
    with pytest.raises(ConfigError, match="output_dimensionality is given twice"):
        model.embedding_cache_key(texts, dimensions=8, output_dimensionality=8)
