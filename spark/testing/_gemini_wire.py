"""Google Gemini's HTTP API as `google-genai` sees it in API-key mode.

`generateContent`, `streamGenerateContent?alt=sse`, `embedContent` and `batchEmbedContents`
under any API version prefix (`/v1`, which google-genai 3.x uses by default, `/v1beta`, ...).
As the real service does, it answers `candidateCount` candidates (each with its `index`, in
streams too), a `logprobsResult` per candidate when `responseLogprobs` is set (`logprobs` top
alternatives per token), a signed thought before the answer when ``includeThoughts`` is set,
code it ran with its result when it has the code execution tool, an image (inline data) alone
when ``responseModalities`` is ``["IMAGE"]``, and takes any part (inline data, file data) and tool it is sent.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from spark.testing import _answers
from spark.testing._exchange import (
    Exchange,
    JsonObject,
    Reply,
    Route,
    UsageScript,
    Wire,
    json_reply,
    sse_event,
    status_phrase,
    stream_reply,
)

PROVIDER = "gemini"
# The real service separates events with CRLF pairs; the SDK accepts either.
_SSE_SEPARATOR = "\r\n\r\n"
_DEFAULT_DIMENSIONS = 768
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _error_object(status: int, message: str) -> JsonObject:
    fallback = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    return {"code": status, "message": message, "status": _STATUSES.get(status, fallback)}


def error(status: int, message: str) -> Reply:
    """Return Google's error body: `{"error": {code, message, status}}`."""
    return json_reply({"error": _error_object(status, message)}, status=status)


def _stream_error(status: int) -> bytes:
    return sse_event({"error": _error_object(status, status_phrase(status))}, _SSE_SEPARATOR)


def offers_tools(body: Mapping[str, Any]) -> bool:
    """Return whether the request declares functions the model may call."""
    tools = body.get("tools") or []
    declared = any(isinstance(tool, Mapping) and tool.get("functionDeclarations") for tool in tools)
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    return declared and calling.get("mode") != "NONE"


def _tool_result(contents: list[Any]) -> str | None:
    """Return the function responses in the last content, if it carries any."""
    if not contents or not isinstance(contents[-1], Mapping):
        return None
    parts = contents[-1].get("parts") or []
    results = [
        _answers.canonical_json(part["functionResponse"].get("response", {}))
        for part in parts
        if isinstance(part, Mapping) and isinstance(part.get("functionResponse"), Mapping)
    ]
    return " ".join(results) if results else None


def _asked_schema(body: Mapping[str, Any]) -> Any:
    """The JSON schema of ``generationConfig.responseJsonSchema`` (or ``responseSchema``)."""
    config = body.get("generationConfig")
    if not isinstance(config, Mapping):
        return None
    return config.get("responseJsonSchema") or config.get("responseSchema")


def _generate_values(exchange: Exchange) -> tuple[str, list[str], int]:
    """Return the request seed, each candidate's answer text and the prompt token count.

    Candidate 0 answers as a one-candidate request would; candidate ``i`` is seeded apart.
    """
    body = exchange.body
    contents = body.get("contents") or []
    seed = _answers.request_seed(PROVIDER, exchange.model, body)
    tool_result = _tool_result(contents)
    texts = [
        _answers.answer_text(
            seed if index == 0 else f"{seed}:{index}",
            exchange.plan.answer_chars,
            tool_result=tool_result,
        )
        for index in range(_candidate_count(body))
    ]
    texts[0] = _answers.scripted_text(exchange.plan.text, _asked_schema(body), seed, texts[0])
    if exchange.plan.cut_off:
        texts[0] = _answers.cut_off(texts[0])
    fragments = _answers.collect_text([body.get("systemInstruction"), contents])
    if body.get("tools"):
        fragments.append(_answers.canonical_json(body["tools"]))
    return seed, texts, _answers.input_tokens(fragments)


def _config(body: Mapping[str, Any]) -> Mapping[str, Any]:
    config = body.get("generationConfig")
    return config if isinstance(config, Mapping) else {}


def _candidate_count(body: Mapping[str, Any]) -> int:
    count = _config(body).get("candidateCount", _config(body).get("candidate_count"))
    return max(1, int(count)) if isinstance(count, int | float) else 1


def _logprobs(body: Mapping[str, Any], seed: str, tokens: list[str]) -> JsonObject | None:
    """Return a ``logprobsResult`` for ``tokens`` when the request asks for one.

    Log-probabilities are multiples of 1/8 (exact in binary), so the sums of a stream's chunk
    reports add up to the whole answer's exactly.
    """
    config = _config(body)
    if not config.get("responseLogprobs", config.get("response_logprobs")):
        return None
    top = int(config.get("logprobs") or 0)

    def entry(token: str, rank: int) -> JsonObject:
        digest = _answers.short_id(f"{seed}:{token}:{rank}", 4)
        return {"token": token, "logProbability": -(int(digest, 16) % 32 + rank * 8) / 8}

    chosen = [entry(token, 0) for token in tokens]
    result: JsonObject = {
        "chosenCandidates": chosen,
        "logProbabilitySum": sum(item["logProbability"] for item in chosen),
    }
    if top:
        result["topCandidates"] = [
            {"candidates": [entry(token, rank) for rank in range(top)]} for token in tokens
        ]
    return result


