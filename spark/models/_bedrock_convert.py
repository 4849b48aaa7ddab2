"""Pure translation between Spark's normalized request and Bedrock's Converse / Titan shapes.

No SDK here: dicts in, dicts or neutral values out, so every rule is testable without boto3.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spark.cache.keys import EXCLUDED_PARAMS
from spark.errors import ProviderServerError
from spark.types import ModelResponse, ToolCall, Usage

__all__ = [
    "PROVIDER",
    "StreamAssembler",
    "converse_request",
    "finish_reason",
    "parse_converse",
    "titan_body",
]

PROVIDER = "bedrock"

_INFERENCE_FIELDS = {
    "max_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop": "stopSequences",
}
# Converse's own request fields, accepted as given (camelCase) instead of model-specific extras.
# fmt: off
_CONVERSE_FIELDS = frozenset({
    "guardrailConfig", "promptVariables", "additionalModelResponseFieldPaths", "requestMetadata",
    "performanceConfig", "serviceTier",
})
# fmt: on
_TOOL_CHOICES: dict[str, dict[str, Any]] = {"auto": {"auto": {}}, "required": {"any": {}}}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# -- requests -----------------------------------------------------------------------------


def converse_request(model_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``converse`` / ``converse_stream`` for a normalized request."""
    messages = _messages(request.get("messages") or [])
    kwargs: dict[str, Any] = {"modelId": model_id, "messages": messages}
    if request.get("system"):
        kwargs["system"] = [{"text": text} for text in request["system"]]
    _add_params(kwargs, request.get("params") or {})
    tool_config = _tool_config(request, messages)
    if tool_config:
        kwargs["toolConfig"] = tool_config
    return kwargs


def _add_params(kwargs: dict[str, Any], params: Mapping[str, Any]) -> None:
    """Sampling parameters to ``inferenceConfig``, Converse's own fields as given, effort and
    structured output to ``outputConfig``, the rest to ``additionalModelRequestFields``."""
    inference: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in params.items():
        if name in _INFERENCE_FIELDS:
            inference[_INFERENCE_FIELDS[name]] = value
        elif name in _CONVERSE_FIELDS:
            kwargs[name] = value
        elif name in ("outputConfig", "additionalModelRequestFields"):
            (_output_config(kwargs) if name == "outputConfig" else extra).update(value)
        elif name == "response_format":
            if value != {"type": "text"}:  # plain text is every model's default
                _output_config(kwargs)["textFormat"] = _text_format(value)
        elif name == "reasoning_effort":
            _output_config(kwargs)["effort"] = value
        elif not (name == "n" and value == 1):  # n=1 is every model's default
            extra[name] = value  # top_k and model-specific fields, as the model names them
    if inference:
        kwargs["inferenceConfig"] = inference
    if extra:
        kwargs["additionalModelRequestFields"] = extra


def _output_config(kwargs: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = kwargs.setdefault("outputConfig", {})
    return config


def _text_format(value: Any) -> Any:
    """Bedrock's ``OutputFormat`` for OpenAI's ``{"type": "json_schema", "json_schema": {...}}``,
    ``{"type": "json_object"}`` (any object), a bare JSON schema, or Bedrock's own form."""
    if not isinstance(value, Mapping) or "structure" in value:
        return value
    spec: Mapping[str, Any] = {}
    schema: Any = value
    if value.get("type") == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        spec = value["json_schema"]
        schema = spec.get("schema", {})
    elif value.get("type") == "json_object":
        schema = {"type": "object"}
    definition = {
        "schema": json.dumps(schema, sort_keys=True),
        "name": spec.get("name", "response"),
    }
    if spec.get("description"):
        definition["description"] = spec["description"]
    return {"type": "json_schema", "structure": {"jsonSchema": definition}}


def _messages(messages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Converse messages; a tool result becomes a user ``toolResult`` block and consecutive
    messages of one role merge, because Bedrock requires alternating roles."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, blocks = _message_blocks(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for message in out:  # Bedrock rejects blank text blocks next to others
        message["content"] = [b for b in message["content"] if b != {"text": ""}] or [{"text": ""}]
    return out


def _message_blocks(message: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    role = str(message["role"])
    blocks = [_block(part) for part in message.get("content") or []]
    if role == "tool":
        result = {"toolUseId": str(message.get("tool_call_id", "")), "content": blocks}
        return "user", [{"toolResult": result}]
    for call in message.get("tool_calls") or []:
        use = {"toolUseId": call["id"], "name": call["name"], "input": call.get("arguments") or {}}
        blocks.append({"toolUse": use})
    return role, blocks  # any other role goes as given; Bedrock names what it refuses


def _block(part: Any) -> dict[str, Any]:
    if isinstance(part, Mapping) and part.get("type") == "text" and "text" in part:
        return {"text": part["text"]}
    return dict(part)  # Bedrock-native blocks (image, document, toolUse, cachePoint...) as given


def _tool_config(
    request: Mapping[str, Any], messages: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """``toolConfig``; Converse has no "none" choice, so "none" sends no tools unless the
    conversation already holds tool blocks (then Bedrock requires the tool list)."""
    tools = request.get("tools")
    choice = request.get("tool_choice")
    if not tools or (choice == "none" and not _has_tool_blocks(messages)):
        return None
    config: dict[str, Any] = {"tools": [{"toolSpec": _tool_spec(tool)} for tool in tools]}
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        config["toolChoice"] = _TOOL_CHOICES[choice]
    elif isinstance(choice, Mapping) and set(choice) == {"name"}:
        config["toolChoice"] = {"tool": {"name": choice["name"]}}
    elif choice not in (None, "none"):
        config["toolChoice"] = choice
    return config


def _tool_spec(tool: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool["name"], "inputSchema": {"json": tool["parameters"]}}
    if tool.get("description"):
        spec["description"] = tool["description"]
    return spec


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])


def titan_body(text: str, params: Mapping[str, Any]) -> str:
    """The ``invoke_model`` body of one Titan text embedding (``dimensions``, ``normalize``...)."""
    body = {"inputText": text}
    body.update({k: v for k, v in params.items() if k not in EXCLUDED_PARAMS and v is not None})
    return json.dumps(body)


# -- answers ------------------------------------------------------------------------------


def finish_reason(stop_reason: str | None) -> str:
    """Bedrock's ``stopReason`` in the neutral words ("stop", "length", "tool_calls", ...)."""
    if stop_reason is None:
        return "stop"
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def _usage(usage: Mapping[str, Any] | None) -> Usage:
    usage = usage or {}
    return Usage(int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0)))


