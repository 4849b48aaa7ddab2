"""The wire rule on Bedrock: over many spellings and parameters, sent with the real boto3 (cache
off, so every call reaches the local server), two calls share a key exactly when the recorded
Converse bodies are equal (less the unkeyed fields)."""

from __future__ import annotations

import asyncio
import json
from itertools import combinations
from typing import Any

import pytest

from spark.cache import CacheConfig
from spark.models.bedrock import BedrockModel
from spark.testing import ProviderServer

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PNG_A = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PNG_B = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 4
PDF = b"%PDF-1.4\n" + b"\x00\x01binary\xff" * 50
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
SCHEMA_NULL = {"type": "object", "properties": {"city": {"type": "string", "default": None}}}
WEATHER = {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}
WEATHER_OPENAI = {"type": "function", "function": WEATHER}
WEATHER_NATIVE = {
    "toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json": SCHEMA}}
}
CACHE_POINT = {"cachePoint": {"type": "default"}}
HI_USER = {"role": "user", "content": "Hi"}
# A tool loop, in the neutral spelling and in Converse's own blocks.
LOOP_NEUTRAL: list[dict[str, Any]] = [
    HI_USER,
    {"role": "assistant", "tool_calls": [{"id": "t1", "name": "get_weather", "arguments": {}}]},
    {"role": "tool", "tool_call_id": "t1", "content": "22 C"},
]
LOOP_NATIVE = [
    {"role": "user", "content": [{"text": "Hi"}]},
    {
        "role": "assistant",
        "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
    },
    {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "22 C"}]}}],
    },
]
UNKEYED = ("requestMetadata", "serviceTier", "projectIdentifier")


def image(data: bytes | bytearray) -> dict[str, Any]:
    return {"image": {"format": "png", "source": {"bytes": data}}}


# (intended group, messages, keywords): one group = one intended wire body.
CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("plain", "Hi", {}),
    ("plain", [HI_USER], {}),
    ("plain", [{"role": "user", "content": [{"text": "Hi"}]}], {}),
    ("plain", [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], {}),
    ("plain", [{"role": "human", "content": "Hi"}], {}),
    ("plain", "Hi", {"requestMetadata": {"team": "a"}}),
    ("plain", "Hi", {"request_metadata": {"team": "b"}}),
    ("plain", "Hi", {"serviceTier": {"type": "flex"}}),
    ("plain", "Hi", {"service_tier": "priority"}),
    ("plain", "Hi", {"projectIdentifier": "default"}),
    ("plain", "Hi", {"n": 1}),
    ("plain", "Hi", {"tool_choice": "auto"}),
    ("plain", "Hi", {"response_format": {"type": "text"}}),
    ("plain", "Hi", {"tools": [WEATHER], "tool_choice": "none"}),
    ("plain", "Hi", {"temperature": None, "system_prompt": None}),
    ("other text", "Hi there", {}),
    ("system", "Hi", {"system_prompt": "Be brief."}),
    ("system", [{"role": "system", "content": "Be brief."}, HI_USER], {}),
    ("system", [{"role": "developer", "content": "Be brief."}, HI_USER], {}),
    ("system", "Hi", {"system": [{"text": "Be brief."}]}),
    ("system", "Hi", {"system_prompt": ["Be brief."]}),
    ("system cached", "Hi", {"system": [{"text": "Be brief."}, CACHE_POINT]}),
    ("system cached", "Hi", {"system_prompt": ["Be brief.", CACHE_POINT]}),
    (
        "system cached",
        [{"role": "system", "content": [{"text": "Be brief."}, CACHE_POINT]}, HI_USER],
        {},
    ),
    ("t0.5", "Hi", {"temperature": 0.5}),
    ("t0.5", "Hi", {"inferenceConfig": {"temperature": 0.5}}),
    ("t0.5", "Hi", {"temperature": 0.5, "inferenceConfig": {"temperature": 0.5}}),
    ("t1", "Hi", {"temperature": 1}),
    ("t1", "Hi", {"inferenceConfig": {"temperature": 1.0}}),
    ("t1", "Hi", {"inferenceConfig": {"temperature": 1}}),
    ("limits", "Hi", {"max_tokens": 50, "stop": "END"}),
    ("limits", "Hi", {"inferenceConfig": {"maxTokens": 50, "stopSequences": ["END"]}}),
    ("limits", "Hi", {"max_tokens": 50.0, "stop_sequences": ["END"]}),
    ("limits", "Hi", {"max_tokens": 50, "inferenceConfig": {"stopSequences": ["END"]}}),
    ("top_p", "Hi", {"top_p": 0.9}),
    ("top_p", "Hi", {"inferenceConfig": {"topP": 0.9}}),
    ("top_k", "Hi", {"top_k": 5}),
    ("top_k", "Hi", {"additionalModelRequestFields": {"top_k": 5}}),
    ("top_k 6", "Hi", {"top_k": 6}),
    ("extra", "Hi", {"additionalModelRequestFields": {"top_k": 5, "thinking": None}}),
    ("tools", "Hi", {"tools": [WEATHER]}),
    ("tools", "Hi", {"tools": [WEATHER_OPENAI]}),
    ("tools", "Hi", {"tools": [WEATHER_NATIVE]}),
    ("tools", "Hi", {"tool_specs": [{**WEATHER, "parameters": {"json": SCHEMA}}]}),
    ("tools", "Hi", {"toolConfig": {"tools": [WEATHER_NATIVE]}}),
    ("tools", "Hi", {"tools": [WEATHER], "tool_choice": None}),
    ("tools any", "Hi", {"tools": [WEATHER], "tool_choice": "required"}),
    ("tools any", "Hi", {"tools": [WEATHER], "tool_choice": "any"}),
    ("tools any", "Hi", {"toolConfig": {"tools": [WEATHER_NATIVE], "toolChoice": {"any": {}}}}),
    ("tools any", "Hi", {"toolConfig": {"tools": [WEATHER_NATIVE]}, "tool_choice": "required"}),
    ("tools named", "Hi", {"tools": [WEATHER], "tool_choice": "get_weather"}),
    (
        "tools named",
        "Hi",
        {
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    ),
    ("tools named", "Hi", {"tools": [WEATHER], "tool_choice": {"tool": {"name": "get_weather"}}}),
    ("tools strict", "Hi", {"tools": [{**WEATHER, "strict": True}]}),
    ("tools cached", "Hi", {"tools": [WEATHER, CACHE_POINT]}),
    ("tools null", "Hi", {"tools": [{**WEATHER, "parameters": SCHEMA_NULL}]}),
    ("message cached", [{"role": "user", "content": ["Hi", CACHE_POINT]}], {}),
    ("message cached", [{"role": "user", "content": [{"text": "Hi"}, CACHE_POINT]}], {}),
    ("image a", [{"role": "user", "content": ["Hi", image(PNG_A)]}], {}),
    ("image a", [{"role": "user", "content": [{"text": "Hi"}, image(bytearray(PNG_A))]}], {}),
    ("image b", [{"role": "user", "content": ["Hi", image(PNG_B)]}], {}),
    (
        "document",
        [
            {
                "role": "user",
                "content": [
                    "Hi",
                    {"document": {"format": "pdf", "name": "doc", "source": {"bytes": PDF}}},
                ],
            }
        ],
        {},
    ),
    (
        "guardrail",
        "Hi",
        {"guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}},
    ),
    ("latency", "Hi", {"performanceConfig": {"latency": "optimized"}}),
    ("effort", "Hi", {"reasoning_effort": "low"}),
    ("effort", "Hi", {"outputConfig": {"effort": "low"}}),
    ("schema", "Hi", {"response_format": SCHEMA}),
    ("schema as a tool", "Hi", {"output_schema": SCHEMA}),  # (Claude 3: no native form)
    (
        "schema",
        "Hi",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": SCHEMA},
            }
        },
    ),
    (
        "schema",
        "Hi",
        {
            "outputConfig": {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {"jsonSchema": {"schema": json.dumps(SCHEMA), "name": "response"}},
                }
            }
        },
    ),
    ("variables", "Hi", {"promptVariables": {"city": {"text": "Oslo"}}}),
    ("paths", "Hi", {"additionalModelResponseFieldPaths": ["/stop_sequence"]}),
    ("loop", LOOP_NEUTRAL, {"tools": [WEATHER]}),
    ("loop", LOOP_NATIVE, {"tools": [WEATHER]}),
    ("loop", LOOP_NATIVE, {"tools": [WEATHER], "tool_choice": "none"}),
    (
        "loop null",
        [*LOOP_NEUTRAL[:2], {**LOOP_NEUTRAL[2], "content": {"temp": None}}],
        {"tools": [WEATHER]},
    ),
]