def _usage(
    prompt_tokens: int, output_texts: list[str] | None, script: UsageScript | None = None
) -> JsonObject:
    """Gemini's usage: cached content is part of ``promptTokenCount``; thinking tokens are
    ``thoughtsTokenCount``, apart from ``candidatesTokenCount`` (scripted counts, last event)."""
    cached = script.cache_read_tokens if script and output_texts is not None else 0
    prompt_tokens += cached
    usage: JsonObject = {
        "promptTokenCount": prompt_tokens,
        "totalTokenCount": prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if output_texts is not None:
        output_tokens = sum(_answers.token_count(len(text)) for text in output_texts)
        thoughts = script.reasoning_tokens if script else 0
        usage["candidatesTokenCount"] = output_tokens
        usage["totalTokenCount"] = prompt_tokens + output_tokens + thoughts
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
    return usage


def _grounding(body: Mapping[str, Any], seed: str, text: str) -> JsonObject | None:
    """The ``groundingMetadata`` of an answer to a request with the Google Search tool."""
    tools = body.get("tools")
    searched = isinstance(tools, list) and any(
        isinstance(tool, Mapping) and ("googleSearch" in tool or "google_search" in tool)
        for tool in tools
    )
    if not searched:
        return None
    url, title = _answers.source(seed)
    return {
        "webSearchQueries": [text[:24]],
        "groundingChunks": [{"web": {"uri": url, "title": title}}],
        "groundingSupports": [
            {"segment": {"startIndex": 0, "endIndex": len(text)}, "groundingChunkIndices": [0]}
        ],
    }


def _candidate(
    index: int,
    parts: list[JsonObject],
    finish: bool,
    logprobs: JsonObject | None,
    grounding: JsonObject | None = None,
    cut: bool = False,
) -> JsonObject:
    candidate: JsonObject = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish:
        candidate["finishReason"] = "MAX_TOKENS" if cut else "STOP"
        if grounding is not None:  # (a stream reports it with the last piece)
            candidate["groundingMetadata"] = grounding
    if logprobs is not None:
        candidate["logprobsResult"] = logprobs
    return candidate


def _response(
    exchange: Exchange, seed: str, candidates: list[JsonObject], usage: JsonObject
) -> JsonObject:
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": _answers.snapshot(exchange.model, "-001"),
        "responseId": _answers.short_id(seed, 22),
    }


def _function_call_part(exchange: Exchange, seed: str) -> tuple[JsonObject, str] | None:
    """The scripted call as a part; signed (``thoughtSignature``) when the request has the
    model think (a ``thinkingConfig`` whose budget is not 0), as Gemini 2.5 and later sign it."""
    call = exchange.plan.tool_call
    if call is None:
        return None
    part: JsonObject = {"functionCall": {"name": call.name, "args": call.arguments}}
    thinking = _config(exchange.body).get("thinkingConfig")
    if isinstance(thinking, Mapping) and thinking.get("thinkingBudget") != 0:
        part["thoughtSignature"] = base64.b64encode(f"call-sig{seed}".encode()).decode()
    return part, _answers.canonical_json(call.arguments)


def _thought(body: Mapping[str, Any], seed: str) -> list[JsonObject]:
    """The thought parts (pieces of one thought, the signature with the last) of an answer to a
    request that asks for thoughts (``generationConfig.thinkingConfig.includeThoughts``)."""
    thinking = _config(body).get("thinkingConfig", _config(body).get("thinking_config"))
    if not isinstance(thinking, Mapping) or not (
        thinking.get("includeThoughts") or thinking.get("include_thoughts")
    ):
        return []
    text = f"Thinking it over ({seed[:6]}): the question asks for a short answer."
    parts: list[JsonObject] = [
        {"text": piece, "thought": True} for piece in _answers.split_chunks(text)
    ]
    signature = base64.b64encode(f"sig{seed}".encode()).decode()
    parts[-1]["thoughtSignature"] = signature
    return parts


def _code_run(body: Mapping[str, Any], seed: str) -> list[JsonObject]:
    """The code a request with the code execution tool runs before it answers, and its result."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not any(
        isinstance(tool, Mapping) and ("codeExecution" in tool or "code_execution" in tool)
        for tool in tools
    ):
        return []
    return [
        {"executableCode": {"language": "PYTHON", "code": f"print({seed[:6]!r})"}},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": f"{seed[:6]}\n"}},
    ]


def _image_only(body: Mapping[str, Any]) -> bool:
    """Whether the request asks for an image and nothing else (``responseModalities``)."""
    modalities = _config(body).get("responseModalities", _config(body).get("response_modalities"))
    return isinstance(modalities, list) and [str(m).upper() for m in modalities] == ["IMAGE"]


def _image_part(seed: str) -> JsonObject:
    """A generated image: PNG's signature and the seed (the same request, the same bytes)."""
    data = base64.b64encode(b"\x89PNG\r\n\x1a\n" + seed.encode()).decode()
    return {"inlineData": {"mimeType": "image/png", "data": data}}


