"""A Spark call as the boto3 ``bedrock-runtime`` call it makes (Converse, InvokeModel) and the
keyed form of it (docs/models.md, "Bedrock").

Converse's own request fields go where boto3 sends them; Spark's neutral names (``temperature``,
``max_tokens``, ``system_prompt``, ``tools``, ...) merge into those fields, so both spellings of
one request put one body on the wire and share one key. ``body`` is that wire body less the
fields that cannot change the answer, media bytes as digests. Pure code: no SDK, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from spark.errors import ConfigError
from spark.models._bedrock_messages import (
    check_media,
    content_block,
    converse_tool,
    converse_tool_choice,
    copy_value,
    has_tool_blocks,
    split_messages,
)
from spark.models.wire import WireCall, keyed_value, unknown_field

__all__ = [
    "CONVERSE_FIELDS",
    "PROVIDER",
    "STRUCTURED_TOOL",
    "UNKEYED_FIELDS",
    "cache_model_id",
    "converse_body",
    "native_structured_output",
    "prepare_chat",
    "prepare_embedding",
]

PROVIDER = "bedrock"

# botocore's ConverseRequest members (ConverseStream takes the same; a test checks both).
# fmt: off
CONVERSE_FIELDS = frozenset({
    "modelId", "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
    "projectIdentifier", "additionalModelRequestFields", "promptVariables",
    "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig", "serviceTier",
    "outputConfig",
})
# fmt: on
# Sent, never keyed: log filters, the processing tier, the billing project (none changes the
# answer). ``modelId`` is the key's own ``model``.
UNKEYED_FIELDS = frozenset({"modelId", "requestMetadata", "serviceTier", "projectIdentifier"})

_Coerce = Callable[[Any], Any]


def _float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _sequences(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# Spark's neutral name -> the Converse field it merges into, the member there, its JSON type.
_NEUTRAL: dict[str, tuple[str, str, _Coerce]] = {
    "temperature": ("inferenceConfig", "temperature", _float),
    "top_p": ("inferenceConfig", "topP", _float),
    "max_tokens": ("inferenceConfig", "maxTokens", _int),
    "stop": ("inferenceConfig", "stopSequences", _sequences),
    "stop_sequences": ("inferenceConfig", "stopSequences", _sequences),
    "top_k": ("additionalModelRequestFields", "top_k", _int),
    "reasoning_effort": ("outputConfig", "effort", copy_value),
}
# Converse's typed members: ``temperature=1`` and ``1.0`` send one JSON number, one key.
_MEMBER_TYPES: dict[str, dict[str, _Coerce]] = {
    "inferenceConfig": {"temperature": _float, "topP": _float, "maxTokens": _int},
}
# Snake-case spellings of the unkeyed Converse fields.
_ALIASES = {
    "request_metadata": "requestMetadata",
    "metadata": "requestMetadata",
    "service_tier": "serviceTier",
    "project_identifier": "projectIdentifier",
}
_OTHER_NEUTRAL = frozenset(
    {"system_prompt", "tools", "tool_specs", "tool_choice", "response_format", "output_schema", "n"}
)
_CHAT_NAMES = (
    frozenset(_NEUTRAL) | _OTHER_NEUTRAL | frozenset(_ALIASES) | (CONVERSE_FIELDS - {"modelId"})
) - {"messages"}
# fmt: off
_CLIENT_OPTIONS = frozenset({
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region", "region_name",
    "endpoint_url", "profile_name", "timeout", "max_retries", "client", "api_key", "config",
})
# fmt: on
_MODEL_NAMES = frozenset({"model", "modelId", "model_id"})
_UNSUPPORTED = {
    "Converse": {
        "logprobs": "Converse returns no log probabilities",
        "top_logprobs": "Converse returns no log probabilities",
        "messages": "messages are the call's first argument",
    },
    "InvokeModel": {
        "inputText": "the texts are embed()'s first argument",
        "texts": "the texts are embed()'s first argument",
    },
}
_CHAT_HINT = "(model-specific fields go in additionalModelRequestFields={...})"


def cache_model_id(model_id: str) -> str:
    """Bedrock model ids have one spelling: entries are filed under the id as given."""
    return model_id


# -- checks ---------------------------------------------------------------------------------


def _refusal(name: str, where: str) -> ConfigError | None:
    """The error for a keyword that is never a per-call field, or None."""
    if name in _MODEL_NAMES:
        return ConfigError(
            f"{name} is not a per-call option of bedrock: the model id belongs to the"
            " constructor (BedrockModel(model_id)); build one model per id"
        )
    if name in _CLIENT_OPTIONS:
        return ConfigError(f"{name} is not a per-call option of bedrock: pass it to BedrockModel")
    why = _UNSUPPORTED[where].get(name)
    if why is not None:
        return ConfigError(f"{name} is not a parameter of {where}: {why}")
    return None


def _merge(fields: dict[str, Any], target: str, member: str, value: Any, given_as: str) -> None:
    """Put ``value`` at ``fields[target][member]``; a different value already there is an
    error, because one request cannot send both."""
    section: dict[str, Any] = fields.setdefault(target, {})
    if member in section and section[member] != value:
        raise ConfigError(
            f"{given_as}={value!r} conflicts with {target}[{member!r}]={section[member]!r}:"
            " give the value once"
        )
    section[member] = value


# -- chat -----------------------------------------------------------------------------------


def prepare_chat(model_id: str, messages: Any, params: Mapping[str, Any]) -> WireCall:
    """The ``converse`` / ``converse_stream`` keyword arguments of a call, and its keyed body."""
    for name in params:
        if name not in _CHAT_NAMES:
            raise _refusal(name, "Converse") or unknown_field(
                name, _CHAT_NAMES, "Converse", _CHAT_HINT
            )
    fields = _native_fields(params)
    system, fields["messages"] = split_messages(messages)
    _add_system(fields, params.get("system_prompt"), system)
    schema = params.get("output_schema")
    as_tool = schema is not None and not native_structured_output(model_id) and _is_object(schema)
    _add_neutral(
        fields, {k: v for k, v in params.items() if not (as_tool and k == "output_schema")}
    )
    _add_tools(fields, params)
    if as_tool and isinstance(schema, Mapping):
        _add_structured_tool(fields, schema)
    check_media(fields["messages"], fields.get("system") or [])
    arguments = {"modelId": model_id, **fields}
    return WireCall(arguments, converse_body(arguments))


def converse_body(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The keyed form of ``converse`` arguments: the JSON body less ``UNKEYED_FIELDS``, media
    bytes as digests (boto3 base64-encodes them once; the digest is of the bytes given)."""
    return {k: keyed_value(v) for k, v in arguments.items() if k not in UNKEYED_FIELDS}


