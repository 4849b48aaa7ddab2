"""OpenAI's wire rule with the real SDK: two calls share a key exactly when they put the same
request on the wire (less the unkeyed fields, media as digests); every keyword of
``chat.completions.create`` and ``embeddings.create`` goes where the SDK sends it; anything
else is a ``ConfigError`` with close matches."""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.resources.chat.completions import AsyncCompletions
from openai.resources.embeddings import AsyncEmbeddings

from spark.cache import CacheConfig
from spark.errors import ConfigError
from spark.models import _openai_convert as convert
from spark.models.openai import OpenAIModel
from spark.testing import ProviderServer
from spark.types import ToolSpec

MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
HI = [{"role": "user", "content": "Hi"}]
# Written here, not imported: the test states which fields never change the answer.
UNKEYED = {
    "user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
    "prompt_cache_retention", "prompt_cache_options", "stream", "stream_options",
}  # fmt: skip
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
NEUTRAL_TOOL = {"name": "get_weather", "description": "Weather of a city", "parameters": PARAMETERS}
OPENAI_TOOL = {"type": "function", "function": NEUTRAL_TOOL}
STRICT_TOOL = {"type": "function", "function": {**NEUTRAL_TOOL, "strict": True}}
CUSTOM_TOOL = {"type": "custom", "custom": {"name": "sql", "description": "Run a query"}}
BEDROCK_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather of a city",
        "inputSchema": {"json": PARAMETERS},
    }
}
SCHEMA = {"title": "City", "type": "object", "properties": {"name": {"type": "string"}}}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
OTHER_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 8
WAV = b"RIFF" + bytes(range(200)) * 5
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def user(*parts: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "Look"}, *parts]}]


