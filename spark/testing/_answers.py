"""Deterministic fake model output: answer text, token counts, stream pieces and embeddings.

Everything here is a pure function of the request, so one request always gets one answer and
its streamed and non-streamed forms agree; nothing here knows about HTTP or wire formats.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Flags that change how an answer is delivered, not what it says.
STREAM_KEYS = frozenset({"stream", "stream_options"})

# Keys whose string values are text a model would read (and bill as input tokens).
_TEXT_KEYS = frozenset({"text", "content", "arguments", "inputText", "input"})
# Keys whose structured values are tool arguments or results, read as their JSON text.
_JSON_KEYS = frozenset({"json", "response", "args", "input"})

# fmt: off
_VOCABULARY = (
    "the", "cache", "keeps", "every", "answer", "close", "at", "hand", "so", "tests", "run",
    "fast", "and", "offline", "while", "the", "model", "replies", "with", "steady", "words",
    "about", "clouds", "rivers", "maps", "lanterns", "orchards", "bridges", "signals",
    "harbors", "gardens", "engines", "meadows", "ledgers", "compasses", "tides", "beacons",
)
# fmt: on

_MIN_STREAM_CHUNKS = 3
_MAX_STREAM_CHUNK_CHARS = 32
_TOKEN = re.compile(r" ?[^ ]+| +")
_ALTERNATIVES = (" the", " a", " and", " of", " to", ".", ",", " cache", " answer")


def canonical_json(value: Any) -> str:
    """Serialize `value` so equal values always give equal text (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_seed(provider: str, model: str, body: Mapping[str, Any]) -> str:
    """Return the hex digest that fixes the answer to one request, ignoring stream flags."""
    content = {key: value for key, value in body.items() if key not in STREAM_KEYS}
    material = canonical_json({"provider": provider, "model": model, "body": content})
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def answer_text(seed: str, chars: int, *, tool_result: str | None = None) -> str:
    """Return readable words of exactly `chars` characters (longer only to quote a tool result).

    A tool result is quoted whole, so a model -> tool -> model loop can see that it came back.
    """
    head = f"Answer {seed[:6]}:"
    target = chars
    if tool_result is not None:
        head += f" the tool returned {tool_result}."
        target = max(chars, len(head) + 1)
    rng = random.Random(seed)
    words = [head]
    length = len(head)
    while length < target:
        word = rng.choice(_VOCABULARY)
        words.append(word)
        length += 1 + len(word)
    text = " ".join(words)[:target]
    if len(text) > len(head) + 1:
        text = text[:-1] + "."
    return text


def token_count(chars: int) -> int:
    """Estimate tokens the way providers roughly bill them: one per four characters, at least 1."""
    return max(1, math.ceil(chars / 4))


def collect_text(value: Any) -> list[str]:
    """Return every piece of text a model would read in a request fragment, in order."""
    found: list[str] = []
    _collect(value, None, found)
    return found


def text_of(value: Any) -> str:
    """Return a content value as one string: itself when it is text, else its texts joined."""
    if isinstance(value, str):
        return value
    return " ".join(collect_text(value))


def _collect(value: Any, key: str | None, found: list[str]) -> None:
    if isinstance(value, str):
        if key in _TEXT_KEYS:
            found.append(value)
    elif isinstance(value, Mapping):
        if key in _JSON_KEYS:
            found.append(canonical_json(value))
            return
        for child_key, child in value.items():
            _collect(child, str(child_key), found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, key, found)


def input_tokens(fragments: Iterable[str]) -> int:
    """Return the input token estimate for the texts a request sends."""
    return token_count(sum(len(fragment) for fragment in fragments))


def split_chunks(text: str) -> list[str]:
    """Split `text` into stream pieces of at most 32 characters, at least three when it can."""
    size = max(1, min(_MAX_STREAM_CHUNK_CHARS, math.ceil(len(text) / _MIN_STREAM_CHUNKS)))
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


def token_logprobs(seed: str, text: str, top: int) -> tuple[dict[str, Any], ...]:
    """Return deterministic log-probabilities of the text's tokens (words with their space), each
    with its ``top`` most likely tokens: the shape OpenAI's chat and Responses APIs share."""
    rng = random.Random(f"logprobs:{seed}")
    entries = []
    for token in _TOKEN.findall(text):
        logprob = -round(rng.random() * 2, 6)
        others = [rng.choice(_ALTERNATIVES) for _ in range(max(0, top - 1))]
        ranked = [(token, logprob)] + [
            (other, round(logprob - 1 - rank, 6)) for rank, other in enumerate(others)
        ]
        entries.append(
            {**_token(token, logprob), "top_logprobs": [_token(t, lp) for t, lp in ranked[:top]]}
        )
    return tuple(entries)


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def token_groups(tokens: tuple[dict[str, Any], ...]) -> list[tuple[dict[str, Any], ...]]:
    """Split token logprobs into the stream pieces that carry them (at least three when it can);
    a piece's text is its tokens' text joined."""
    size = max(1, math.ceil(len(tokens) / _MIN_STREAM_CHUNKS))
    return [tokens[start : start + size] for start in range(0, len(tokens), size)]


def cut_off(text: str) -> str:
    """The first half of ``text``: what an answer stopped at the token limit got out."""
    return text[: len(text) // 2]


def split_arguments(arguments: str) -> list[str]:
    """Split a tool call's JSON arguments into a few stream pieces, as providers deliver them."""
    size = max(1, math.ceil(len(arguments) / _MIN_STREAM_CHUNKS))
    return [arguments[start : start + size] for start in range(0, len(arguments), size)] or [""]


def embedding(provider: str, model: str, text: str, dimensions: int) -> list[float]:
    """Return a unit-length vector fixed by the provider, model and text."""
    material = canonical_json({"provider": provider, "model": model, "text": text})
    rng = random.Random(hashlib.sha256(material.encode("utf-8")).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(component * component for component in vector)) or 1.0
    return [component / norm for component in vector]


def short_id(seed: str, length: int = 24) -> str:
    """Return a stable identifier fragment (response ids, tool call ids) from a seed."""
    return hashlib.sha256(f"id:{seed}".encode()).hexdigest()[:length]


def scripted_text(plan_text: str | None, schema: Any, seed: str, generated: str) -> str:
    """The text of an answer: the scripted one, else JSON fitting the asked-for schema (as a
    model with structured output answers), else the generated words."""
    if plan_text is not None:
        return plan_text
    if isinstance(schema, str):  # (Bedrock sends its schema as JSON text)
        try:
            schema = json.loads(schema)
        except ValueError:
            schema = None
    if isinstance(schema, Mapping):
        from spark.models.structured import example_of  # (pure; the model layer owns schemas)

        return json.dumps(example_of(schema, f"answer {seed[:6]}"))
    return generated


def source(seed: str) -> tuple[str, str]:
    """The web page an answer that searched the web cites: its URL and title."""
    return f"https://example.com/spark-testing/{seed[:8]}", f"Source {seed[:6]}"


_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$|-\d{3}$")


def snapshot(model: str, suffix: str) -> str:
    """The model id an answer names, as the services do: the snapshot that answered (``suffix``
    added to an alias such as ``gpt-4o-mini``; an id that names its snapshot kept)."""
    return model if _DATED.search(model) else f"{model}{suffix}"
