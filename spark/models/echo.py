"""``EchoModel``: an offline model with deterministic answers, behind Spark's cache like any other.

It needs no provider SDK, no network and no key: use it in your own tests, in examples, and
wherever a real model is not the point (``spark demo`` runs on it when no SDK is installed).
Its answers follow one rule (docs/models.md, "EchoModel"):

- the text is ``"Echo: "`` and the text of the last user message;
- ``stop=`` cuts it before the first stop string, ``max_tokens=N`` keeps its first N words
  (finish reason ``length``), ``n=K`` returns K identical choices;
- a tool forced by ``tool_choice`` (``"required"``, ``"any"``, or a tool's name) is called
  once with no arguments instead (finish reason ``tool_calls``);
- usage counts words; a call costs $0 unless ``pricing=`` says otherwise;
- ``embed`` returns unit vectors made from the SHA-256 of each text (``dimensions``, default 8).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, Unpack

from spark.errors import ConfigError
from spark.models import _echo_convert as convert
from spark.models.base import Messages, Model, ModelOptions, StreamPiece
from spark.models.structured import example_of
from spark.models.wire import WireCall
from spark.types import Choice, EmbeddingResponse, ModelResponse, Price, ToolCall, Usage

__all__ = ["EchoModel", "echo_answer", "echo_vector"]

PROVIDER = "echo"
_FREE = Price(0.0, 0.0)
_CHUNK = re.compile(r"\S+\s*|\s+")


class EchoModel(Model):
    """An offline model whose answer repeats the last user message (see the module docstring).

    ``latency`` (seconds) makes every provider call take that long, so a cache hit can be told
    from a miss by the clock. Everything else is the ``Model`` of every provider: the same
    cache settings, keys, streams and embeddings.
    """

    provider: ClassVar[str] = PROVIDER

    def __init__(
        self, model_id: str = "echo", *, latency: float = 0.0, **model_options: Unpack[ModelOptions]
    ) -> None:
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise ConfigError(f"latency must be a number of seconds >= 0, got {latency!r}")
        model_options["pricing"] = _with_free_price(model_id, model_options.get("pricing"))
        super().__init__(model_id, **model_options)
        self.latency = float(latency)

    def _prepare_chat(self, messages: Messages, params: Mapping[str, Any]) -> WireCall:
        return convert.prepare_chat(self.model_id, messages, params)

    def _prepare_embedding(self, texts: list[str], params: Mapping[str, Any]) -> WireCall:
        return convert.prepare_embedding(self.model_id, texts, params)

    async def _complete(self, call: WireCall) -> ModelResponse:
        await asyncio.sleep(self.latency)
        return echo_answer(call.arguments)

    async def _stream(self, call: WireCall) -> AsyncIterator[StreamPiece]:
        await asyncio.sleep(self.latency)
        response = echo_answer(call.arguments)
        for chunk in _CHUNK.findall(response.text):
            yield chunk
        yield response

    async def _embed(self, call: WireCall) -> EmbeddingResponse:
        await asyncio.sleep(self.latency)
        texts: list[str] = call.arguments["input"]
        dimensions: int = call.arguments.get("dimensions", 8)
        vectors = [echo_vector(text, dimensions) for text in texts]
        return EmbeddingResponse(vectors, Usage(sum(_words(text) for text in texts), 0))


def echo_answer(arguments: Mapping[str, Any]) -> ModelResponse:
    """The answer to a prepared echo call (pure: the same request, the same answer)."""
    messages: list[dict[str, Any]] = arguments["messages"]
    users = [m for m in messages if m["role"] == "user"]
    text = "Echo: " + (convert.message_text(users[-1]) if users else "")
    finish = "stop"
    text = _cut_at_stop(text, arguments.get("stop"))
    limit = arguments.get("max_tokens")
    if limit is not None and _words(text) > limit:
        text, finish = " ".join(text.split()[:limit]), "length"
    schema = arguments.get("output_schema")
    if isinstance(schema, Mapping):  # asked for JSON: an example that fits the schema
        text = json.dumps(example_of(schema, text))
    forced = _forced_tool(arguments.get("tools") or [], arguments.get("tool_choice"))
    calls = (ToolCall("echo_call_0", forced, {}),) if forced else ()
    if forced:
        text, finish = "", "tool_calls"
    read = [*arguments["system"], *(convert.message_text(m) for m in messages)]
    usage = Usage(sum(_words(part) for part in read if isinstance(part, str)), _words(text))
    choice = Choice(text, calls, finish)
    return ModelResponse.of_choices((choice,) * arguments.get("n", 1), usage)


def echo_vector(text: str, dimensions: int = 8) -> list[float]:
    """A unit vector of ``dimensions`` floats derived from the SHA-256 of ``text``."""
    raw = []
    for index in range(dimensions):
        digest = hashlib.sha256(f"{index}:{text}".encode()).digest()
        raw.append(int.from_bytes(digest[:8], "big") / 2**63 - 1.0)
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def _words(text: str) -> int:
    return len(text.split())


def _cut_at_stop(text: str, stop: Any) -> str:
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    cuts = [text.find(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text


def _forced_tool(tools: Sequence[Any], choice: Any) -> str | None:
    """The name of the tool ``choice`` forces, or None (``auto``, ``none``, no choice)."""
    names = [name for name in map(_tool_name, tools) if name]
    if not names or choice is None or choice in ("auto", "none"):
        return None
    if choice in ("required", "any"):
        return names[0]
    wanted = choice if isinstance(choice, str) else _tool_name(choice)
    return wanted if wanted in names else None


def _tool_name(tool: Any) -> str | None:
    """A tool's name in any spelling: neutral, OpenAI's ``function``, Bedrock's ``toolSpec``."""
    if not isinstance(tool, Mapping):
        return None
    for nested in ("function", "toolSpec", "tool"):
        inner = tool.get(nested)
        if isinstance(inner, Mapping) and isinstance(inner.get("name"), str):
            return str(inner["name"])
    name = tool.get("name")
    return name if isinstance(name, str) else None


def _with_free_price(model_id: str, pricing: Any) -> Price | Mapping[str, Price]:
    """``pricing`` with a $0 price for ``model_id`` unless it names one."""
    if pricing is None:
        return _FREE
    if isinstance(pricing, Price):
        return pricing
    return {model_id: _FREE, **pricing}