def image(url: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def audio(data: Any) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def document(data: Any) -> dict[str, Any]:
    return {"type": "file", "file": {"file_data": data, "filename": "a.pdf"}}


def history(call: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    return [
        *HI,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ]


def said(content: Any, calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """An assistant turn with empty ``content`` (``...``: no content key) and ``calls``."""
    turn: dict[str, Any] = {"role": "assistant"}
    if content is not ...:
        turn["content"] = content
    if calls is not None:
        turn["tool_calls"] = calls
    follow = {"role": "tool", "tool_call_id": "call_1", "content": "22 C"} if calls else HI[0]
    return [*HI, turn, follow]


NEUTRAL_CALL = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris", "unit": None}}
OPENAI_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": null}'},
}
TWO_SYSTEMS = [
    {"role": "system", "content": "A"},
    {"role": "system", "content": [{"text": "B"}]},
    *HI,
]

# (case id, messages, keywords). Cases meant to put one request on the wire sit together.
CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("plain", HI, {}),
    ("string", "Hi", {}),
    ("text-parts", [{"role": "user", "content": [{"text": "Hi"}]}], {}),
    ("typed-parts", [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], {}),
    ("n=1", HI, {"n": 1}),
    ("stream-flags", HI, {"stream": True, "stream_options": {"include_usage": False}}),
    ("omit-sentinel", HI, {"temperature": openai.omit}),
    ("user", HI, {"user": "u-42"}),
    ("metadata", HI, {"metadata": {"team": "search"}}),
    ("safety-identifier", HI, {"safety_identifier": "hash-1"}),
    ("prompt-cache-key", HI, {"prompt_cache_key": "k-1", "prompt_cache_retention": "24h"}),
    ("service-tier", HI, {"service_tier": "flex", "store": True}),
    ("transport", HI, {"timeout": 30, "extra_headers": {"x-team": "a"}, "extra_query": {"q": "1"}}),
    ("headers-alias", HI, {"headers": {"x-team": "b"}, "request_timeout": 20}),
    ("unkeyed-in-extra-body", HI, {"extra_body": {"user": "u-7"}}),
    ("temperature", HI, {"temperature": 0.5}),
    ("temperature-extra-body", HI, {"extra_body": {"temperature": 0.5}}),
    ("temperature-int", HI, {"temperature": 1}),
    ("temperature-float", HI, {"temperature": 1.0}),
    ("max-tokens", HI, {"max_tokens": 64}),
    ("max-completion-tokens", HI, {"max_completion_tokens": 64}),
    ("legacy-max-tokens-field", HI, {"extra_body": {"max_tokens": 64}}),
    ("stop-str", HI, {"stop": "END"}),
    ("stop-list", HI, {"stop": ["END"]}),
    ("n=2", HI, {"n": 2}),
    ("n=2-extra-body", HI, {"extra_body": {"n": 2}}),
    ("logprobs", HI, {"logprobs": True, "top_logprobs": 2}),
    ("seed", HI, {"seed": 7}),
    ("frequency-penalty", HI, {"frequency_penalty": 0.5}),
    ("presence-penalty", HI, {"presence_penalty": 0.5}),
    ("reasoning", HI, {"reasoning_effort": "low", "verbosity": "low"}),
    ("top-k-extra-body", HI, {"extra_body": {"top_k": 5}}),
    ("logit-bias", HI, {"logit_bias": {"50256": -100}}),
    ("system-prompt", HI, {"system_prompt": "Be brief."}),
    ("system-message", [{"role": "system", "content": "Be brief."}, *HI], {}),
    ("developer-message", [{"role": "developer", "content": "Be brief."}, *HI], {}),
    ("system-prompt-list", HI, {"system_prompt": ["A", "B"]}),
    ("system-messages", TWO_SYSTEMS, {}),
    ("tool-neutral", HI, {"tools": [NEUTRAL_TOOL]}),
    ("tool-openai", HI, {"tools": [OPENAI_TOOL]}),
    ("tool-bedrock", HI, {"tools": [BEDROCK_TOOL]}),
    ("tool-spec", HI, {"tools": [ToolSpec("get_weather", "Weather of a city", PARAMETERS)]}),
    ("tool-strict", HI, {"tools": [STRICT_TOOL]}),
    ("tool-custom", HI, {"tools": [CUSTOM_TOOL]}),
    ("tools-empty", HI, {"tools": []}),
    ("choice-required", HI, {"tools": [NEUTRAL_TOOL], "tool_choice": "required"}),
    ("choice-any", HI, {"tools": [NEUTRAL_TOOL], "tool_choice": "any"}),
    ("choice-name", HI, {"tools": [NEUTRAL_TOOL], "tool_choice": "get_weather"}),
    ("choice-dict", HI, {"tools": [NEUTRAL_TOOL], "tool_choice": {"name": "get_weather"}}),
    (
        "choice-openai",
        HI,
        {
            "tools": [NEUTRAL_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    ),
    (
        "choice-bedrock",
        HI,
        {"tools": [NEUTRAL_TOOL], "tool_choice": {"tool": {"name": "get_weather"}}},
    ),
    ("parallel-off", HI, {"tools": [NEUTRAL_TOOL], "parallel_tool_calls": False}),
    ("output-schema", HI, {"output_schema": SCHEMA}),
    (
        "response-format-schema",
        HI,
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "City", "schema": SCHEMA},
            }
        },
    ),
    ("json-object", HI, {"response_format": {"type": "json_object"}}),
    ("call-neutral", history(NEUTRAL_CALL, "22 C"), {}),
    ("call-openai", history(OPENAI_CALL, "22 C"), {}),
    ("result-data", history(OPENAI_CALL, {"temp": 22, "wind": None}), {}),
    ("result-json-text", history(OPENAI_CALL, '{"temp": 22, "wind": null}'), {}),
    ("call-content-none", said(None, [OPENAI_CALL]), {}),
    ("call-content-left-out", said(..., [OPENAI_CALL]), {}),
    ("said-empty", said("", None), {}),
    ("said-none", said(None, None), {}),
    ("said-none-no-calls", said(None, []), {}),
    ("image-data-url", user(image(f"data:image/png;base64,{b64(PNG)}")), {}),
    ("image-bytes", user(image(PNG)), {}),
    ("image-other", user(image(OTHER_PNG)), {}),
    ("image-https", user(image("https://example.com/cat.png")), {}),
    ("audio-base64", user(audio(b64(WAV))), {}),
    ("audio-bytes", user(audio(WAV)), {}),
    ("file-data-url", user(document(f"data:application/pdf;base64,{b64(PDF)}")), {}),
    ("file-bytes", user(document(PDF)), {}),
    ("web-search", HI, {"web_search_options": {"search_context_size": "low"}}),
    ("prediction", HI, {"prediction": {"type": "content", "content": "Hello"}}),
]