def _native_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """Converse's own fields as given (numbers typed as Converse types them), and the
    snake-case spellings of the unkeyed ones."""
    fields: dict[str, Any] = {}
    for name in sorted(CONVERSE_FIELDS & set(params)):
        value = copy_value(params[name])
        types = _MEMBER_TYPES.get(name, {})
        if isinstance(value, dict):
            value = {k: types[k](v) if k in types else v for k, v in value.items()}
        fields[name] = value
    for alias, name in _ALIASES.items():
        if alias not in params:
            continue
        value = copy_value(params[alias])
        if name == "serviceTier" and isinstance(value, str):
            value = {"type": value}
        if name in fields and fields[name] != value:
            raise ConfigError(f"{alias}={value!r} conflicts with {name}={fields[name]!r}")
        fields[name] = value
    return fields


def _add_system(fields: dict[str, Any], prompt: Any, from_messages: list[dict[str, Any]]) -> None:
    """``system``: ``system_prompt`` (or Converse's ``system``), then leading system messages."""
    if prompt is not None and "system" in fields:
        raise ConfigError("give the system text once: system_prompt= or Converse's system=")
    given = fields.pop("system", None)
    if prompt is not None:
        given = [content_block(part) for part in ([prompt] if isinstance(prompt, str) else prompt)]
    system = [*(given or []), *from_messages]
    if system:
        fields["system"] = system


def _add_neutral(fields: dict[str, Any], params: Mapping[str, Any]) -> None:
    """Sampling parameters into ``inferenceConfig``, ``top_k`` into the model's own fields,
    structured output and effort into ``outputConfig``."""
    for name, (target, member, coerce) in _NEUTRAL.items():
        if name in params:
            _merge(fields, target, member, coerce(copy_value(params[name])), name)
    for name in ("response_format", "output_schema"):
        value = params.get(name)
        if value is not None and value != {"type": "text"}:  # plain text: every model's default
            _merge(fields, "outputConfig", "textFormat", _text_format(value), name)
    n = params.get("n", 1)
    if n != 1:  # one answer is all Converse gives: n=1 is not sent, one key with and without
        raise ConfigError(f"n={n!r} is not supported by Converse: it returns one answer per call")


def _text_format(value: Any) -> Any:
    """Converse's ``OutputFormat`` for OpenAI's ``{"type": "json_schema", "json_schema":
    {...}}``, ``{"type": "json_object"}``, a bare JSON schema, or Converse's own form."""
    if not isinstance(value, Mapping) or "structure" in value:
        return copy_value(value)
    spec: Mapping[str, Any] = {}
    schema: Any = value
    if value.get("type") == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        spec = value["json_schema"]
        schema = spec.get("schema", {})
    elif value.get("type") == "json_object":
        schema = {"type": "object"}
    # The schema's own key order is kept: property order steers the order of the answer.
    definition = {"schema": json.dumps(schema), "name": spec.get("name", "response")}
    if spec.get("description"):
        definition["description"] = spec["description"]
    return {"type": "json_schema", "structure": {"jsonSchema": definition}}


#: The tool a model without native structured output is made to call with its answer
#: (``output_schema=`` / ``get_json``; docs/models.md, "Structured output").
STRUCTURED_TOOL = "structured_answer"
_NATIVE_JSON = re.compile(
    r"anthropic\.claude-(?:haiku|sonnet|opus)-(\d{1,2})(?:-(\d{1,2}))?(?=-|$)"
)


