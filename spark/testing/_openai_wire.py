"""OpenAI's HTTP API as the `openai` SDK sees it: chat completions (plain, SSE), embeddings and
the Responses API (`_openai_responses_wire`)."""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spark.testing import _answers, _openai_responses_wire
from spark.testing._exchange import (
    Exchange,
    JsonObject,
    Reply,
    Route,
    ToolCall,
    UsageScript,
    Wire,
    json_reply,
    sse_event,
    status_phrase,
    stream_reply,
)

PROVIDER = "openai"
_DEFAULT_DIMENSIONS = {"text-embedding-3-large": 3072}
_FALLBACK_DIMENSIONS = 1536
_MAX_CHOICES = 128  # the API's own limit on `n`
_ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_value"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def error(status: int, message: str) -> Reply:
    """Return OpenAI's error body: `{"error": {message, type, param, code}}`."""
    return json_reply({"error": _error_object(status, message)}, status=status)


def _error_object(status: int, message: str) -> JsonObject:
    kind, code = _ERROR_KINDS.get(status, ("server_error", None))
    return {"message": message, "type": kind, "param": None, "code": code}


def _stream_error(status: int) -> bytes:
    return sse_event({"error": _error_object(status, status_phrase(status))})


def offers_tools(body: Mapping[str, Any]) -> bool:
    """Return whether the request lets the model call a tool (or a legacy ``functions`` one)."""
    if body.get("tools"):
        return body.get("tool_choice") != "none"
    return bool(body.get("functions")) and body.get("function_call") != "none"


def _legacy(body: Mapping[str, Any]) -> bool:
    """Whether the request offers legacy ``functions`` (answered with ``function_call``)."""
    return not body.get("tools") and bool(body.get("functions"))


def _tool_result(messages: list[Any]) -> str | None:
    """Return the content of the trailing tool messages, if the conversation ends with them."""
    results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("tool", "function"):
            break
        results.insert(0, _answers.text_of(message.get("content")))
    return " ".join(results) if results else None


@dataclass(frozen=True)
class _Answer:
    """One choice of a chat answer: its text (a tool call's arguments when it calls one)."""

    index: int
    seed: str
    text: str
    call: ToolCall | None
    tokens: tuple[JsonObject, ...] | None  # logprobs of the text's tokens, when asked for
    refused: bool = False  # `text` is a refusal (``ProviderServer.queue_refusal``)
    sourced: bool = False  # it searched the web (`web_search_options`): it cites a page
    legacy: bool = False  # its call answers legacy `functions` (a `function_call`)
    spoken: bool = False  # it answers in audio (`modalities` has "audio"): `text` its transcript
    cut: bool = False  # it stopped at the token limit (`text` is the first half)


def _asked_schema(body: Mapping[str, Any]) -> Any:
    """The JSON schema of ``response_format: {"type": "json_schema", ...}``, if asked for."""
    found = body.get("response_format")
    spec = found.get("json_schema") if isinstance(found, Mapping) else None
    return spec.get("schema") if isinstance(spec, Mapping) else None


def _answers_of(exchange: Exchange) -> tuple[list[_Answer], int]:
    """Return the `n` choices of a chat request and its input token count."""
    body = exchange.body
    messages = body.get("messages") or []
    seed = _answers.request_seed(PROVIDER, exchange.model, body)
    call = exchange.plan.tool_call
    asked_top = body.get("top_logprobs")
    top = asked_top if isinstance(asked_top, int) else 0
    answers = []
    for index in range(_choice_count(body)):
        # The first choice is the answer of a plain request; the others are seeded from it.
        choice_seed = seed if index == 0 else _answers.short_id(f"{seed}:{index}", 64)
        text = _answers.answer_text(
            choice_seed, exchange.plan.answer_chars, tool_result=_tool_result(messages)
        )
        text = _answers.scripted_text(exchange.plan.text, _asked_schema(body), choice_seed, text)
        if call is not None:
            text = json.dumps(call.arguments)
        cut = index == 0 and exchange.plan.cut_off
        text = _answers.cut_off(text) if cut else text
        tokens = (
            _answers.token_logprobs(choice_seed, text, top)
            if body.get("logprobs") is True
            else None
        )
        if index == 0 and exchange.plan.refusal is not None:
            answers.append(_Answer(index, choice_seed, exchange.plan.refusal, None, None, True))
            continue
        sourced = index == 0 and call is None and body.get("web_search_options") is not None
        logged = tokens if call is None else None
        legacy = call is not None and _legacy(body)
        modalities = body.get("modalities")
        spoken = call is None and isinstance(modalities, list) and "audio" in modalities
        answers.append(
            _Answer(
                index,
                choice_seed,
                text,
                call,
                logged,
                sourced=sourced,
                legacy=legacy,
                spoken=spoken,
                cut=cut,
            )
        )
    fragments = _answers.collect_text(messages)
    for name in ("tools", "functions"):
        if body.get(name):
            fragments.append(_answers.canonical_json(body[name]))
    return answers, _answers.input_tokens(fragments)


