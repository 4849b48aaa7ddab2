"""The ``GenerateContentConfig`` of a Gemini call as google-genai takes it, and the keyed form
of it on the wire (docs/models.md, "Gemini"): native fields in either case, Spark's own
spellings, transport options. Pure code: no SDK import, no I/O."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from spark.errors import ConfigError
from spark.models._gemini_fields import (
    CLIENT_SIDE,
    CONFIG_FIELDS,
    CONSTRUCTOR,
    FLOATS,
    HTTP_OPTIONS,
    INTS,
    MODEL_NAMES,
    NEUTRAL_NAMES,
    OPAQUE_CONFIG,
    REFUSED,
    TOP_LEVEL,
    TRANSPORT,
    UNKEYED,
)
from spark.models._gemini_keyed import camel, keyed, keyed_parts, snake
from spark.models._gemini_tools import tool_mode, tools
from spark.models.wire import unknown_field

__all__ = ["chat_config", "config_body", "http_options", "native_fields", "put"]

_NUMBERS = FLOATS | INTS  # the fields ``_number`` converts
_NUMBER_TYPES = frozenset({int, float, bool})


def chat_config(given: Mapping[str, Any], system: list[str]) -> dict[str, Any]:
    """The ``GenerateContentConfig`` fields of a call (snake_case), as the SDK takes them;
    ``system``: the call's system texts."""
    config = native_fields(given, CONFIG_FIELDS, NEUTRAL_NAMES, "a Gemini text call")
    if system:
        if "system_instruction" in config:
            raise ConfigError(
                "system_instruction= and system text (system_prompt= or a leading system "
                "message) are both given: give the system text once"
            )
        config["system_instruction"] = {"parts": [{"text": text} for text in system]}
    for name, value in given.items():  # in the caller's order: errors name the same spelling
        if name in NEUTRAL_NAMES and name != "system_prompt":  # that one is in ``system``
            for field, converted in _spark_field(name, value, config).items():
                put(config, field, converted, name)
    if config.get("tools"):
        config["tools"] = tools(config["tools"])
        # Declarations only, never Python callables: the SDK must not try to run anything.
        config.setdefault("automatic_function_calling", {"disable": True})
    if config.get("candidate_count") == 1:  # the default: sent or not, the same request
        del config["candidate_count"]
    if config.get("automatic_continuation") is True:  # the default too
        del config["automatic_continuation"]
    http = http_options(given, config.pop("http_options", None))
    if http:
        config["http_options"] = http
    return config


def put(config: dict[str, Any], field: str, value: Any, spelling: str) -> None:
    """Set ``field`` once: a field given in two spellings is an error."""
    if field in config:
        raise ConfigError(
            f"{field} is given twice (as {spelling!r} and in another spelling); give it once"
        )
    config[field] = value


def native_fields(
    given: Mapping[str, Any], fields: frozenset[str], spark: Collection[str], where: str
) -> dict[str, Any]:
    """The SDK's own fields of a call (either case), refusing what no spelling accepts; numbers
    as the SDK's field types make them."""
    native: dict[str, Any] = {}
    for name, value in given.items():
        if name in spark or name in TRANSPORT:
            continue
        field = snake(name)
        if field not in fields or field in REFUSED:
            raise _refusal(name, field, fields, spark, where)
        if field in native:
            raise ConfigError(f"{field} is given twice (snake and camel case); give it once")
        native[field] = _number(field, value) if field in _NUMBERS else value
    return native


def _refusal(
    name: str, field: str, fields: frozenset[str], spark: Collection[str], where: str
) -> ConfigError:
    """The error for a keyword no Gemini call takes (with why, or close matches)."""
    if name in MODEL_NAMES or field in MODEL_NAMES:
        return ConfigError(
            f"{name} cannot be given per call: the model id belongs to the constructor "
            "(GeminiModel(model_id, ...)); use another model object for another model"
        )
    if field in REFUSED:
        return ConfigError(f"{name} {REFUSED[field]}")
    if name in CONSTRUCTOR or field in CONSTRUCTOR:
        return ConfigError(
            f"{name} is not a per-call option of gemini models (per-call options: "
            f"{', '.join(sorted(TRANSPORT | {'http_options'}))}); credentials, endpoints and "
            "retries go to the constructor"
        )
    known = sorted({*fields, *spark, *TRANSPORT, *(camel(f) for f in fields)})
    return unknown_field(name, known, where, "(see docs/models.md, 'Gemini')")


