"""Cache keys are a contract: pinned values, the wire rule's equivalent spellings, excluded and
included fields — computed as a call computes them (``CacheManager.generate_cache_key``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, CacheManager
from spark.cache.keys import KEY_SCHEMA_VERSION, canonical_json
from spark.errors import ConfigError

QUESTION = "What is the capital of France?"
BEDROCK = "anthropic.claude-3-5-sonnet-20240620-v1:0"
# Pinned: if one of these changes, the key schema changed — bump KEY_SCHEMA_VERSION on purpose
# (and `spark cache migrate` must re-key the entries of the schema before).
PINNED_CHAT = "11ab16d94d8583a18d68a9e52772f8e03e4f0be1095ca6b427fbb3639bb31bf5"
PINNED_EMBED = "130cdfac2434c4b95008ed202804cf915e228ee257707ffe971995df2b6456dc"
PINNED_TOOLS = "d123a933e6d5b1724d919f2e17c170d2295c6a1d2898147cbd2b4b0d63cfab44"
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> CacheManager:
    root: Path = tmp_path_factory.mktemp("keys")
    return CacheManager(root, CacheConfig(enabled=True, cache_dir=root))


@pytest.fixture
def key(manager: CacheManager) -> Any:
    def key_of(
        messages: Any = None, provider: str = "openai", model: str = "gpt-4o", **kw: Any
    ) -> str:
        """The key of a request, with the pinned request's defaults."""
        if messages is None:
            messages = [{"role": "user", "content": QUESTION}]
            kw.setdefault("system_prompt", "Be brief.")
        kw.setdefault("temperature", 0.2)
        kw.setdefault("max_tokens", 100)
        return manager.generate_cache_key(provider, model, messages, **kw)

    return key_of


def test_schema_version_is_three() -> None:
    assert KEY_SCHEMA_VERSION == 3


def test_pinned_chat_key(key: Any) -> None:
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
            [{"role": "user", "parts": [{"text": QUESTION}]}],
            {"system_prompt": "Be brief."},
            id="gemini-parts",
        ),
        pytest.param(
            [{"role": "user", "content": QUESTION}],
            {"system_prompt": "Be brief.", "max_completion_tokens": 100, "max_tokens": None},
            id="max-completion-tokens-alias",
        ),
        pytest.param(
            [{"role": "user", "content": QUESTION}],
            {"system_prompt": "Be brief.", "top_p": None, "seed": None, "n": 1},
            id="none-is-not-given-and-n-1-is-not-sent",
        ),
    ],
)
def test_equivalent_spellings_share_the_pinned_key(
    key: Any, messages: Any, extra: dict[str, Any]
) -> None:
    assert key(messages, **extra) == PINNED_CHAT


def test_plain_string_messages_mean_one_user_message(key: Any) -> None:
    assert key(QUESTION, system_prompt="Be brief.") == PINNED_CHAT


def test_integer_and_float_spellings_of_numbers_agree(key: Any) -> None:
    assert key(temperature=1) == key(temperature=1.0)


def test_system_prompt_comes_before_leading_system_messages(key: Any) -> None:
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
    ("name", "value"),
    [
        ("timeout", 30),
        ("request_timeout", 30),
        ("extra_headers", {"x-team": "search"}),
        ("headers", {"x-team": "search"}),
        ("extra_query", {"trace": "1"}),
        ("user", "user-42"),
        ("metadata", {"team": "search"}),
        ("store", True),
        ("service_tier", "flex"),
        ("safety_identifier", "u-42"),
        ("prompt_cache_key", "search"),
        ("stream", True),
        ("stream_options", {"include_usage": True}),
    ],
)
def test_fields_that_must_not_change_the_key(key: Any, name: str, value: Any) -> None:
    assert key(**{name: value}) == PINNED_CHAT


