"""OpenAI's Responses API as the `openai` SDK sees it: `POST /v1/responses`, JSON and SSE events.

The answer follows the chat route's rules (deterministic text per request, a function call when
one is queued and tools are offered, a quoted tool result when the input ends with
`function_call_output` items, JSON fitting `text.format`'s schema). Usage reports the
instructions and tools as cached input tokens when the request names a `prompt_cache_key`, and
reasoning tokens (part of the output tokens) when it asks for `reasoning`, with a reasoning item
before the answer (its summary when `reasoning.summary` is set, an opaque `encrypted_content`
when `include` asks for `reasoning.encrypted_content`), and a `web_search_call` item before
an answer that used a web search tool. The output text
carries the log-probabilities of its tokens (with `top_logprobs` alternatives) when `include`
asks for `message.output_text.logprobs`; streamed, each text delta carries those of its tokens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spark.testing import _answers
from spark.testing._exchange import (
    Exchange,
    JsonObject,
    Reply,
    UsageScript,
    json_reply,
    stream_reply,
)

PROVIDER = "openai"
_REASONING_TOKENS = {"minimal": 8, "low": 16, "medium": 32, "high": 64, "xhigh": 96}
_DEFAULT_REASONING_TOKENS = 32
_LOGPROBS = "message.output_text.logprobs"
_SEALED_REASONING = "reasoning.encrypted_content"


@dataclass(frozen=True)
class _Answer:
    """What one request is answered: its text (a function call's arguments when it calls one)."""

    seed: str
    text: str
    call_name: str | None
    usage: JsonObject
    tokens: tuple[JsonObject, ...] = ()  # the text's token logprobs, when asked for
    refused: bool = False  # `text` is a refusal (``ProviderServer.queue_refusal``)
    sourced: bool = False  # it used a web search tool: its text cites a page
    reasoning: JsonObject | None = None  # the reasoning item before the answer, if it reasons
    cut: bool = False  # it stopped at `max_output_tokens` (`text` is the first half)


def _answer_of(exchange: Exchange) -> _Answer:
    body = exchange.body
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
    seed = _answers.request_seed(PROVIDER, exchange.model, body)
    text = _answers.answer_text(seed, exchange.plan.answer_chars, tool_result=_tool_result(items))
    text = _answers.scripted_text(exchange.plan.text, _asked_schema(body), seed, text)
    if exchange.plan.refusal is not None:
        refusal = exchange.plan.refusal
        usage = _usage(body, items, refusal, exchange.plan.usage)
        return _Answer(seed, refusal, None, usage, refused=True)
    call = exchange.plan.tool_call
    if call is not None:
        text = json.dumps(call.arguments)
    cut = exchange.plan.cut_off
    text = _answers.cut_off(text) if cut else text
    include = body.get("include")
    tokens: tuple[JsonObject, ...] = ()
    if call is None and isinstance(include, list) and _LOGPROBS in include:
        top = body.get("top_logprobs")
        tokens = _answers.token_logprobs(seed, text, top if isinstance(top, int) else 0)
    tools = body.get("tools")
    sourced = call is None and any(
        isinstance(t, Mapping) and str(t.get("type", "")).startswith("web_search")
        for t in (tools if isinstance(tools, list) else [])
    )
    usage = _usage(body, items, text, exchange.plan.usage)
    reasoning = _reasoning_item(body, seed)
    name = call.name if call else None
    return _Answer(seed, text, name, usage, tokens, sourced=sourced, reasoning=reasoning, cut=cut)


def _reasoning_item(body: Mapping[str, Any], seed: str) -> JsonObject | None:
    """The reasoning item of a request that asks for `reasoning` (an effort other than none)."""
    reasoning = body.get("reasoning")
    if not isinstance(reasoning, Mapping) or not _reasoning_tokens(reasoning):
        return None
    item: JsonObject = {"id": f"rs_{_answers.short_id(seed)}", "type": "reasoning", "summary": []}
    if reasoning.get("summary"):
        text = f"Thinking it over ({seed[:6]}): the question asks for a short answer."
        item["summary"] = [{"type": "summary_text", "text": text}]
    include = body.get("include")
    if isinstance(include, list) and _SEALED_REASONING in include:
        item["encrypted_content"] = f"gAAAAB{_answers.short_id(f'{seed}:sealed', 40)}"
    return item


def _tool_result(items: list[Any]) -> str | None:
    """The outputs of the trailing `function_call_output` items, if the input ends with them."""
    results: list[str] = []
    for item in reversed(items):
        if not isinstance(item, Mapping) or item.get("type") != "function_call_output":
            break
        results.insert(0, _answers.text_of(item.get("output")))
    return " ".join(results) if results else None


def _asked_schema(body: Mapping[str, Any]) -> Any:
    """The JSON schema of `text.format: {"type": "json_schema", "schema": ...}`, if asked for."""
    text = body.get("text")
    found = text.get("format") if isinstance(text, Mapping) else None
    if isinstance(found, Mapping) and found.get("type") == "json_schema":
        return found.get("schema")
    return None


def _usage(
    body: Mapping[str, Any], items: list[Any], text: str, script: UsageScript | None
) -> JsonObject:
    """The Responses API's usage (a scripted count, ``queue_usage``, adds to the request's own)."""
    prefix = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    if body.get("tools"):
        prefix.append(_answers.canonical_json(body["tools"]))
    fragments = [*prefix, *_answers.collect_text(items), *_outputs(items)]
    input_tokens = _answers.input_tokens(fragments)
    cached = _answers.input_tokens(prefix) if prefix and body.get("prompt_cache_key") else 0
    cached = min(cached, input_tokens)
    reasoning = _reasoning_tokens(body.get("reasoning"))
    written = 0
    if script is not None:
        cached += script.cache_read_tokens
        written = script.cache_write_tokens
        reasoning += script.reasoning_tokens
        input_tokens += script.cache_read_tokens + written
    output_tokens = _answers.token_count(len(text)) + reasoning
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def _outputs(items: list[Any]) -> list[str]:
    return [
        _answers.text_of(item.get("output"))
        for item in items
        if isinstance(item, Mapping) and item.get("type") == "function_call_output"
    ]


def _reasoning_tokens(reasoning: Any) -> int:
    if not isinstance(reasoning, Mapping):
        return 0
    effort = reasoning.get("effort")
    if effort == "none":
        return 0
    return _REASONING_TOKENS.get(str(effort), _DEFAULT_REASONING_TOKENS)


# -- the response object ----------------------------------------------------------------------


def _item(answer: _Answer, status: str = "completed") -> JsonObject:
    """The output item: a function call, else an assistant message with one `output_text`."""
    if answer.call_name is not None:
        return {
            "id": f"fc_{_answers.short_id(answer.seed)}",
            "type": "function_call",
            "status": status,
            "call_id": f"call_{_answers.short_id(answer.seed)}",
            "name": answer.call_name,
            "arguments": answer.text if status == "completed" else "",
        }
    content = [_part(answer)] if status == "completed" else []
    return {
        "id": f"msg_{_answers.short_id(answer.seed)}",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _before(answer: _Answer) -> list[JsonObject]:
    """The items before the answer's: the reasoning, then the web search it ran."""
    items = [answer.reasoning] if answer.reasoning else []
    if answer.sourced:
        action = {"type": "search", "query": answer.text[:24]}
        search_id = f"ws_{_answers.short_id(answer.seed)}"
        items.append(
            {"id": search_id, "type": "web_search_call", "status": "completed", "action": action}
        )
    return items


def _output(answer: _Answer) -> list[JsonObject]:
    return [*_before(answer), _item(answer)]


def _part(answer: _Answer) -> JsonObject:
    """The message's content part: the text, or the refusal."""
    if answer.refused:
        return {"type": "refusal", "refusal": answer.text}
    part = _text_part(answer.text, answer.tokens)
    if answer.sourced:
        url, title = _answers.source(answer.seed)
        cited = {"start_index": 0, "end_index": len(answer.text), "title": title, "url": url}
        part["annotations"] = [{"type": "url_citation", **cited}]
    return part


def _text_part(text: str, tokens: tuple[JsonObject, ...] = ()) -> JsonObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": list(tokens)}


def _response(exchange: Exchange, answer: _Answer, *, done: bool) -> JsonObject:
    """The `Response` object; `done=False` gives it as `response.created` shows it."""
    body = exchange.body
    created = int(time.time())
    payload: JsonObject = {
        "id": f"resp_{_answers.short_id(answer.seed)}",
        "object": "response",
        "created_at": created,
        "status": ("incomplete" if answer.cut else "completed") if done else "in_progress",
        "completed_at": created if done else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and answer.cut else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": _answers.snapshot(exchange.model, "-2024-07-18"),
        "output": _output(answer) if done else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": answer.usage if done else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    return payload


def responses(exchange: Exchange) -> Reply:
    """Answer `POST /v1/responses` without streaming: one `Response` object."""
    return json_reply(_response(exchange, _answer_of(exchange), done=True))


# -- the event stream -------------------------------------------------------------------------


class _Events:
    """Numbered server-sent events (`event: <type>` and the JSON with `sequence_number`)."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def _deltas(answer: _Answer) -> list[tuple[str, list[JsonObject]]]:
    """The text deltas of a streamed answer, each with the logprobs of its tokens (if asked)."""
    if not answer.tokens:
        return [(piece, []) for piece in _answers.split_chunks(answer.text)]
    return [
        ("".join(token["token"] for token in group), list(group))
        for group in _answers.token_groups(answer.tokens)
    ]


def _before_events(event: _Events, items: list[JsonObject]) -> list[bytes]:
    """The events of the items before the answer's: a reasoning item's summary streamed, a web
    search's progress, each between its ``output_item.added`` and ``.done``."""
    events: list[bytes] = []
    for index, item in enumerate(items):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            events.extend(_reasoning_events(event, item, index))
            continue
        started = {**item, "status": "in_progress"}
        events.append(event("response.output_item.added", output_index=index, item=started))
        for stage in ("in_progress", "searching", "completed"):
            events.append(event(f"response.web_search_call.{stage}", **where))
        events.append(event("response.output_item.done", output_index=index, item=item))
    return events


def _reasoning_events(event: _Events, item: JsonObject, index: int) -> list[bytes]:
    """The events of a reasoning item: its summary streamed, then the item."""
    where = {"item_id": item["id"], "output_index": index}
    started = {**item, "summary": []}
    events = [event("response.output_item.added", output_index=index, item=started)]
    for index, summary in enumerate(item["summary"]):
        place = {**where, "summary_index": index}
        empty = {"type": "summary_text", "text": ""}
        events.append(event("response.reasoning_summary_part.added", **place, part=empty))
        events.extend(
            event("response.reasoning_summary_text.delta", **place, delta=piece)
            for piece in _answers.split_chunks(summary["text"])
        )
        events.append(event("response.reasoning_summary_text.done", **place, text=summary["text"]))
        events.append(event("response.reasoning_summary_part.done", **place, part=summary))
    events.append(event("response.output_item.done", output_index=index, item=item))
    return events


def responses_stream(exchange: Exchange) -> Reply:
    """Answer `POST /v1/responses` with `stream: true`: `response.created`, the output item's
    events (text deltas or function-call argument deltas), then `response.completed` (or
    `response.incomplete`, cut off)."""
    answer = _answer_of(exchange)
    event = _Events()
    started = _response(exchange, answer, done=False)
    item = _item(answer)
    before = _before(answer)
    at = len(before)  # the answer's item follows the reasoning and the search
    where = {"item_id": item["id"], "output_index": at}
    head = [
        event("response.created", response=started),
        event("response.in_progress", response=started),
        *_before_events(event, before),
        event("response.output_item.added", output_index=at, item=_item(answer, "in_progress")),
    ]
    if answer.refused:
        empty = {"type": "refusal", "refusal": ""}
        head.append(event("response.content_part.added", **where, content_index=0, part=empty))
        pieces = [
            event("response.refusal.delta", **where, content_index=0, delta=piece)
            for piece in _answers.split_chunks(answer.text)
        ]
        tail = [
            event("response.refusal.done", **where, content_index=0, refusal=answer.text),
            event("response.content_part.done", **where, content_index=0, part=_part(answer)),
        ]
    elif answer.call_name is None:
        head.append(
            event("response.content_part.added", **where, content_index=0, part=_text_part(""))
        )
        pieces = [
            event("response.output_text.delta", **where, content_index=0, delta=text, logprobs=lp)
            for text, lp in _deltas(answer)
        ]
        done = _part(answer)
        tail = [
            event(
                "response.output_text.done",
                **where,
                content_index=0,
                text=answer.text,
                logprobs=done["logprobs"],
            ),
            event("response.content_part.done", **where, content_index=0, part=done),
        ]
    else:
        pieces = [
            event("response.function_call_arguments.delta", **where, delta=piece)
            for piece in _answers.split_arguments(answer.text)
        ]
        tail = [event("response.function_call_arguments.done", **where, arguments=answer.text)]
    tail.append(event("response.output_item.done", output_index=at, item=item))
    ended = "response.incomplete" if answer.cut else "response.completed"
    tail.append(event(ended, response=_response(exchange, answer, done=True)))
    failure = exchange.plan.stream_failure

    def error_event(status: int) -> bytes:
        code = "rate_limit_exceeded" if status == 429 else "server_error"
        message = f"The stream failed with status {status} (injected by spark.testing)."
        return event("error", code=code, message=message, param=None)

    return stream_reply("text/event-stream", head, pieces, tail, failure, error_event)