def _choice_count(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= _MAX_CHOICES else 1


def _logprobs(tokens: tuple[JsonObject, ...] | None) -> JsonObject | None:
    return None if tokens is None else {"content": list(tokens), "refusal": None}


def _usage(prompt_tokens: int, answers: list[_Answer], script: UsageScript | None) -> JsonObject:
    """OpenAI's usage: cached tokens are part of ``prompt_tokens``, reasoning tokens part of
    ``completion_tokens`` (a scripted count adds to the request's own)."""
    cached = script.cache_read_tokens if script else 0
    written = script.cache_write_tokens if script else 0
    reasoning = script.reasoning_tokens if script else 0
    prompt_tokens += cached + written
    completion_tokens = reasoning + sum(_answers.token_count(len(a.text)) for a in answers)
    details = {"cached_tokens": cached, "audio_tokens": 0}
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": details | ({"cache_write_tokens": written} if written else {}),
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }


def _envelope(seed: str, model: str, kind: str) -> JsonObject:
    return {
        "id": f"chatcmpl-{_answers.short_id(seed)}",
        "object": kind,
        "created": int(time.time()),
        "model": _answers.snapshot(model, "-2024-07-18"),
        "system_fingerprint": "fp_spark_testing",
        "service_tier": "default",
    }


def chat(exchange: Exchange) -> Reply:
    """Answer `POST /v1/chat/completions` without streaming: `n` choices, logprobs if asked."""
    answers, prompt_tokens = _answers_of(exchange)
    payload = _envelope(answers[0].seed, exchange.model, "chat.completion")
    payload["choices"] = [_choice_object(answer) for answer in answers]
    payload["usage"] = _usage(prompt_tokens, answers, exchange.plan.usage)
    return json_reply(payload)


def _choice_object(answer: _Answer) -> JsonObject:
    message: JsonObject = {
        "role": "assistant",
        "content": answer.text,
        "refusal": None,
        "annotations": [],
    }
    finish = "stop"
    if answer.sourced:
        message["annotations"] = _annotations(answer)
    if answer.refused:
        message["content"], message["refusal"] = None, answer.text
    if answer.spoken:
        message["content"], message["audio"] = None, _audio(answer)
    if answer.call is not None and answer.legacy:
        message["content"] = None
        message["function_call"] = {"name": answer.call.name, "arguments": answer.text}
        finish = "function_call"
    elif answer.call is not None:
        message["content"] = None
        message["tool_calls"] = [_tool_call_object(answer.seed, answer.call.name, answer.text)]
        finish = "tool_calls"
    logprobs = _logprobs(answer.tokens)
    return {
        "index": answer.index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": "length" if answer.cut else finish,
    }


def _audio(answer: _Answer) -> JsonObject:
    """The `message.audio` of an answer in audio: a WAV-headed clip and its transcript."""
    data = base64.b64encode(b"RIFF" + answer.seed.encode()).decode()
    audio_id = f"audio_{_answers.short_id(answer.seed)}"
    return {"id": audio_id, "data": data, "expires_at": 1_900_000_000, "transcript": answer.text}


def _annotations(answer: _Answer) -> list[JsonObject]:
    """The `url_citation` of an answer that searched the web."""
    url, title = _answers.source(answer.seed)
    cited = {"start_index": 0, "end_index": len(answer.text), "title": title, "url": url}
    return [{"type": "url_citation", "url_citation": cited}]