@pytest.mark.parametrize(
    "name", ["api_key", "base_url", "max_retries", "organization", "temprature"]
)
def test_credentials_endpoints_model_and_typos_per_call_are_refused(key: Any, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        key(**{name: "x"})


def test_a_model_id_per_call_is_refused(manager: CacheManager) -> None:
    with pytest.raises(ConfigError, match="constructor"):
        manager.generate_cache_key("openai", "gpt-4o", QUESTION, model="gpt-4o-mini")


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.3},
        {"max_tokens": 101},
        {"top_p": 0.9},
        {"stop": ["\n"]},
        {"seed": 7},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.5},
        {"reasoning_effort": "high"},
        {"n": 2},
        {"logprobs": True},
        {"response_format": {"type": "json_object"}},
        {"extra_body": {"top_k": 40}},
        {"system_prompt": "Be verbose."},
        {"model": "gpt-4o-mini"},
        {"provider": "gemini", "model": "gemini-2.0-flash"},
        {"tool_choice": "auto", "tools": [{"name": "f", "parameters": WEATHER_SCHEMA}]},
        {"tools": [{"name": "get_weather", "parameters": WEATHER_SCHEMA}]},
    ],
    ids=lambda change: "+".join(change),
)
def test_fields_that_change_the_key(key: Any, change: dict[str, Any]) -> None:
    assert key(**change) != PINNED_CHAT


def test_message_text_order_and_roles_change_the_key(key: Any) -> None:
    assert key([{"role": "user", "content": QUESTION + "?"}], system_prompt="Be brief.") != (
        PINNED_CHAT
    )
    swapped = [{"role": "assistant", "content": QUESTION}]
    assert key(swapped, system_prompt="Be brief.") != PINNED_CHAT
    developer = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": QUESTION},
    ]
    assert key(developer) != PINNED_CHAT, "a developer message is sent as one: another request"


def test_stop_as_string_equals_one_element_list(key: Any) -> None:
    assert key(stop="END") == key(stop=["END"])


def test_namespace_changes_every_key(tmp_path: Path) -> None:
    keys = {
        CacheManager(tmp_path / n, CacheConfig(cache_dir=tmp_path / n, namespace=n))
        .bind()
        .chat_request("openai", "gpt-4o", QUESTION)
        .key
        for n in ("", "v2")
    }
    assert len(keys) == 2


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
@pytest.mark.parametrize("choice", ["auto", {"auto": {}}], ids=["word", "bedrock"])
def test_tool_spellings_share_a_pinned_key(manager: CacheManager, tool: Any, choice: Any) -> None:
    key = manager.generate_cache_key("bedrock", BEDROCK, "Hi", tools=[tool], tool_choice=choice)
    assert key == PINNED_TOOLS


def test_pinned_embedding_key_and_single_text_spelling(manager: CacheManager) -> None:
    bound = manager.bind()
    batch = bound.embedding_request("openai", "text-embedding-3-small", ["hello world"]).key
    single = bound.embedding_request("openai", "text-embedding-3-small", "hello world").key
    assert batch == single == PINNED_EMBED
    chat = manager.generate_cache_key("openai", "text-embedding-3-small", "hello world")
    assert chat != PINNED_EMBED
    assert bound.embedding_request("openai", "e", "x", encoding_format="base64").key == (
        bound.embedding_request("openai", "e", "x").key
    )
    assert bound.embedding_request("openai", "e", "x", dimensions=256).key != (
        bound.embedding_request("openai", "e", "x").key
    )


@pytest.mark.parametrize(
    "messages",
    [42, [42], ["not a dict"]],
)
def test_bad_messages_are_a_clear_error(key: Any, messages: Any) -> None:
    with pytest.raises(ConfigError):
        key(messages)


def test_unserializable_parameter_is_a_clear_error(key: Any) -> None:
    with pytest.raises(ConfigError, match="object"):
        key(temperature=object())


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1.5, -0.0, 1e300, 2**70, None, True], "é": "naïve ☃ \u0000 \ud83d"},
        [{"z": {"y": {"x": []}}}, 'tab\tquote"back\\slash'],
        {"nested": {"k": [0.1, 1.0, 3, "3"]}, "": ""},
    ],
)
def test_canonical_json_is_sorted_compact_ascii_json(value: Any) -> None:
    import json

    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert canonical_json(value) == expected.encode("ascii")


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": float("inf")}, {"x": object()}])
def test_canonical_json_refuses_what_json_cannot_say(value: Any) -> None:
    with pytest.raises(ConfigError, match="not JSON-serializable"):
        canonical_json(value)


def test_canonical_json_refuses_a_circular_request() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ConfigError, match="not JSON-serializable"):
        canonical_json(loop)
