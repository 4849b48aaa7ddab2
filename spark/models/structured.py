"""``get_json``'s schemas: the JSON schema a call sends, and the check of the answer against it.

A schema is a pydantic ``BaseModel`` subclass (the answer becomes an instance of it) or a
JSON-schema dict (the answer is the parsed object, checked with ``jsonschema``). The check runs
before an answer is stored and on every hit, so an answer that does not fit is never cached and
a stored one that no longer fits is a miss (docs/models.md, "Structured output").
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spark.errors import ConfigError, StructuredOutputError
from spark.models.wire import KeyedJSON

__all__ = ["StructuredSchema", "example_of", "structured_schema"]

# A whole answer wrapped in one Markdown code fence (```json ... ```): the JSON inside is meant.
_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_-]*[ \t]*\n(.*?)\n?```\s*\Z", re.DOTALL)
_MAX_SHOWN = 3


@dataclass(frozen=True, slots=True)
class StructuredSchema:
    """One ``get_json`` schema: ``spec`` (the JSON schema sent) and ``parse(text)``, the checked
    value of an answer (``StructuredOutputError`` when it does not fit)."""

    spec: dict[str, Any]
    parse: Callable[[str], Any]


def structured_schema(schema: Any) -> StructuredSchema:
    """The ``StructuredSchema`` of a pydantic model class or a JSON-schema dict."""
    if isinstance(schema, type):
        return _of_model(schema)
    if isinstance(schema, Mapping):
        if not schema:
            raise ConfigError("get_json needs a schema: got an empty dict")
        text = json.dumps(schema, default=str)  # (in its order: it steers the answer's order)
        return _of_dict(text)
    raise ConfigError(
        "get_json takes a pydantic BaseModel subclass or a JSON-schema dict as its schema, got"
        f" {type(schema).__name__}"
    )


@functools.lru_cache(maxsize=256)  # a model's JSON schema takes far longer to build than a hit
def _of_model(model: type) -> StructuredSchema:
    schema_of = getattr(model, "model_json_schema", None)
    validate_json = getattr(model, "model_validate_json", None)
    if not callable(schema_of) or not callable(validate_json):
        raise ConfigError(
            f"get_json takes a pydantic BaseModel subclass or a JSON-schema dict, got the class"
            f" {model.__name__}"
        )
    spec = KeyedJSON.of(schema_of())  # (keyed once, not on every call)
    name = model.__name__

    def parse(text: str) -> Any:
        try:
            return validate_json(_unfenced(text))  # (parsing and checking in one pass)
        except ValueError as exc:  # (pydantic's ValidationError is a ValueError)
            errors = getattr(exc, "errors", None)
            found = errors() if callable(errors) else []
            if not found or any(error.get("type") == "json_invalid" for error in found):
                _loads(text)  # raises the "not JSON" error
            raise _mismatch(text, name, _pydantic_problems(found)) from exc

    return StructuredSchema(spec, parse)


@functools.lru_cache(maxsize=256)  # keyed by the schema's JSON text: checking it is slow
def _of_dict(text: str) -> StructuredSchema:
    spec = KeyedJSON.of(json.loads(text))
    try:
        import jsonschema
    except ImportError as exc:  # (a core dependency: only a broken install lacks it)
        raise ConfigError(
            "get_json with a dict schema needs jsonschema: pip install jsonschema"
        ) from exc
    kind = jsonschema.validators.validator_for(spec)
    try:
        kind.check_schema(spec)
    except jsonschema.SchemaError as exc:
        raise ConfigError(
            f"get_json: the schema is not a valid JSON schema: {exc.message}"
        ) from exc
    validator = kind(spec)

    def parse(answer: str) -> Any:
        value = _loads(answer)
        errors = sorted(validator.iter_errors(value), key=lambda error: list(error.path))
        if errors:
            problems = [f"{_where(list(error.path))}: {error.message}" for error in errors]
            raise _mismatch(answer, "the schema", problems)
        return value

    return StructuredSchema(spec, parse)


def _unfenced(text: str) -> str:
    if "```" not in text:
        return text
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text


def _loads(text: str) -> Any:
    try:
        return json.loads(_unfenced(text))
    except ValueError as exc:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise StructuredOutputError(
            f"the answer is not JSON ({exc}): {shown!r}", raw_text=text, problems=[str(exc)]
        ) from exc


def _mismatch(text: str, what: str, problems: list[str]) -> StructuredOutputError:
    listed = "; ".join(problems[:_MAX_SHOWN])
    more = f" (and {len(problems) - _MAX_SHOWN} more)" if len(problems) > _MAX_SHOWN else ""
    return StructuredOutputError(
        f"the answer does not match {what}: {listed}{more}", raw_text=text, problems=problems
    )


def _pydantic_problems(errors: list[Mapping[str, Any]]) -> list[str]:
    return [f"{_where(list(error.get('loc', ())))}: {error.get('msg', '')}" for error in errors]


def _where(path: list[Any]) -> str:
    return ".".join(str(part) for part in path) or "(the whole answer)"


def example_of(schema: Mapping[str, Any], text: str, _root: Any = None, _depth: int = 0) -> Any:
    """A value that fits ``schema`` (local ``$ref``s and the common keywords), its strings
    ``text``: what ``EchoModel`` and ``spark.testing``'s server answer when asked for JSON."""
    root = schema if _root is None else _root
    if _depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return example_of(target, text, root, _depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or () if isinstance(o, Mapping)]
        chosen = [o for o in options if o.get("type") != "null"] or options
        if chosen:
            return example_of(chosen[0], text, root, _depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: example_of(sub, text, root, _depth + 1)
            for name, sub in properties.items()
            if isinstance(sub, Mapping)
        }
    if kind == "array":
        items = schema.get("items")
        count = max(1, int(schema.get("minItems", 1)))
        item = items if isinstance(items, Mapping) else {}
        return [example_of(item, text, root, _depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = int(low) + 1 if isinstance(low, int | float) else 1
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text