def _tool_call_object(seed: str, name: str, arguments: str) -> JsonObject:
    call_id = f"call_{_answers.short_id(seed)}"
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_stream(exchange: Exchange) -> Reply:
    """Answer `POST /v1/chat/completions` with `stream: true` as server-sent events: each
    chunk carries one choice's delta, the choices' pieces interleaved as the API sends them."""
    answers, prompt_tokens = _answers_of(exchange)
    envelope = _envelope(answers[0].seed, exchange.model, "chat.completion.chunk")
    options = exchange.body.get("stream_options") or {}
    with_usage = isinstance(options, Mapping) and options.get("include_usage") is True

    def chunk(index: int, delta: JsonObject, finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        usage = {"usage": None} if with_usage else {}
        return sse_event({**envelope, "choices": [{**choice, **extra}], **usage})

    head = [chunk(a.index, {"role": "assistant", "content": "", "refusal": None}) for a in answers]
    pieces = _interleaved([_answer_chunks(answer, chunk) for answer in answers])
    tail = [chunk(a.index, {}, _finish(a)) for a in answers]
    if with_usage:
        usage_of_all = _usage(prompt_tokens, answers, exchange.plan.usage)
        tail.append(sse_event({**envelope, "choices": [], "usage": usage_of_all}))
    tail.append(sse_event("[DONE]"))
    failure = exchange.plan.stream_failure
    return stream_reply("text/event-stream", head, pieces, tail, failure, _stream_error)


def _finish(answer: _Answer) -> str:
    if answer.cut:
        return "length"
    if answer.call is None:
        return "stop"
    return "function_call" if answer.legacy else "tool_calls"


def _answer_chunks(answer: _Answer, chunk: Callable[..., bytes]) -> list[bytes]:
    """Return one choice's content (or tool call) chunks, logprobs with the tokens they carry."""
    if answer.call is not None:
        return _tool_call_chunks(answer, answer.call, chunk)
    if answer.refused:
        return [chunk(answer.index, {"refusal": p}) for p in _answers.split_chunks(answer.text)]
    if answer.spoken:  # the transcript in pieces, then the clip, then its id and expiry
        audio = _audio(answer)
        said: list[JsonObject] = [{"transcript": p} for p in _answers.split_chunks(answer.text)]
        said[0]["id"] = audio["id"]
        said += [{"data": audio["data"]}, {"expires_at": audio["expires_at"]}]
        return [chunk(answer.index, {"audio": piece}) for piece in said]
    if answer.tokens is None:
        pieces = [
            chunk(answer.index, {"content": piece}) for piece in _answers.split_chunks(answer.text)
        ]
        if answer.sourced:  # (after the text they cite)
            pieces.append(chunk(answer.index, {"annotations": _annotations(answer)}))
        return pieces
    return [
        chunk(
            answer.index,
            {"content": "".join(entry["token"] for entry in group)},
            logprobs=_logprobs(group),
        )
        for group in _answers.token_groups(answer.tokens)
    ]


def _interleaved(streams: list[list[bytes]]) -> list[bytes]:
    """Return the pieces of several choices taken in turn (choice 0, 1, ..., then again)."""
    longest = max((len(stream) for stream in streams), default=0)
    return [stream[step] for step in range(longest) for stream in streams if step < len(stream)]


def _tool_call_chunks(answer: _Answer, call: ToolCall, chunk: Callable[..., bytes]) -> list[bytes]:
    if answer.legacy:
        parts = ["", *_answers.split_arguments(answer.text)]
        deltas = [{"function_call": {"arguments": part}} for part in parts]
        deltas[0]["function_call"]["name"] = call.name
        return [chunk(answer.index, delta) for delta in deltas]
    first = _tool_call_object(answer.seed, call.name, "")
    pieces: list[bytes] = [chunk(answer.index, {"tool_calls": [{"index": 0, **first}]})]
    for part in _answers.split_arguments(answer.text):
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}
        pieces.append(chunk(answer.index, delta))
    return pieces


def embeddings(exchange: Exchange) -> Reply:
    """Answer `POST /v1/embeddings` in `float` or (the SDK's default) `base64` encoding."""
    body = exchange.body
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) and not _is_tokens(raw) else [raw]
    texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
    default = _DEFAULT_DIMENSIONS.get(exchange.model, _FALLBACK_DIMENSIONS)
    dimensions = int(body.get("dimensions") or default)
    encode = _base64_floats if body.get("encoding_format") == "base64" else list
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": encode(_answers.embedding(PROVIDER, exchange.model, text, dimensions)),
        }
        for index, text in enumerate(texts)
    ]
    tokens = sum(_answers.token_count(len(text)) for text in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_reply({"object": "list", "data": data, "model": exchange.model, "usage": usage})


def _is_tokens(items: list[Any]) -> bool:
    """Return whether an embeddings input list is one text given as token ids."""
    return bool(items) and all(isinstance(item, int) for item in items)


def _base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


WIRE = Wire(
    provider=PROVIDER,
    routes=(
        Route(re.compile(r"^/v1/chat/completions$"), "chat", streamed="chat_stream"),
        Route(re.compile(r"^/v1/embeddings$"), "embeddings"),
        Route(re.compile(r"^/v1/responses$"), "responses", streamed="responses_stream"),
    ),
    handlers={
        "chat": chat,
        "chat_stream": chat_stream,
        "embeddings": embeddings,
        "responses": _openai_responses_wire.responses,
        "responses_stream": _openai_responses_wire.responses_stream,
    },
    error=error,
    offers_tools=offers_tools,
)
