"""The sources an answer cites come back as ``response.citations``, in the provider's own shape:
OpenAI's ``annotations`` (chat completions and the Responses API) and Gemini's grounding
metadata, plain and streamed, on the miss, the hit and from the disk; and so does the model
that answered, as ``response.response_model`` (docs/models.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spark.testing import ProviderServer

ThreeAnswers = Callable[..., Any]  # the fixture of tests/models/conftest.py
QUESTION = "What changed in the harbour this week?"
# provider, model id, model options, call keywords: each a request that searches the web.
SEARCHES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "openai-chat": ("openai", "gpt-4o-mini", {}, {"web_search_options": {}}),
    "openai-responses": ("openai", "gpt-4o-mini", {"api": "responses"}, {"tools": [{"type": "web_search"}]}),
    "gemini": ("gemini", "gemini-2.0-flash", {}, {"tools": [{"google_search": {}}]}),
}  # fmt: skip


def cited_urls(provider: str, api: str, citations: Any) -> list[str]:
    """The URLs a provider's citation report names, read in its own shape."""
    if provider == "gemini":
        return [
            chunk["web"]["uri"] for chunk in citations["grounding_metadata"]["grounding_chunks"]
        ]
    if api == "responses":
        return [note["url"] for note in citations if note["type"] == "url_citation"]
    return [note["url_citation"]["url"] for note in citations if note["type"] == "url_citation"]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("case", sorted(SEARCHES))
async def test_citations_come_back_on_the_miss_the_hit_and_from_disk(
    three_answers: ThreeAnswers, server: ProviderServer, case: str, streamed: bool
) -> None:
    provider, model_id, options, keywords = SEARCHES[case]

    miss, hit, from_disk = await three_answers(
        provider, model_id, QUESTION, streamed=streamed, options=options, **keywords
    )

    urls = cited_urls(provider, options.get("api", ""), miss.citations)
    assert len(urls) == 1
    assert urls[0].startswith("https://example.com/spark-testing/")
    assert miss.choices[0].citations == miss.citations
    assert hit.citations == miss.citations == from_disk.citations
    assert server.count(provider=provider) == 1


async def test_an_answer_that_cites_nothing_has_no_citations(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    for provider, model_id, options, _ in SEARCHES.values():
        answer = await models(provider, model_id, **options).generate(QUESTION)
        assert answer.citations is None
        assert "citations" not in answer.to_dict()


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(
    ("case", "answered"),
    [
        ("openai-chat", "gpt-4o-mini-2024-07-18"),
        ("openai-responses", "gpt-4o-mini-2024-07-18"),
        ("gemini", "gemini-2.0-flash-001"),
    ],
)
async def test_the_model_that_answered_is_kept_apart_from_the_one_asked(
    three_answers: ThreeAnswers, case: str, answered: str, streamed: bool
) -> None:
    provider, model_id, options, _ = SEARCHES[case]

    _, hit, from_disk = await three_answers(
        provider, model_id, QUESTION, streamed=streamed, options=options
    )

    assert (hit.response_model, hit.model_id) == (answered, model_id)
    assert from_disk.response_model == answered


def test_responses_citations_of_several_messages_point_into_the_joined_text() -> None:
    """Each ``output_text`` part's annotations count from the start of that part; Spark's text
    joins the parts, so their offsets are moved to point into it."""
    pytest.importorskip("openai")
    from openai.types.responses import Response

    from spark.models._responses_answers import response_from_responses

    def message(n: int, text: str, url: str) -> dict[str, Any]:
        cited = {"type": "url_citation", "start_index": 0, "end_index": len(text), "url": url}
        cited["title"] = url
        part = {"type": "output_text", "text": text, "annotations": [cited]}
        return {"id": f"msg_{n}", "type": "message", "role": "assistant", "status": "completed", "content": [part]}  # fmt: skip

    response = Response.model_validate(
        {
            "id": "resp_1", "object": "response", "created_at": 0, "model": "gpt-4o",
            "output": [message(1, "Oslo is cold.", "https://a"), message(2, "Rome is warm.", "https://b")],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        }
    )  # fmt: skip

    answer = response_from_responses(response)

    spans = {
        note["url"]: answer.text[note["start_index"] : note["end_index"]]
        for note in answer.citations
    }
    assert spans == {"https://a": "Oslo is cold.", "https://b": "Rome is warm."}
