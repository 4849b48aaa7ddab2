"""Cache keys are a contract: pinned values, equivalent spellings, excluded and included fields."""

from __future__ import annotations

from typing import Any

import pytest

from spark.cache.keys import (
    EXCLUDED_PARAMS,
    KEY_SCHEMA_VERSION,
    canonical_json,
    create_key,
    normalize_embedding_request,
    normalize_request,
)
from spark.errors import ConfigError

QUESTION = "What is the capital of France?"
# Pinned: if one of these changes, the key schema changed — bump KEY_SCHEMA_VERSION on purpose.
PINNED_CHAT = "cec74c0382c43a5a1265df2848d825f158f824a4273b157c278db1b13bf067f6"
PINNED_EMBED = "8d35a34041c9dc7d7a6f1248bd11f7eb677aacbde516e5dfeed861efe5cdc9ec"
PINNED_TOOLS = "a3c356737fee9d1ab5d0d34943e1cf921c0052c5f2c72b50aed9e3ea47efaa89"
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def key(messages: Any = None, provider: str = "openai", model: str = "gpt-4o", **kw: Any) -> str:
    """The key of a request, with the pinned request's defaults."""
    if messages is None:
        messages = [{"role": "user", "content": QUESTION}]
        kw.setdefault("system_prompt", "Be brief.")
    kw.setdefault("temperature", 0.2)
    kw.setdefault("max_tokens", 100)
    return create_key(normalize_request(provider, model, messages, **kw))


def test_schema_version_is_one() -> None:
    assert KEY_SCHEMA_VERSION == 1


def test_pinned_chat_key() -> None:
    assert key() == PINNED_CHAT


@pytest.mark.parametrize(
    ("messages", "extra"),
    [
        pytest.param(
            [{"role": "user", "content": QUESTION}], {"system_prompt": "Be brief."}, id="str"
        ),
        pytest.param(
            [{"role": "user", "content": [{"text": QUESTION}]}],
            {"system_prompt": "Be brief."},
            id="text-part",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
            {"system_prompt": "Be brief."},
            id="typed-part",
        ),
        pytest.param(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
            {},
            id="system-message",
        ),
        pytest.param(
            [{"role": "system", "content": [{"text": "Be brief."}]}, {"content": QUESTION}],
            {},
            id="system-part-default-role",
        ),
        pytest.param(
            [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
            {},
            id="developer-role",
        ),
        pytest.param(
            [{"role": "user", "parts": [{"text": QUESTION}]}],
            {"system_prompt": "Be brief."},
            id="gemini-parts",
        ),
        pytest.param(
            [{"role": "user", "content": QUESTION}],
            {"system_prompt": ["Be brief."]},
            id="system-list",
        ),
        pytest.param(
            [{"role": "user", "content": QUESTION}],
            {"system_prompt": "Be brief.", "max_completion_tokens": 100, "max_tokens": None},
            id="max-completion-tokens-alias",
        ),
        pytest.param(
            [{"role": "USER", "content": QUESTION, "name": None}],
            {"system_prompt": "Be brief.", "top_p": None, "seed": None},
            id="none-is-not-given",
        ),
    ],
)
def test_equivalent_spellings_share_the_pinned_key(messages: Any, extra: dict[str, Any]) -> None:
    assert key(messages, **extra) == PINNED_CHAT


def test_plain_string_messages_mean_one_user_message() -> None:
    assert key(QUESTION, system_prompt="Be brief.") == PINNED_CHAT


def test_integer_and_float_spellings_of_numbers_agree() -> None:
    assert key(temperature=1) == key(temperature=1.0)
    assert key(max_tokens=100.0) == PINNED_CHAT


def test_system_prompt_comes_before_leading_system_messages() -> None:
    messages = [{"role": "system", "content": "Second."}, {"role": "user", "content": QUESTION}]
    both = key(messages, system_prompt="First.")
    assert both == key(
        [
            {"role": "system", "content": "First."},
            {"role": "system", "content": "Second."},
            {"role": "user", "content": QUESTION},
        ]
    )
    assert both != key(messages, system_prompt="Second.")


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "base_url",
        "timeout",
        "max_retries",
        "extra_headers",
        "headers",
        "user",
        "metadata",
        "stream",
        "stream_options",
        "region_name",
        "endpoint_url",
        "organization",
        "request_timeout",
    ],
)
def test_fields_that_must_not_change_the_key(name: str) -> None:
    assert name in EXCLUDED_PARAMS
    assert key(**{name: "sk-secret-value"}) == PINNED_CHAT


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.3},
        {"max_tokens": 101},
        {"top_p": 0.9},
        {"top_k": 40},
        {"stop": ["\n"]},
        {"seed": 7},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.5},
        {"reasoning_effort": "high"},
        {"n": 2},
        {"response_format": {"type": "json_object"}},
        {"namespace": "v2"},
        {"system_prompt": "Be verbose."},
        {"model": "gpt-4o-mini"},
        {"provider": "gemini"},
        {"tool_choice": "auto"},
        {"tools": [{"name": "get_weather", "parameters": WEATHER_SCHEMA}]},
    ],
    ids=lambda change: next(iter(change)),
)
def test_fields_that_change_the_key(change: dict[str, Any]) -> None:
    assert key(**change) != PINNED_CHAT


