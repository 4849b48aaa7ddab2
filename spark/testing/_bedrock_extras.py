"""What a Converse answer of the test server adds when the request asks for it: a signed
reasoning block (``thinking``), a cited passage (a document with citations enabled) and the
``additionalModelResponseFields`` it names. Pure functions of the request body and its seed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spark.testing._exchange import JsonObject

__all__ = ["asked_fields", "blocks_of", "cited", "reasoning"]


def blocks_of(body: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    """Return the request messages' blocks of one kind (``image``, ``document``)."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    blocks = [b for m in messages for b in m.get("content") or [] if isinstance(b, Mapping)]
    return [b[kind] for b in blocks if isinstance(b.get(kind), Mapping)]


def cited(body: Mapping[str, Any], seed: str, text: str) -> tuple[str, str, JsonObject] | None:
    """The answer as its own words and a passage cited from the first document that asks for
    citations (``citations: {"enabled": true}``), with the citation; None when none asks."""
    documents = blocks_of(body, "document")
    asking = [i for i, d in enumerate(documents) if (d.get("citations") or {}).get("enabled")]
    if not asking:
        return None
    where = {"documentIndex": asking[0], "start": 0, "end": 24}
    citation = {
        "title": str(documents[asking[0]].get("name", "document")),
        "sourceContent": [{"text": f"the cited passage {seed[:6]}"}],
        "location": {"documentChar": where},
    }
    return text[: len(text) // 2], text[len(text) // 2 :], citation


def reasoning(body: Mapping[str, Any], seed: str) -> tuple[str, str] | None:
    """The reasoning text and signature of a request that asks the model to think
    (``additionalModelRequestFields``: Anthropic's ``thinking``, or ``reasoning_config``)."""
    fields = body.get("additionalModelRequestFields")
    if not isinstance(fields, Mapping) or not (
        "thinking" in fields or "reasoning_config" in fields
    ):
        return None
    return f"Thinking it over ({seed[:6]}): the question asks for a short answer.", f"sig{seed}"


def asked_fields(body: Mapping[str, Any]) -> JsonObject | None:
    """The ``additionalModelResponseFields`` of a request that names some (by JSON pointer):
    each named top-level field, null (as Anthropic's ``stop_sequence`` is when none was hit)."""
    paths = body.get("additionalModelResponseFieldPaths")
    if not isinstance(paths, list) or not paths:
        return None
    return {str(path).strip("/").split("/")[0]: None for path in paths}
