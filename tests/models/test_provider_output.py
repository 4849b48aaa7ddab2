"""What an answer holds beyond text, tool calls, refusal, citations and reasoning is kept:
Gemini's code execution and media parts, the Responses API's built-in tool items (a web search's
``web_search_call``), chat completions' audio and Bedrock's ``additionalModelResponseFields``
and other content blocks are ``response.provider_output``, in the provider's own shape, plain
and streamed, on the miss, the hit and from disk (docs/models.md)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from spark.models._bedrock_answers import parse_converse
from spark.testing import ProviderServer

QUESTION = "What is the sum of the first 50 primes?"
# provider, model id, model options, call keywords: requests whose answer runs a built-in tool.
RUNS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "gemini-code": ("gemini", "gemini-2.5-flash", {}, {"tools": [{"code_execution": {}}]}),
    "responses-search": ("openai", "gpt-4o-mini", {"api": "responses"}, {"tools": [{"type": "web_search"}]}),
    "bedrock-fields": ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", {}, {"additionalModelResponseFieldPaths": ["/stop_sequence"]}),
}  # fmt: skip


def kinds(provider: str, output: list[dict[str, Any]]) -> list[str]:
    """What each piece of the provider's output is, read in its own shape."""
    if provider in ("gemini", "bedrock"):
        return [next(iter(part)) for part in output]
    return [item["type"] for item in output]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("case", sorted(RUNS))
async def test_built_in_tool_output_comes_back_on_the_miss_the_hit_and_from_disk(
    three_answers: Callable[..., Any], server: ProviderServer, case: str, streamed: bool
) -> None:
    provider, model_id, options, keywords = RUNS[case]

    miss, hit, from_disk = await three_answers(
        provider, model_id, QUESTION, streamed=streamed, options=options, **keywords
    )

    expected = {
        "gemini": ["executable_code", "code_execution_result"],
        "openai": ["web_search_call"],
        "bedrock": ["additionalModelResponseFields"],
    }[provider]
    assert kinds(provider, miss.provider_output) == expected
    assert miss.text  # the answer's text is apart from it
    assert miss.choices[0].provider_output == miss.provider_output
    assert hit.provider_output == miss.provider_output == from_disk.provider_output
    assert server.count(provider=provider) == 1


async def test_gemini_code_and_its_result_are_read_as_the_api_gave_them(
    models: Callable[..., Any],
) -> None:
    answer = await models("gemini", "gemini-2.5-flash").generate(
        QUESTION, tools=[{"code_execution": {}}]
    )

    code, result = answer.provider_output
    assert code["executable_code"]["language"] == "PYTHON"
    assert code["executable_code"]["code"].startswith("print(")
    assert result["code_execution_result"] == {
        "outcome": "OUTCOME_OK",
        "output": code["executable_code"]["code"][7:-2] + "\n",
    }


async def test_an_answer_with_nothing_else_has_none(models: Callable[..., Any]) -> None:
    for provider, model_id, options, _ in RUNS.values():
        answer = await models(provider, model_id, **options).generate(QUESTION)
        assert answer.provider_output is None
        assert "provider_output" not in answer.to_dict()


# provider, model id, question, call keywords, the output's field and the bytes it starts with.
NO_TEXT: dict[str, tuple[str, str, str, dict[str, Any], str, bytes]] = {
    "gemini-image": ("gemini", "gemini-2.5-flash-image", "Draw a lighthouse.", {"response_modalities": ["IMAGE"]}, "inline_data", b"\x89PNG\r\n\x1a\n"),
    "openai-audio": ("openai", "gpt-4o-audio-preview", "Say hello.", {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "audio", b"RIFF"),
}  # fmt: skip


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("case", sorted(NO_TEXT))
async def test_an_answer_with_no_text_is_cached_and_comes_back_whole(
    three_answers: Callable[..., Any], server: ProviderServer, case: str, streamed: bool
) -> None:
    """An image model's picture, a spoken answer: nothing but other output (the API's
    content is null; audio's words are its transcript)."""
    provider, model_id, question, keywords, field, magic = NO_TEXT[case]

    miss, hit, from_disk = await three_answers(
        provider, model_id, question, streamed=streamed, **keywords
    )

    (part,) = miss.provider_output
    output = part[field]
    assert base64.b64decode(output["data"]).startswith(magic)
    if field == "audio":
        assert output["id"].startswith("audio_")
        assert output["transcript"]
        assert isinstance(output["expires_at"], int)
    else:
        assert output["mime_type"] == "image/png"
    assert miss.text == ""
    assert hit.provider_output == miss.provider_output == from_disk.provider_output
    assert server.count(provider=provider) == 1  # cached, though it has no text


def test_bedrock_blocks_spark_has_no_field_for_are_kept_as_json() -> None:
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\r\n"}}}
    answer = parse_converse(
        {
            "output": {"message": {"content": [{"text": "Here it is."}, image]}},
            "additionalModelResponseFields": {"stop_sequence": "END"},
        }
    )

    assert answer.text == "Here it is."
    assert answer.provider_output == [
        {
            "image": {
                "format": "png",
                "source": {"bytes": base64.b64encode(b"\x89PNG\r\n").decode()},
            }
        },
        {"additionalModelResponseFields": {"stop_sequence": "END"}},
    ]
