"""A Bedrock answer that cites a document is whole: the passages Converse returns as
``citationsContent`` blocks are part of ``response.text`` (they were dropped from a plain call's
text), and the blocks, with their citations, are ``response.citations``, plain and streamed, on
the miss, the hit and from disk (docs/models.md, Bedrock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spark.models._bedrock_answers import parse_converse
from spark.testing import ProviderServer

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
NOTES = b"The harbour opened a new pier on Monday; the ferry now leaves at seven."


def question(cite: bool = True) -> list[dict[str, Any]]:
    document = {"format": "txt", "name": "harbour-notes", "source": {"bytes": NOTES}}
    if cite:
        document["citations"] = {"enabled": True}
    content = [{"document": document}, {"text": "What changed in the harbour?"}]
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_cited_answer_is_whole_and_its_citations_come_back(
    three_answers: Callable[..., Any], server: ProviderServer, streamed: bool
) -> None:
    miss, hit, from_disk = await three_answers("bedrock", MODEL, question(), streamed=streamed)

    (passage,) = miss.citations
    (citation,) = passage["citations"]
    assert citation["title"] == "harbour-notes"
    assert citation["location"]["documentChar"]["documentIndex"] == 0
    cited = passage["content"][0]["text"]
    assert cited
    assert miss.text.endswith(cited)
    assert len(miss.text) > len(cited)  # the model's own words, then the cited passage
    assert miss.choices[0].citations == miss.citations
    assert hit.citations == miss.citations == from_disk.citations
    assert hit.text == miss.text == from_disk.text
    assert server.count(provider="bedrock") == 1


async def test_the_plain_and_the_streamed_answer_have_the_same_text(
    models: Callable[..., Any], server: ProviderServer
) -> None:
    uncached = models("bedrock", MODEL, enable_cache=False)  # both answers from the provider
    plain = await uncached.generate(question())
    chunks = [chunk async for chunk in uncached.stream_text(question())]

    assert plain.text == "".join(chunks)
    assert server.count(provider="bedrock") == 2


async def test_an_answer_citing_nothing_has_no_citations(
    models: Callable[..., Any],
) -> None:
    answer = await models("bedrock", MODEL).generate(question(cite=False))

    assert answer.citations is None
    assert answer.text


def test_text_and_cited_blocks_are_read_in_order() -> None:
    passage = {"content": [{"text": "a new pier"}], "citations": [{"title": "notes"}]}
    response = parse_converse(
        {
            "output": {
                "message": {
                    "content": [
                        {"text": "They opened "},
                        {"citationsContent": passage},
                        {"text": " on Monday."},
                    ]
                }
            }
        }
    )

    assert response.text == "They opened a new pier on Monday."
    assert response.citations == [passage]