def wire_form(body: dict[str, Any]) -> str:
    """The recorded body less the unkeyed fields, as one exact JSON text (1 and 1.0 differ)."""
    return json.dumps({k: v for k, v in body.items() if k not in UNKEYED}, sort_keys=True)


@pytest.fixture(scope="module")
def recorded(
    module_server: ProviderServer, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[str, str, str]]:
    """Each case's (group, key, wire form), sent through a cacheless model with the real boto3."""
    model = BedrockModel(
        MODEL,
        region="us-east-1",
        endpoint_url=module_server.bedrock_endpoint_url,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        max_retries=0,
        cache_config=CacheConfig(enabled=False, cache_dir=tmp_path_factory.mktemp("off")),
    )
    module_server.reset()
    rows = []
    for group, messages, kwargs in CASES:
        key = model.cache_key(messages, **kwargs)
        asyncio.run(model.get_text(messages, **kwargs))
        rows.append((group, key, wire_form(module_server.requests[-1].body)))
    return rows


def test_the_table_is_large_and_not_vacuous(recorded: list[tuple[str, str, str]]) -> None:
    assert len(CASES) >= 30
    assert len(recorded) == len(CASES)
    groups = {group for group, _, _ in recorded}
    assert 10 < len(groups) < len(CASES)


def test_key_equality_is_wire_equality(recorded: list[tuple[str, str, str]]) -> None:
    wrong = [
        (CASES[i][0], CASES[j][0], "same key" if a[1] == b[1] else "different keys")
        for (i, a), (j, b) in combinations(enumerate(recorded), 2)
        if (a[1] == b[1]) != (a[2] == b[2])
    ]
    assert wrong == []


def test_the_wire_groups_are_the_intended_ones(recorded: list[tuple[str, str, str]]) -> None:
    wrong = [
        (i, j)
        for (i, a), (j, b) in combinations(enumerate(recorded), 2)
        if (a[0] == b[0]) != (a[2] == b[2])
    ]
    assert [(CASES[i], CASES[j]) for i, j in wrong] == []
