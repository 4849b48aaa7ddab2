"""AWS Bedrock Runtime's HTTP API as `boto3` sees it: Converse, ConverseStream, and Titan and
Cohere embeddings through InvokeModel.

Model ids arrive percent-encoded in the path (`amazon.titan-embed-text-v2%3A0`); any SigV4 or
bearer authorization is accepted unchecked. Media bytes arrive base64-encoded in the JSON body;
an image whose decoded bytes are not an image of its `format` is refused as Bedrock refuses it
(so bytes encoded twice fail here as they fail there). A request with a document that asks for
citations is answered with a cited passage (a ``citationsContent`` block; streamed, its text and
a ``citation`` delta); one that asks the model to think, with a signed reasoning block first.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from spark.models.structured import example_of
from spark.testing import _answers
from spark.testing import _bedrock_extras as _extras
from spark.testing._eventstream import event_frame, exception_frame
from spark.testing._exchange import (
    Exchange,
    JsonObject,
    Reply,
    Route,
    ToolCall,
    UsageScript,
    Wire,
    json_reply,
    status_phrase,
    stream_reply,
)

PROVIDER = "bedrock"
_EVENT_STREAM = "application/vnd.amazon.eventstream"
_TITAN_DIMENSIONS = {"amazon.titan-embed-text-v1": 1536, "amazon.titan-embed-g1-text-02": 1536}
_TITAN_DEFAULT_DIMENSIONS = 1024
_COHERE_DEFAULT_DIMENSIONS = {"cohere.embed-v4": 1536}
_COHERE_DIMENSIONS = 1024
# The first bytes of each image format Converse takes.
_IMAGE_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "webp": (b"RIFF",),
}
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
# In-stream exceptions are members of the ConverseStreamOutput union, hence the lower camel case.
_STREAM_ERROR_TYPES = {
    400: "validationException",
    429: "throttlingException",
    500: "internalServerException",
    503: "serviceUnavailableException",
}


def error(status: int, message: str) -> Reply:
    """Return Bedrock's error: `{"message": ...}` typed by the `x-amzn-ErrorType` header."""
    fallback = "InternalServerException" if status >= 500 else "ValidationException"
    error_type = _ERROR_TYPES.get(status, fallback)
    headers = (
        ("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
    )
    return json_reply({"message": message}, status=status, headers=headers)


def _stream_error(status: int) -> bytes:
    exception_type = _STREAM_ERROR_TYPES.get(status, "modelStreamErrorException")
    payload: JsonObject = {"message": status_phrase(status)}
    if exception_type == "modelStreamErrorException":
        payload |= {"originalStatusCode": status, "originalMessage": status_phrase(status)}
    return exception_frame(exception_type, payload)


def offers_tools(body: Mapping[str, Any]) -> bool:
    """Return whether the Converse request carries a tool configuration with tools."""
    config = body.get("toolConfig")
    return isinstance(config, Mapping) and bool(config.get("tools"))


def _tool_result(messages: list[Any]) -> str | None:
    """Return the text of the tool results in the last message, if it carries any."""
    if not messages or not isinstance(messages[-1], Mapping):
        return None
    blocks = messages[-1].get("content") or []
    results = [
        _answers.text_of(block["toolResult"].get("content"))
        for block in blocks
        if isinstance(block, Mapping) and isinstance(block.get("toolResult"), Mapping)
    ]
    return " ".join(results) if results else None


def _asked_schema(body: Mapping[str, Any]) -> Any:
    """The JSON schema (text) of ``outputConfig.textFormat.structure.jsonSchema``, if any."""
    found: Any = body.get("outputConfig")
    for name in ("textFormat", "structure", "jsonSchema", "schema"):
        found = found.get(name) if isinstance(found, Mapping) else None
    return found


def _converse_values(exchange: Exchange) -> tuple[str, str, int]:
    """Return the request seed, answer text and input token count of a Converse request."""
    body = exchange.body
    messages = body.get("messages") or []
    seed = _answers.request_seed(PROVIDER, exchange.model, body)
    text = _answers.answer_text(
        seed, exchange.plan.answer_chars, tool_result=_tool_result(messages)
    )
    text = _answers.scripted_text(exchange.plan.text, _asked_schema(body), seed, text)
    fragments = _answers.collect_text([body.get("system"), messages])
    if offers_tools(body):
        fragments.append(_answers.canonical_json(body["toolConfig"]))
    return seed, text, _answers.input_tokens(fragments)


def _usage(input_tokens: int, output_text: str, script: UsageScript | None) -> JsonObject:
    """Converse's usage: tokens read from or written to the prompt cache are reported apart
    from ``inputTokens`` (and only when there are some)."""
    output_tokens = _answers.token_count(len(output_text))
    usage: JsonObject = {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }
    if script is not None and (script.cache_read_tokens or script.cache_write_tokens):
        usage["cacheReadInputTokens"] = script.cache_read_tokens
        usage["cacheWriteInputTokens"] = script.cache_write_tokens
        usage["totalTokens"] += script.cache_read_tokens + script.cache_write_tokens
    return usage


def _latency_ms(exchange: Exchange) -> int:
    return int(exchange.plan.latency * 1000) + 1


def _image_problem(body: Mapping[str, Any]) -> str | None:
    """Return why an image of the request is not an image of its format, if one is not."""
    for image in _extras.blocks_of(body, "image"):
        source = image.get("source")
        if not isinstance(source, Mapping) or not isinstance(source.get("bytes"), str):
            continue
        try:
            data = base64.b64decode(source["bytes"], validate=True)
        except (binascii.Error, ValueError):
            return "The image bytes are not valid base64."
        if not data.startswith(_IMAGE_MAGIC.get(str(image.get("format")), ())):
            return "The provided image does not match the specified image format."
    return None


def converse(exchange: Exchange) -> Reply:
    """Answer `POST /model/{modelId}/converse`."""
    problem = _image_problem(exchange.body)
    if problem is not None:
        return error(400, problem)
    seed, text, input_tokens = _converse_values(exchange)
    text = _answers.cut_off(text) if exchange.plan.cut_off else text
    content: JsonObject = {"text": text}
    stop_reason = "end_turn"
    call = _tool_call_of(exchange, seed)
    if call is not None:
        tool_use = {"toolUseId": _tool_use_id(seed), "name": call.name, "input": call.arguments}
        content, stop_reason, text = {"toolUse": tool_use}, "tool_use", json.dumps(call.arguments)
    blocks = [content]
    cited = _extras.cited(exchange.body, seed, text) if call is None else None
    if cited is not None:
        passage = {"content": [{"text": cited[1]}], "citations": [cited[2]]}
        blocks = [{"text": cited[0]}, {"citationsContent": passage}]
    reasoning = _extras.reasoning(exchange.body, seed)
    if reasoning is not None:
        thought = {"reasoningText": {"text": reasoning[0], "signature": reasoning[1]}}
        blocks.insert(0, {"reasoningContent": thought})
    payload = {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": "max_tokens" if exchange.plan.cut_off else stop_reason,
        "usage": _usage(input_tokens, text, exchange.plan.usage),
        "metrics": {"latencyMs": _latency_ms(exchange)},
    }
    asked = _extras.asked_fields(exchange.body)
    if asked is not None:
        payload["additionalModelResponseFields"] = asked
    return json_reply(payload)


def _tool_call_of(exchange: Exchange, seed: str) -> ToolCall | None:
    """The scripted tool call, else the call a tool choice forces (``{"tool": ...}``, or
    ``{"any": {}}``: the last tool offered), with an input that fits the tool's schema, or
    the scripted text's JSON object."""
    if exchange.plan.tool_call is not None:
        return exchange.plan.tool_call
    found = exchange.body.get("toolConfig")
    config: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    choice = config.get("toolChoice")
    tools = [t.get("toolSpec") for t in config.get("tools") or () if isinstance(t, Mapping)]
    specs = [t for t in tools if isinstance(t, Mapping)]
    if not isinstance(choice, Mapping) or not specs:
        return None
    forced = choice.get("tool")
    if isinstance(forced, Mapping):
        chosen = next((t for t in specs if t.get("name") == forced.get("name")), None)
    else:
        chosen = specs[-1] if "any" in choice else None
    if chosen is None:
        return None
    if exchange.plan.text is not None:
        try:
            scripted = json.loads(exchange.plan.text)
        except ValueError:
            return None  # (answered as text: what a model that ignores the choice does)
        return ToolCall(str(chosen["name"]), scripted) if isinstance(scripted, dict) else None
    schema = chosen.get("inputSchema", {}).get("json", {})
    arguments = example_of(schema, f"answer {seed[:6]}") if isinstance(schema, Mapping) else {}
    return ToolCall(str(chosen["name"]), arguments if isinstance(arguments, dict) else {})


def _tool_use_id(seed: str) -> str:
    return f"tooluse_{_answers.short_id(seed, 22)}"


def converse_stream(exchange: Exchange) -> Reply:
    """Answer `POST /model/{modelId}/converse-stream` with binary event-stream frames."""
    problem = _image_problem(exchange.body)
    if problem is not None:
        return error(400, problem)
    seed, text, input_tokens = _converse_values(exchange)
    cut = exchange.plan.cut_off
    text = _answers.cut_off(text) if cut else text
    head = [event_frame("messageStart", {"role": "assistant"})]
    reasoning = _extras.reasoning(exchange.body, seed)
    at = 0 if reasoning is None else 1  # the answer's block follows the reasoning's
    if reasoning is not None:
        thought = [{"text": piece} for piece in _answers.split_chunks(reasoning[0])]
        for delta in [*thought, {"signature": reasoning[1]}]:
            head.append(_delta({"reasoningContent": delta}, 0))
        head.append(event_frame("contentBlockStop", {"contentBlockIndex": 0}))
    call = _tool_call_of(exchange, seed)
    cited = _extras.cited(exchange.body, seed, text) if call is None else None
    if cited is not None:  # own words in one block, the cited passage and its citation next
        pieces = [_delta({"text": piece}, at) for piece in _answers.split_chunks(cited[0])]
        pieces.append(event_frame("contentBlockStop", {"contentBlockIndex": at}))
        at += 1
        pieces.extend(_delta({"text": piece}, at) for piece in _answers.split_chunks(cited[1]))
        pieces.append(_delta({"citation": cited[2]}, at))
        stop_reason = "end_turn"
    elif call is None:
        pieces = [_delta({"text": piece}, at) for piece in _answers.split_chunks(text)]
        stop_reason = "end_turn"
    else:
        start = {"toolUse": {"toolUseId": _tool_use_id(seed), "name": call.name}}
        head.append(event_frame("contentBlockStart", {"start": start, "contentBlockIndex": at}))
        text = json.dumps(call.arguments)
        text = _answers.cut_off(text) if cut else text  # (the input's JSON, cut short)
        parts = _answers.split_arguments(text)
        pieces = [_delta({"toolUse": {"input": part}}, at) for part in parts]
        stop_reason = "tool_use"
    metadata = {
        "usage": _usage(input_tokens, text, exchange.plan.usage),
        "metrics": {"latencyMs": _latency_ms(exchange)},
    }
    stop: JsonObject = {"stopReason": "max_tokens" if cut else stop_reason}
    asked = _extras.asked_fields(exchange.body)
    if asked is not None:
        stop["additionalModelResponseFields"] = asked
    tail = [
        event_frame("contentBlockStop", {"contentBlockIndex": at}),
        event_frame("messageStop", stop),
        event_frame("metadata", metadata),
    ]
    failure = exchange.plan.stream_failure
    return stream_reply(_EVENT_STREAM, head, pieces, tail, failure, _stream_error)


def _delta(delta: JsonObject, index: int) -> bytes:
    return event_frame("contentBlockDelta", {"delta": delta, "contentBlockIndex": index})


def invoke(exchange: Exchange) -> Reply:
    """Answer `POST /model/{modelId}/invoke` for Amazon Titan and Cohere embedding models."""
    if "titan-embed" in exchange.model:
        return _titan(exchange)
    if "cohere.embed" in exchange.model:
        return _cohere(exchange)
    message = (
        f"InvokeModel is served for Titan and Cohere embedding models only, not {exchange.model}."
    )
    return error(400, message)


def _base_model(model: str) -> str:
    """Return the model id without its version and cross-region prefix (`us.`, `eu.`, ...)."""
    head, _, rest = model.partition(".")
    if rest and head in {"us", "eu", "apac", "global", "jp", "au", "ca"}:
        model = rest
    return model.split(":")[0]


def _token_header(tokens: int) -> tuple[tuple[str, str], ...]:
    return (("X-Amzn-Bedrock-Input-Token-Count", str(tokens)),)


def _titan(exchange: Exchange) -> Reply:
    """Titan text embeddings: one `inputText`, `dimensions`, `embeddingTypes`."""
    body = exchange.body
    text = str(body.get("inputText", ""))
    default = _TITAN_DIMENSIONS.get(_base_model(exchange.model), _TITAN_DEFAULT_DIMENSIONS)
    dimensions = int(body.get("dimensions") or default)
    vector = _answers.embedding(PROVIDER, exchange.model, text, dimensions)
    tokens = _answers.input_tokens([text])
    payload: JsonObject = {"embedding": vector, "inputTextTokenCount": tokens}
    kinds = body.get("embeddingTypes")
    if isinstance(kinds, list):
        payload["embeddingsByType"] = {kind: _typed(vector, str(kind)) for kind in kinds}
    return json_reply(payload, headers=_token_header(tokens))


def _typed(vector: list[float], kind: str) -> list[Any]:
    """A vector in an embedding type: floats as they are, `binary` as one bit per component."""
    return vector if kind == "float" else [1 if x > 0 else 0 for x in vector]


def _cohere(exchange: Exchange) -> Reply:
    """Cohere embeddings: a batch of `texts` with a required `input_type`."""
    body = exchange.body
    texts = body.get("texts")
    if not isinstance(texts, list) or "input_type" not in body:
        return error(400, "Malformed input request: required key [texts, input_type] not found")
    default = _COHERE_DEFAULT_DIMENSIONS.get(_base_model(exchange.model), _COHERE_DIMENSIONS)
    dimensions = int(body.get("output_dimension") or default)
    vectors = [_answers.embedding(PROVIDER, exchange.model, str(t), dimensions) for t in texts]
    kinds = body.get("embedding_types")
    embeddings: Any = vectors
    if isinstance(kinds, list):
        embeddings = {str(kind): [_typed(v, str(kind)) for v in vectors] for kind in kinds}
    payload = {
        "id": _answers.short_id(_answers.request_seed(PROVIDER, exchange.model, body)),
        "texts": texts,
        "embeddings": embeddings,
        "response_type": "embeddings_by_type" if isinstance(kinds, list) else "embeddings_floats",
    }
    tokens = _answers.input_tokens(str(t) for t in texts)
    return json_reply(payload, headers=_token_header(tokens))


_MODEL = r"^/model/(?P<model>[^/]+)/"


def raw_stream(events: Sequence[Any]) -> Reply:
    """A stream of the events as given: each ``{event_type: payload}`` as one frame."""
    frames = tuple(event_frame(kind, body) for event in events for kind, body in event.items())
    return Reply(headers=(("Content-Type", _EVENT_STREAM),), stream=frames)


WIRE = Wire(
    provider=PROVIDER,
    routes=(
        Route(re.compile(_MODEL + "converse$"), "converse"),
        Route(re.compile(_MODEL + "converse-stream$"), "converse_stream"),
        Route(re.compile(_MODEL + "invoke$"), "invoke"),
    ),
    handlers={"converse": converse, "converse_stream": converse_stream, "invoke": invoke},
    error=error,
    offers_tools=offers_tools,
    raw_stream=raw_stream,
)