def on_the_wire(body: dict[str, Any]) -> Any:
    """A recorded body less the unkeyed fields, base64 media as the SHA-256 of its bytes."""
    return digested({name: value for name, value in body.items() if name not in UNKEYED})


def digested(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: digested(item) for name, item in value.items()}
    if isinstance(value, list):
        return [digested(item) for item in value]
    if isinstance(value, str) and len(value) > 256:
        prefix, _, payload = value.rpartition(",")
        try:
            raw = base64.b64decode(payload, validate=True)
        except binascii.Error:
            return value
        return f"{prefix}sha256:{hashlib.sha256(raw).hexdigest()}"
    return value


MakeModel = Callable[..., OpenAIModel]


@pytest.fixture
def make_model(models: Callable[..., Any]) -> MakeModel:
    """OpenAIModels on the local server (``tests/models/conftest.py``: ``models``)."""
    return lambda model_id=MODEL, **options: models("openai", model_id, **options)


# -- the wire rule ----------------------------------------------------------------------------


async def test_keys_are_equal_exactly_when_the_wire_bodies_are(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)
    keys: dict[str, str] = {}
    wires: dict[str, Any] = {}
    for name, messages, kwargs in CASES:
        keys[name] = model.cache_key(messages, **kwargs)
        await model.generate(messages, **kwargs)
        wires[name] = on_the_wire(server.requests[-1].body)

    wrong = [
        (a, b, "same key, different wire" if keys[a] == keys[b] else "same wire, different key")
        for a, b in itertools.combinations(keys, 2)
        if (keys[a] == keys[b]) != (wires[a] == wires[b])
    ]
    assert wrong == []
    assert server.count(provider="openai") == len(CASES)
    groups = {key: [n for n in keys if keys[n] == key] for key in keys.values()}
    shared = sorted(group for group in groups.values() if len(group) > 1)
    # The cases meant to share one request do (and the check above is not vacuous).
    assert [
        "plain", "string", "text-parts", "typed-parts", "n=1", "stream-flags", "omit-sentinel",
        "user", "metadata", "safety-identifier", "prompt-cache-key", "service-tier", "transport",
        "headers-alias", "unkeyed-in-extra-body", "tools-empty",
    ] in shared  # fmt: skip
    for group in [
        ["temperature", "temperature-extra-body"],
        ["temperature-int", "temperature-float"],
        ["max-tokens", "max-completion-tokens"],
        ["stop-str", "stop-list"],
        ["n=2", "n=2-extra-body"],
        ["system-prompt", "system-message"],
        ["system-prompt-list", "system-messages"],
        ["tool-neutral", "tool-openai", "tool-bedrock", "tool-spec"],
        ["choice-required", "choice-any"],
        ["choice-name", "choice-dict", "choice-openai", "choice-bedrock"],
        ["output-schema", "response-format-schema"],
        ["call-neutral", "call-openai", "call-content-none", "call-content-left-out"],
        ["said-empty", "said-none", "said-none-no-calls"],  # (docs/models.md, "Messages")
        ["result-data", "result-json-text"],
        ["image-data-url", "image-bytes"],
        ["audio-base64", "audio-bytes"],
        ["file-data-url", "file-bytes"],
    ]:
        assert group in shared
    assert len(groups) == len(CASES) - sum(len(group) - 1 for group in shared)
    assert len(groups) > 30


async def test_the_stored_request_is_the_keyed_body(
    make_model: MakeModel, server: ProviderServer, cache_config: CacheConfig
) -> None:
    model = make_model()

    await model.get_text(HI, temperature=0.5, user="u-1", extra_body={"top_k": 2})

    (path,) = Path(cache_config.resolved_dir).rglob("*.json")
    stored = json.loads(path.read_text())["payload"]["request"]
    assert stored["body"] == {"messages": HI, "temperature": 0.5, "top_k": 2}
    assert (stored["model"], stored["kind"]) == (MODEL, "chat")
    assert server.requests[-1].body["user"] == "u-1"


# -- native fields go where the SDK sends them ------------------------------------------------