def native_structured_output(model_id: str) -> bool:
    """Whether Converse's ``outputConfig.textFormat`` is known to work for ``model_id`` (also
    through an inference profile): Anthropic Claude 4.5 and later. Other models are made to
    answer through a forced tool call (a model Spark does not know may have it: pass
    ``response_format=`` or ``outputConfig=`` to send the native form anyway)."""
    found = _NATIVE_JSON.search(model_id)
    if found is None:
        return False
    major, minor = int(found.group(1)), int(found.group(2) or 0)
    return (major, minor) >= (4, 5)


def _is_object(schema: Any) -> bool:
    return isinstance(schema, Mapping) and (
        schema.get("type") == "object" or "properties" in schema
    )


def _add_structured_tool(fields: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """The answer as a forced call of ``STRUCTURED_TOOL`` whose input is the schema; with the
    caller's tools too, any tool may be called (theirs for a tool turn, this one to answer)."""
    spec = {
        "toolSpec": {
            "name": STRUCTURED_TOOL,
            "description": "Give the final answer: call this with the answer as its input.",
            "inputSchema": {"json": copy_value(dict(schema))},
        }
    }
    config = fields.setdefault("toolConfig", {})
    config["tools"] = [*config.get("tools", []), spec]
    if "toolChoice" not in config:
        own = len(config["tools"]) == 1
        config["toolChoice"] = {"tool": {"name": STRUCTURED_TOOL}} if own else {"any": {}}


def _add_tools(fields: dict[str, Any], params: Mapping[str, Any]) -> None:
    """``toolConfig``: ``tools=`` / ``tool_specs=`` and ``tool_choice=`` merged into Converse's
    own ``toolConfig``. Converse has no "none" choice: "none" sends no tools unless the
    conversation already holds tool blocks (then Converse requires the tool list)."""
    given = [params[name] for name in ("tools", "tool_specs") if params.get(name)]
    for tools in given:
        _merge(fields, "toolConfig", "tools", [converse_tool(tool) for tool in tools], "tools")
    choice = params.get("tool_choice")
    if choice is None:
        return
    native = converse_tool_choice(choice)
    config = fields.get("toolConfig")
    if config is None:
        if native not in ({"auto": {}}, None):  # "auto" and "none" are Converse's default
            raise ConfigError(f"tool_choice={choice!r} needs tools (tools= or toolConfig=)")
    elif native is not None:
        _merge(fields, "toolConfig", "toolChoice", native, "tool_choice")
    elif not given:
        raise ConfigError("tool_choice='none' cannot go with toolConfig=: leave the tools out")
    elif not has_tool_blocks(fields["messages"]):
        del fields["toolConfig"]


# -- embeddings -----------------------------------------------------------------------------

# Titan text models' request fields besides ``inputText`` (their documented bodies). Other
# models' fields are not known here, so their parameters pass into the JSON body as given.
_TITAN_FIELDS: dict[str, frozenset[str]] = {
    "amazon.titan-embed-text-v2": frozenset({"dimensions", "normalize", "embeddingTypes"}),
    "amazon.titan-embed-text-v1": frozenset(),
    "amazon.titan-embed-g1-text-02": frozenset(),
}
_REGION_PREFIXES = frozenset({"us", "eu", "apac", "global", "jp", "au", "ca", "us-gov"})
_COHERE_BATCH = 96  # texts per Cohere embed request (Bedrock's limit)


def _embedding_family(model_id: str) -> str:
    """``cohere`` (one request per batch of texts) or ``titan`` (one request per text: Titan,
    and every model that is not Cohere's)."""
    return "cohere" if _base_model(model_id).startswith("cohere.") else "titan"


def _base_model(model_id: str) -> str:
    """The model id without a cross-region inference prefix (``us.``, ``eu.``, ...)."""
    head, _, rest = model_id.partition(".")
    return rest if rest and head in _REGION_PREFIXES else model_id


def prepare_embedding(model_id: str, texts: list[str], params: Mapping[str, Any]) -> WireCall:
    """The ``invoke_model`` JSON bodies of an embeddings call, and their keyed form."""
    base = _base_model(model_id).split(":")[0]
    known = _TITAN_FIELDS.get(base)
    for name in params:
        error = _refusal(name, "InvokeModel")
        if error is None and known is not None and name not in known:
            error = unknown_field(name, known, f"{base} embeddings")
        if error is not None:
            raise error
    fields = copy_value(dict(params))
    if _embedding_family(model_id) == "cohere":
        batches = range(0, len(texts), _COHERE_BATCH)
        bodies = [{"texts": texts[i : i + _COHERE_BATCH], **fields} for i in batches]
    else:
        bodies = [{"inputText": text, **fields} for text in texts]
    keyed = {"requests": [keyed_value(body) for body in bodies]}
    try:
        sent = [json.dumps(body) for body in bodies]
    except (TypeError, ValueError) as exc:  # InvokeModel takes JSON only (media as base64 text)
        raise ConfigError(f"an InvokeModel body must be JSON: {exc}") from exc
    return WireCall({"modelId": model_id, "bodies": sent}, keyed)