def parse_converse(response: Mapping[str, Any]) -> ModelResponse:
    """A ``converse`` answer as a neutral ``ModelResponse`` (cost is the base class's job)."""
    blocks = response.get("output", {}).get("message", {}).get("content") or []
    text = "".join(block["text"] for block in blocks if "text" in block)
    calls = tuple(
        ToolCall(use["toolUseId"], use["name"], use.get("input") or {})
        for use in (block["toolUse"] for block in blocks if "toolUse" in block)
    )
    return ModelResponse(
        text=text,
        tool_calls=calls,
        finish_reason=finish_reason(response.get("stopReason")),
        usage=_usage(response.get("usage")),
    )


class StreamAssembler:
    """Collects ``converse_stream`` events: ``add`` returns each text delta, ``response``
    the assembled answer (text, tool calls from their JSON input pieces, stop reason, usage)."""

    def __init__(self, model_id: str) -> None:
        self._model_id = model_id
        self._text: list[str] = []
        self._tools: dict[int, dict[str, Any]] = {}
        self._stop_reason: str | None = None
        self._usage = Usage()

    def add(self, event: Mapping[str, Any]) -> str:
        """Take one event; return its text delta ("" when it carries none)."""
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = start.get("start", {}).get("toolUse")
            if use is not None:
                index = int(start.get("contentBlockIndex", 0))
                self._tools[index] = {"id": use["toolUseId"], "name": use["name"], "input": []}
        elif "contentBlockDelta" in event:
            return self._delta(event["contentBlockDelta"])
        elif "messageStop" in event:
            self._stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self._usage = _usage(event["metadata"].get("usage"))
        return ""

    def _delta(self, block: Mapping[str, Any]) -> str:
        delta = block.get("delta", {})
        if "text" in delta:
            self._text.append(delta["text"])
            return str(delta["text"])
        if "toolUse" in delta:
            tool = self._tools.get(int(block.get("contentBlockIndex", 0)))
            if tool is None:
                raise self._broken("a tool input delta arrived before its toolUse start")
            tool["input"].append(delta["toolUse"].get("input", ""))
        return ""

    def response(self) -> ModelResponse:
        """The assembled answer; a stream that ended before ``messageStop`` is broken."""
        if self._stop_reason is None:
            raise self._broken("the stream ended before its messageStop event")
        return ModelResponse(
            text="".join(self._text),
            tool_calls=tuple(self._tool_call(self._tools[i]) for i in sorted(self._tools)),
            finish_reason=finish_reason(self._stop_reason),
            usage=self._usage,
        )

    def _tool_call(self, tool: Mapping[str, Any]) -> ToolCall:
        raw = "".join(tool["input"])
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise self._broken(f"tool {tool['name']!r} input is not JSON: {raw!r}") from exc
        return ToolCall(tool["id"], tool["name"], arguments)

    def _broken(self, why: str) -> ProviderServerError:
        return ProviderServerError(
            f"bedrock model {self._model_id!r}: broken stream: {why}", provider=PROVIDER
        )