# keyword -> (value given, the body field it sets, the value there, keyed?)
NATIVE: dict[str, tuple[Any, str, Any, bool]] = {
    "audio": ({"voice": "alloy", "format": "wav"}, "audio", {"voice": "alloy", "format": "wav"}, True),
    "frequency_penalty": (0.25, "frequency_penalty", 0.25, True),
    "function_call": ("auto", "function_call", "auto", True),
    "functions": ([{"name": "f", "parameters": {}}], "functions", [{"name": "f", "parameters": {}}], True),
    "logit_bias": ({"42": 3}, "logit_bias", {"42": 3}, True),
    "logprobs": (True, "logprobs", True, True),
    "max_completion_tokens": (32, "max_completion_tokens", 32, True),
    "max_tokens": (32, "max_completion_tokens", 32, True),
    "metadata": ({"team": "a"}, "metadata", {"team": "a"}, False),
    "modalities": (["text"], "modalities", ["text"], True),
    "moderation": ({"model": "omni"}, "moderation", {"model": "omni"}, True),
    "n": (3, "n", 3, True),
    "parallel_tool_calls": (False, "parallel_tool_calls", False, True),
    "prediction": ({"type": "content", "content": "x"}, "prediction", {"type": "content", "content": "x"}, True),
    "presence_penalty": (0.25, "presence_penalty", 0.25, True),
    "prompt_cache_key": ("k", "prompt_cache_key", "k", False),
    "prompt_cache_options": ({"mode": "implicit"}, "prompt_cache_options", {"mode": "implicit"}, False),
    "prompt_cache_retention": ("24h", "prompt_cache_retention", "24h", False),
    "reasoning_effort": ("high", "reasoning_effort", "high", True),
    "response_format": ({"type": "json_object"}, "response_format", {"type": "json_object"}, True),
    "safety_identifier": ("s", "safety_identifier", "s", False),
    "seed": (11, "seed", 11, True),
    "service_tier": ("priority", "service_tier", "priority", False),
    "stop": (["a", "b"], "stop", ["a", "b"], True),
    "store": (False, "store", False, False),
    "temperature": (0.3, "temperature", 0.3, True),
    "tool_choice": ("none", "tool_choice", "none", True),
    "tools": ([STRICT_TOOL], "tools", [STRICT_TOOL], True),
    "top_logprobs": (3, "top_logprobs", 3, True),
    "top_p": (0.9, "top_p", 0.9, True),
    "user": ("u", "user", "u", False),
    "verbosity": ("high", "verbosity", "high", True),
    "web_search_options": ({}, "web_search_options", {}, True),
    "extra_body": ({"top_k": 3, "nested": {"a": None}}, "top_k", 3, True),
}  # fmt: skip
# Keywords that are not a body field of their own.
NOT_BODY_FIELDS = {"messages", "model", "stream", "stream_options", "extra_headers", "extra_query", "timeout"}  # fmt: skip


def test_the_keyword_sets_are_the_installed_sdks() -> None:
    chat = set(inspect.signature(AsyncCompletions.create).parameters) - {"self"}
    embeddings = set(inspect.signature(AsyncEmbeddings.create).parameters) - {"self"}

    assert chat == convert.CHAT_CREATE_KEYWORDS, "the SDK changed: update the table and docs"
    assert embeddings == convert.EMBEDDINGS_CREATE_KEYWORDS
    assert set(NATIVE) | NOT_BODY_FIELDS == chat, "every keyword is covered below"


@pytest.mark.parametrize("keyword", sorted(NATIVE))
async def test_each_chat_keyword_goes_where_the_sdk_sends_it(
    keyword: str, make_model: MakeModel, server: ProviderServer
) -> None:
    given, field, expected, keyed = NATIVE[keyword]
    model = make_model(enable_cache=False)

    await model.get_text(HI, **{keyword: given})

    body = server.requests[-1].body
    assert body[field] == expected
    assert "extra_body" not in body
    assert (model.cache_key(HI, **{keyword: given}) != model.cache_key(HI)) is keyed


