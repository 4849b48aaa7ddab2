"""The wire rule for Gemini keys (docs/models.md, "Keys"): over many spellings and parameters,
sent with the real google-genai SDK to the local server with the cache off, two calls share a
key exactly when the SDK put the same request on the wire (less the unkeyed fields)."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from google.genai import types

from spark.models.gemini import GeminiModel
from spark.testing import ProviderServer

MODEL = "gemini-2.0-flash"
# Sent, but they cannot change the answer: not keyed (docs/models.md, "Gemini").
UNKEYED = ("labels", "serviceTier", "store")
IMAGE = b"\x89PNG\r\n\x1a\n\x00\xff-image-bytes"
OTHER_IMAGE = b"\x89PNG\r\n\x1a\n\x00\xff-other-bytes"
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
NEUTRAL = {"name": "get_weather", "description": "Weather", "parameters": WEATHER}
OPENAI = {"type": "function", "function": NEUTRAL}
BEDROCK = {
    "toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json": WEATHER}}
}
NATIVE_FUNCTIONS = {
    "functionDeclarations": [
        {"name": "get_weather", "description": "Weather", "parametersJsonSchema": WEATHER}
    ]
}
HARASSMENT = "HARM_CATEGORY_HARASSMENT"


def user(*parts: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


def tool_history(arguments: Any, result: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_0_get_weather", "name": "get_weather", **arguments}],
        },
        {"role": "tool", "tool_call_id": "call_0_get_weather", "content": result},
    ]


# (name, model id, messages, keywords): one call each.
CASES: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("plain", MODEL, "Hi", {}),
    ("message", MODEL, [{"role": "user", "content": "Hi"}], {}),
    ("parts", MODEL, user({"text": "Hi"}), {}),
    ("typed parts", MODEL, user({"type": "text", "text": "Hi"}), {}),
    ("gemini parts", MODEL, [{"role": "user", "parts": [{"text": "Hi"}]}], {}),
    ("sdk content", MODEL, [types.Content(role="user", parts=[types.Part(text="Hi")])], {}),
    ("models/ prefix", f"models/{MODEL}", "Hi", {}),
    ("other model", "gemini-2.5-flash", "Hi", {}),
    ("n=1", MODEL, "Hi", {"n": 1}),
    ("candidate_count=1", MODEL, "Hi", {"candidate_count": 1}),
    ("labels", MODEL, "Hi", {"labels": {"team": "search"}}),
    ("service tier and store", MODEL, "Hi", {"service_tier": "flex", "store": False}),
    ("transport", MODEL, "Hi", {"timeout": 30, "headers": {"x-team": "a"}}),
    ("http_options", MODEL, "Hi", {"http_options": {"timeout": 30000}}),
    ("afc", MODEL, "Hi", {"automatic_function_calling": {"disable": True}}),
    ("continuation on", MODEL, "Hi", {"automatic_continuation": True}),
    ("other text", MODEL, "Hello", {}),
    ("system_prompt", MODEL, "Hi", {"system_prompt": "Be brief."}),
    ("system message", MODEL, [{"role": "system", "content": "Be brief."}, *user("Hi")], {}),
    ("system_instruction text", MODEL, "Hi", {"system_instruction": "Be brief."}),
    ("temperature", MODEL, "Hi", {"temperature": 0.5}),
    ("temperature + labels", MODEL, "Hi", {"temperature": 0.5, "labels": {"a": "b"}}),
    ("temperature=1", MODEL, "Hi", {"temperature": 1}),
    ("temperature=1.0", MODEL, "Hi", {"temperature": 1.0}),
    ("top_p", MODEL, "Hi", {"top_p": 0.9}),
    ("topP", MODEL, "Hi", {"topP": 0.9}),
    ("top_k", MODEL, "Hi", {"top_k": 4}),
    ("max_tokens", MODEL, "Hi", {"max_tokens": 20}),
    ("max_output_tokens", MODEL, "Hi", {"max_output_tokens": 20}),
    ("maxOutputTokens", MODEL, "Hi", {"maxOutputTokens": 20}),
    ("stop", MODEL, "Hi", {"stop": "END"}),
    ("stop_sequences", MODEL, "Hi", {"stop_sequences": ["END"]}),
    ("seed", MODEL, "Hi", {"seed": 7}),
    ("seed float", MODEL, "Hi", {"seed": 7.0}),
    ("n=2", MODEL, "Hi", {"n": 2}),
    ("candidate_count=2", MODEL, "Hi", {"candidate_count": 2}),
    ("candidateCount=3", MODEL, "Hi", {"candidateCount": 3}),
    ("logprobs", MODEL, "Hi", {"response_logprobs": True, "logprobs": 2}),
    ("logprobs camel", MODEL, "Hi", {"responseLogprobs": True, "logprobs": 2}),
    ("thinking", MODEL, "Hi", {"thinking_config": {"thinking_budget": 0}}),
    ("thinking camel", MODEL, "Hi", {"thinkingConfig": {"thinkingBudget": 0}}),
    ("thinking sdk", MODEL, "Hi", {"thinking_config": types.ThinkingConfig(thinking_budget=0)}),
    ("reasoning_effort none", MODEL, "Hi", {"reasoning_effort": "none"}),
    ("thinking budget 64", MODEL, "Hi", {"thinking_config": {"thinking_budget": 64}}),
    ("response_schema", MODEL, "Hi", {"response_schema": {"type": "OBJECT"}}),
    ("responseSchema", MODEL, "Hi", {"responseSchema": {"type": "OBJECT"}}),
    ("response_json_schema", MODEL, "Hi", {"response_json_schema": SCHEMA}),
    ("output_schema", MODEL, "Hi", {"output_schema": SCHEMA}),
    (
        "response_format json_schema",
        MODEL,
        "Hi",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": SCHEMA},
            }
        },
    ),
    (
        "json schema + mime",
        MODEL,
        "Hi",
        {"response_json_schema": SCHEMA, "response_mime_type": "application/json"},
    ),
    ("json_object", MODEL, "Hi", {"response_format": {"type": "json_object"}}),
    ("mime type", MODEL, "Hi", {"responseMimeType": "application/json"}),
    ("google_search", MODEL, "Hi", {"tools": [{"google_search": {}}]}),
    ("googleSearch", MODEL, "Hi", {"tools": [{"googleSearch": {}}]}),
    ("sdk google_search", MODEL, "Hi", {"tools": [types.Tool(google_search=types.GoogleSearch())]}),
    ("code_execution", MODEL, "Hi", {"tools": [{"code_execution": {}}]}),
    ("url_context", MODEL, "Hi", {"tools": [{"url_context": {}}]}),
    ("neutral tool", MODEL, "Hi", {"tools": [NEUTRAL]}),
    ("openai tool", MODEL, "Hi", {"tools": [OPENAI]}),
    ("bedrock tool", MODEL, "Hi", {"tools": [BEDROCK]}),
    ("native functions", MODEL, "Hi", {"tools": [NATIVE_FUNCTIONS]}),
    (
        "tool with None default",
        MODEL,
        "Hi",
        {"tools": [{**NEUTRAL, "parameters": {**WEATHER, "default": None}}]},
    ),
    ("tool_choice required", MODEL, "Hi", {"tools": [NEUTRAL], "tool_choice": "required"}),
    (
        "tool_config ANY",
        MODEL,
        "Hi",
        {"tools": [NEUTRAL], "tool_config": {"function_calling_config": {"mode": "ANY"}}},
    ),
    (
        "toolConfig any",
        MODEL,
        "Hi",
        {"tools": [NEUTRAL], "toolConfig": {"functionCallingConfig": {"mode": "any"}}},
    ),
    (
        "safety",
        MODEL,
        "Hi",
        {"safety_settings": [{"category": HARASSMENT, "threshold": "BLOCK_NONE"}]},
    ),
    (
        "safety camel lower",
        MODEL,
        "Hi",
        {"safetySettings": [{"category": HARASSMENT, "threshold": "block_none"}]},
    ),
    ("cached_content", MODEL, "Hi", {"cached_content": "abc"}),
    ("cached_content full", MODEL, "Hi", {"cached_content": "cachedContents/abc"}),
    ("speech voice", MODEL, "Hi", {"speech_config": "Kore"}),
    (
        "speech dict",
        MODEL,
        "Hi",
        {"speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}}},
    ),
    (
        "inline bytes",
        MODEL,
        user({"text": "Look"}, {"inline_data": {"mime_type": "image/png", "data": IMAGE}}),
        {},
    ),
    (
        "inlineData base64",
        MODEL,
        user(
            {"text": "Look"},
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(IMAGE).decode()}},
        ),
        {},
    ),
    (
        "Part.from_bytes",
        MODEL,
        user({"text": "Look"}, types.Part.from_bytes(data=IMAGE, mime_type="image/png")),
        {},
    ),
    (
        "data URL",
        MODEL,
        user(
            {"type": "text", "text": "Look"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(IMAGE).decode()},
            },
        ),
        {},
    ),
    (
        "other bytes",
        MODEL,
        user({"text": "Look"}, {"inline_data": {"mime_type": "image/png", "data": OTHER_IMAGE}}),
        {},
    ),
    (
        "file_data",
        MODEL,
        user(
            {"text": "Look"},
            {"file_data": {"file_uri": "https://x.test/cat.png", "mime_type": "image/png"}},
        ),
        {},
    ),
    (
        "image URL",
        MODEL,
        user(
            {"text": "Look"}, {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}
        ),
        {},
    ),
    (
        "tool history with None",
        MODEL,
        tool_history({"arguments": {"city": None}}, {"temp": None}),
        {"tools": [NEUTRAL]},
    ),
    (
        "openai tool history with None",
        MODEL,
        tool_history(
            {
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": null}'},
            },
            {"temp": None},
        ),
        {"tools": [NEUTRAL]},
    ),
    (
        "tool history without None",
        MODEL,
        tool_history({"arguments": {}}, {}),
        {"tools": [NEUTRAL]},
    ),
]


def _wire(body: dict[str, Any], path: str) -> str:
    """The recorded request less the unkeyed fields, as one comparable string.

    An empty ``generationConfig`` is no setting at all: the SDK sends ``{}`` for a config whose
    fields all stay client-side (http_options, automatic_function_calling) and nothing for none.
    """
    kept = {name: value for name, value in body.items() if name not in UNKEYED}
    if kept.get("generationConfig") == {}:
        del kept["generationConfig"]
    return path + json.dumps(kept, sort_keys=True)


@pytest.fixture
def recorded(server: ProviderServer) -> list[tuple[str, str, str]]:
    """Each case sent once with the cache off: (name, key, recorded wire request)."""
    import asyncio

    async def send() -> list[tuple[str, str, str]]:
        out = []
        models: dict[str, GeminiModel] = {}
        for name, model_id, messages, kwargs in CASES:
            model = models.setdefault(
                model_id,
                GeminiModel(
                    model_id, api_key="k", base_url=server.gemini_base_url, max_retries=0,
                    enable_cache=False,
                ),
            )  # fmt: skip
            key = model.cache_key(messages, **kwargs)
            before = server.count()
            await model.generate(messages, **kwargs)
            assert server.count() == before + 1, name
            request = server.requests[-1]
            out.append((name, key, _wire(request.body, request.path)))
        return out

    return asyncio.run(send())


def test_keys_are_equal_exactly_when_wire_requests_are(
    recorded: list[tuple[str, str, str]],
) -> None:
    wrong = [
        (first[0], second[0], "same key" if first[1] == second[1] else "same wire")
        for first, second in itertools.combinations(recorded, 2)
        if (first[1] == second[1]) != (first[2] == second[2])
    ]

    assert wrong == []
    # The table is built to hold many equivalent spellings: the rule is not met vacuously.
    shared = sum(1 for a, b in itertools.combinations(recorded, 2) if a[1] == b[1])
    assert shared >= 60
    assert len({key for _, key, _ in recorded}) >= 35