def test_message_text_order_and_roles_change_the_key() -> None:
    assert (
        key([{"role": "user", "content": QUESTION + "?"}], system_prompt="Be brief.") != PINNED_CHAT
    )
    swapped = [{"role": "assistant", "content": QUESTION}]
    assert key(swapped, system_prompt="Be brief.") != PINNED_CHAT


def test_stop_as_string_equals_one_element_list() -> None:
    assert key(stop="END") == key(stop=["END"]) == key(stop_sequences=["END"])


def test_dict_order_never_matters() -> None:
    a = canonical_json({"b": 1, "a": {"y": 2, "x": 3}})
    b = canonical_json({"a": {"x": 3, "y": 2}, "b": 1})
    assert a == b == b'{"a":{"x":3,"y":2},"b":1}'


def test_non_ascii_is_escaped_so_bytes_are_stable() -> None:
    assert canonical_json({"t": "café"}) == b'{"t":"caf\\u00e9"}'


@pytest.mark.parametrize(
    "tool",
    [
        {"name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA},
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": WEATHER_SCHEMA,
            },
        },
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Weather",
                "inputSchema": {"json": WEATHER_SCHEMA},
            }
        },
    ],
    ids=["neutral", "openai", "bedrock"],
)
@pytest.mark.parametrize(
    "choice", ["auto", {"auto": {}}, {"type": "auto"}], ids=["word", "bedrock", "typed"]
)
def test_tool_spellings_share_a_pinned_key(tool: dict[str, Any], choice: Any) -> None:
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    request = normalize_request("bedrock", model, "Hi", tools=[tool], tool_choice=choice)
    assert create_key(request) == PINNED_TOOLS


@pytest.mark.parametrize(
    ("choice", "normalized"),
    [
        ("any", "required"),
        ("required", "required"),
        ("none", "none"),
        ({"type": "function", "function": {"name": "f"}}, {"name": "f"}),
        ({"tool": {"name": "f"}}, {"name": "f"}),
        ({"any": {}}, "required"),
    ],
)
def test_tool_choice_spellings(choice: Any, normalized: Any) -> None:
    assert normalize_request("openai", "m", "Hi", tool_choice=choice)["tool_choice"] == normalized


def test_pinned_embedding_key_and_single_text_spelling() -> None:
    batch = normalize_embedding_request("openai", "text-embedding-3-small", ["hello world"])
    single = normalize_embedding_request("openai", "text-embedding-3-small", "hello world")
    assert create_key(batch) == create_key(single) == PINNED_EMBED
    chat = normalize_request("openai", "text-embedding-3-small", "hello world")
    assert create_key(chat) != PINNED_EMBED


def test_embedding_encoding_format_does_not_change_the_key() -> None:
    plain = normalize_embedding_request("openai", "e", "x")
    base64 = normalize_embedding_request("openai", "e", "x", encoding_format="base64")
    assert create_key(plain) == create_key(base64)
    assert create_key(
        normalize_embedding_request("openai", "e", "x", dimensions=256)
    ) != create_key(plain)


@pytest.mark.parametrize(
    "messages",
    [42, [42], ["not a dict"], [{"role": "system", "content": [{"image": "x"}]}]],
)
def test_bad_messages_are_a_clear_error(messages: Any) -> None:
    with pytest.raises(ConfigError):
        normalize_request("openai", "m", messages)


def test_unserializable_parameter_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="cannot use a object"):
        normalize_request("openai", "m", "Hi", temperature=object())


def test_pydantic_like_values_are_dumped() -> None:
    class Schema:
        def model_dump(self, exclude_none: bool = False) -> dict[str, Any]:
            return {"type": "json_schema"}

    as_object = normalize_request("openai", "m", "Hi", response_format=Schema())
    as_dict = normalize_request("openai", "m", "Hi", response_format={"type": "json_schema"})
    assert create_key(as_object) == create_key(as_dict)