async def test_transport_options_reach_the_request_not_the_body(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(enable_cache=False)

    await model.get_text(HI, extra_headers={"X-Team": "a"}, extra_query={"q": "1"}, timeout=9)
    await model.get_text(HI, headers={"X-Team": "b"})

    first, second = server.requests
    assert first.headers["x-team"] == "a"
    assert second.headers["x-team"] == "b"
    assert first.body == second.body == {"model": MODEL, "messages": HI}


async def test_embedding_keywords_go_where_the_sdk_sends_them(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(EMBED_MODEL, enable_cache=False)
    keys = {
        "plain": model.embedding_cache_key("a"),
        "user": model.embedding_cache_key("a", user="u", timeout=5, headers={"x": "1"}),
        "encoding": model.embedding_cache_key("a", encoding_format="float"),
        "dimensions": model.embedding_cache_key("a", dimensions=8),
        "dimensions-extra-body": model.embedding_cache_key("a", extra_body={"dimensions": 8}),
    }

    await model.embed("a", dimensions=8, user="u", extra_body={"x_field": [None]})

    body = server.requests[-1].body
    assert (body["dimensions"], body["user"], body["x_field"]) == (8, "u", [None])
    assert body["encoding_format"] == "base64"  # the SDK's choice (it decodes the vectors)
    assert keys["plain"] == keys["user"] == keys["encoding"]
    assert keys["dimensions"] == keys["dimensions-extra-body"] != keys["plain"]


# -- refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "suggestion"),
    [
        ("temprature", "'temperature'"),
        ("max_token", "'max_tokens'"),
        ("response_schema", "'response_format'"),
        ("top_k", "'top_p'"),
    ],
)
async def test_an_unknown_keyword_is_a_config_error_with_close_matches(
    keyword: str, suggestion: str, make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model()

    with pytest.raises(ConfigError, match=f"unknown parameter '{keyword}'") as caught:
        await model.get_text(HI, **{keyword: 1})

    assert suggestion in str(caught.value)
    assert "extra_body" in str(caught.value)
    with pytest.raises(ConfigError, match=keyword):
        model.cache_key(HI, **{keyword: 1})
    assert server.count(provider="openai") == 0


async def test_an_unknown_embedding_keyword_is_a_config_error(
    make_model: MakeModel, server: ProviderServer
) -> None:
    model = make_model(EMBED_MODEL)

    with pytest.raises(ConfigError, match=r"'dimension'.*'dimensions'"):
        await model.embed("a", dimension=8)
    with pytest.raises(ConfigError, match="'temperature'"):
        await model.embed("a", temperature=0.5)
    assert server.count(provider="openai") == 0


async def test_a_per_call_model_is_refused(make_model: MakeModel, server: ProviderServer) -> None:
    model = make_model()
    embedder = make_model(EMBED_MODEL)
    refused = "model id belongs to the constructor"

    with pytest.raises(ConfigError, match=refused):
        await model.get_text(HI, model="gpt-4o")
    with pytest.raises(ConfigError, match=refused):
        model.cache_key(HI, model="gpt-4o")
    with pytest.raises(ConfigError, match=refused):
        await embedder.embed("a", model="text-embedding-3-large")
    assert server.count(provider="openai") == 0


@pytest.mark.parametrize(
    "option", ["api_key", "organization", "project", "base_url", "max_retries"]
)
def test_credentials_and_client_options_per_call_are_refused(
    option: str, make_model: MakeModel
) -> None:
    with pytest.raises(ConfigError, match=f"{option} is not a per-call option of openai"):
        make_model().cache_key(HI, **{option: "x"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extra_body": {"model": "gpt-4o"}}, "extra_body may not set model"),
        ({"extra_body": {"stream": True}}, "extra_body may not set stream"),
        ({"extra_body": ["top_k"]}, "extra_body must be a dict"),
        ({"max_tokens": 10, "max_completion_tokens": 20}, "give one of them"),
        ({"output_schema": SCHEMA, "response_format": {"type": "json_object"}}, "give one"),
        ({"tools": [{"name": "f", "parameter": {}}]}, "unknown tool field"),
        ({"tools": [{"description": "no name"}]}, "a tool needs a name"),
        ({"system_prompt": [1]}, "system_prompt must be a string"),
    ],
)
def test_contradictions_and_malformed_values_are_config_errors(
    kwargs: dict[str, Any], message: str, make_model: MakeModel
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_model().cache_key(HI, **kwargs)


def test_media_bytes_of_an_unknown_type_are_refused(make_model: MakeModel) -> None:
    with pytest.raises(ConfigError, match="give a data: URL"):
        make_model().cache_key(user(image(b"not an image")))