def _number(name: str, value: Any) -> Any:
    """Numbers as the SDK's field types make them (``temperature=1`` is sent as ``1.0``)."""
    kind = type(value)
    if (
        kind is not float
        and kind is not int
        and (kind is bool or not isinstance(value, int | float))
    ):
        return value
    if name in FLOATS:
        return float(value)
    if name in INTS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _spark_field(name: str, value: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config fields one of Spark's spellings sets."""
    if name == "stop":
        return {"stop_sequences": [value] if isinstance(value, str) else list(value)}
    if name in ("max_tokens", "n"):
        return {NEUTRAL_NAMES[name]: _number(NEUTRAL_NAMES[name], value)}
    if name == "tool_specs":
        return {"tools": value}
    if name == "tool_choice":
        return {"tool_config": {"function_calling_config": tool_mode(value)}}
    if name == "reasoning_effort":
        return {"thinking_config": _thinking(str(value))}
    fields = _response_format(value) if name == "response_format" else _json_mode(value)
    if "response_mime_type" in config:  # the caller's own mime type wins
        fields.pop("response_mime_type", None)
    return fields


def http_options(given: Mapping[str, Any], native: Any) -> dict[str, Any]:
    """Per-call ``http_options`` (the SDK counts milliseconds): transport, never keyed."""
    if native is None and TRANSPORT.isdisjoint(given):
        return {}  # the common case: no transport options at all
    http: dict[str, Any] = {}
    if native is not None:
        if not isinstance(native, Mapping):
            native = native.model_dump(exclude_none=True)  # a ``types.HttpOptions``
        http = {snake(str(name)): value for name, value in native.items()}
        for name in http.keys() - HTTP_OPTIONS:
            raise ConfigError(
                f"http_options.{name} is not a per-call option of gemini models (per-call: "
                f"{', '.join(sorted(HTTP_OPTIONS))}); endpoints and clients go to the "
                "constructor"
            )
    timeout = given.get("timeout", given.get("request_timeout"))
    if timeout is not None:
        put(http, "timeout", int(float(timeout) * 1000), "timeout")
    headers = given.get("headers", given.get("extra_headers"))
    if headers:
        put(http, "headers", dict(headers), "headers")
    return http


def _response_format(value: Any) -> dict[str, Any]:
    """OpenAI's ``response_format`` spellings as Gemini JSON mode (a bare schema too)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"response_format must be a dict, got {value!r}")
    kind = value.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"response_mime_type": "application/json"}
    if kind == "json_schema":
        spec = value.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return _json_mode(schema) if schema else {"response_mime_type": "application/json"}
    return _json_mode(value)


def _json_mode(schema: Any) -> dict[str, Any]:
    """``output_schema=`` (a bare JSON schema): ``response_json_schema`` in JSON mode."""
    return {"response_mime_type": "application/json", "response_json_schema": schema}


def _thinking(effort: str) -> dict[str, Any]:
    if effort.lower() == "none":
        return {"thinking_budget": 0}
    return {"thinking_level": effort.upper()}


# -- the keyed form -----------------------------------------------------------------------


def config_body(config: Mapping[str, Any]) -> dict[str, Any]:
    """The body fields a config puts on the wire (``systemInstruction``, ``tools``, ...,
    ``generationConfig``), keyed; transport and unkeyed fields left out."""
    body: dict[str, Any] = {}
    generation: dict[str, Any] = {}
    for name, value in config.items():
        place = _WIRE_PLACES.get(name)
        if place is None:
            continue  # unkeyed, or never sent
        if type(value) not in _NUMBER_TYPES or name == "cached_content":
            value = _keyed_field(name, value)  # (numbers key as they are: no walk)
        (body if place[1] else generation)[place[0]] = value
    if generation:
        body["generationConfig"] = generation
    if config.get("automatic_continuation") is False:  # changes the answer Spark gets back
        body["automaticContinuation"] = False
    extra = (config.get("http_options") or {}).get("extra_body")
    if extra:
        body["extraBody"] = keyed(extra, opaque=True)
    return body


#: Each keyed config field's name on the wire, and whether it is at the top of the body
#: (else in ``generationConfig``); computed once, not per call.
_WIRE_PLACES = {
    name: (camel(name), name in TOP_LEVEL) for name in sorted(CONFIG_FIELDS - UNKEYED - CLIENT_SIDE)
}


def _keyed_field(name: str, value: Any) -> Any:
    if name in OPAQUE_CONFIG:
        return keyed(value, opaque=True)
    if name == "system_instruction":
        content = _system_content(value)
        if type(content) is dict and len(content) == 1 and type(content.get("parts")) is list:
            return {"parts": keyed_parts(content["parts"])}  # system text: the shape is known
        return keyed(content)
    if name == "cached_content":
        return value if "/" in str(value) else f"cachedContents/{value}"
    if name == "speech_config" and isinstance(value, str):  # the SDK's voice-name shorthand
        return {"voice_config": {"prebuilt_voice_config": {"voice_name": value}}}
    return keyed(value, enum_field=name)


def _system_content(value: Any) -> Any:
    """``system_instruction`` as the SDK makes it a ``Content`` (text alone is a user turn)."""
    if isinstance(value, str):
        return {"parts": [{"text": value}], "role": "user"}
    if isinstance(value, list | tuple):
        return {"parts": [{"text": v} if isinstance(v, str) else v for v in value], "role": "user"}
    lone_part = (
        not ({"parts", "role"} & set(value))
        if isinstance(value, Mapping)
        else hasattr(value, "model_dump") and not hasattr(value, "parts")
    )
    return {"parts": [value], "role": "user"} if lone_part else value  # (a ``Part``, as a turn)