def _is_answer(part: JsonObject) -> bool:
    return "text" in part and not part.get("thought")


def _pieces(
    exchange: Exchange, seed: str, texts: list[str]
) -> tuple[list[list[JsonObject]], list[str]]:
    """Return each candidate's stream pieces (parts) and the texts billed as output.

    A scripted tool call is the first candidate's answer, in one piece; text is split in chunks.
    The first candidate's thought, when asked for, comes before its answer, and so does the code
    it runs when it has the code execution tool.
    """
    pieces = [[{"text": piece} for piece in _answers.split_chunks(text)] for text in texts]
    billed = list(texts)
    function_call = _function_call_part(exchange, seed)
    if function_call is not None:
        pieces[0], billed[0] = [function_call[0]], function_call[1]
    if function_call is None and _image_only(exchange.body):
        pieces[0], billed[0] = [_image_part(seed)], ""
    elif function_call is None:
        pieces[0] = [*_code_run(exchange.body, seed), *pieces[0]]
    pieces[0] = [*_thought(exchange.body, seed), *pieces[0]]
    return pieces, billed


def generate(exchange: Exchange) -> Reply:
    """Answer `POST /{version}/models/{model}:generateContent` (every candidate asked for)."""
    seed, texts, prompt_tokens = _generate_values(exchange)
    pieces, billed = _pieces(exchange, seed, texts)
    candidates = []
    for index, parts in enumerate(pieces):
        tokens = [part["text"] for part in parts if _is_answer(part)]
        logprobs = _logprobs(exchange.body, f"{seed}:{index}", tokens)
        thought = [part for part in parts if part.get("thought")]
        if thought:
            text = "".join(part["text"] for part in thought)
            thought = [{**thought[-1], "text": text}]
        ran = [part for part in parts if not part.get("thought") and "text" not in part]
        merged = [*thought, *ran, *([{"text": "".join(tokens)}] if tokens else [])]
        grounding = _grounding(exchange.body, seed, texts[0]) if index == 0 else None
        cut = index == 0 and exchange.plan.cut_off
        candidates.append(_candidate(index, merged, True, logprobs, grounding, cut))
    usage = _usage(prompt_tokens, billed, exchange.plan.usage)
    return json_reply(_response(exchange, seed, candidates, usage))


def generate_stream(exchange: Exchange) -> Reply:
    """Answer `POST /{version}/models/{model}:streamGenerateContent?alt=sse` as SSE events.

    Event ``i`` carries piece ``i`` of every candidate that has one, each with its ``index``
    and the log-probabilities of that piece; the last event carries the usage.
    """
    seed, texts, prompt_tokens = _generate_values(exchange)
    pieces, billed = _pieces(exchange, seed, texts)
    count = max(len(parts) for parts in pieces)
    events = []
    for step in range(count):
        candidates = []
        for index, parts in enumerate(pieces):
            if step >= len(parts):
                continue
            part = parts[step]
            tokens = [part["text"]] if _is_answer(part) else []
            logprobs = _logprobs(exchange.body, f"{seed}:{index}", tokens)
            grounding = _grounding(exchange.body, seed, texts[0]) if index == 0 else None
            final = step == len(parts) - 1
            cut = index == 0 and exchange.plan.cut_off
            candidates.append(_candidate(index, [part], final, logprobs, grounding, cut))
        last = step == count - 1
        usage = _usage(prompt_tokens, billed if last else None, exchange.plan.usage)
        events.append(sse_event(_response(exchange, seed, candidates, usage), _SSE_SEPARATOR))
    failure = exchange.plan.stream_failure
    return stream_reply("text/event-stream", [], events, [], failure, _stream_error)


def _embedding(exchange: Exchange, request: Mapping[str, Any]) -> JsonObject:
    text = _answers.text_of(request.get("content"))
    dimensions = int(request.get("outputDimensionality") or _DEFAULT_DIMENSIONS)
    return {"values": _answers.embedding(PROVIDER, exchange.model, text, dimensions)}


def embed(exchange: Exchange) -> Reply:
    """Answer `:embedContent` (one content) and `:batchEmbedContents` (`requests` list)."""
    requests = exchange.body.get("requests")
    if isinstance(requests, list):
        vectors = [_embedding(exchange, request) for request in requests]
        return json_reply({"embeddings": vectors})
    return json_reply({"embedding": _embedding(exchange, exchange.body)})


def _model_route(method: str, operation: str) -> Route:
    return Route(re.compile(rf"^/v1\w*/models/(?P<model>[^/:]+):{method}$"), operation)


WIRE = Wire(
    provider=PROVIDER,
    routes=(
        _model_route("generateContent", "generate"),
        _model_route("streamGenerateContent", "generate_stream"),
        _model_route("embedContent", "embed"),
        _model_route("batchEmbedContents", "embed"),
    ),
    handlers={"generate": generate, "generate_stream": generate_stream, "embed": embed},
    error=error,
    offers_tools=offers_tools,
)
