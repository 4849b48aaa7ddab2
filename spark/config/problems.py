"""Turn pydantic validation errors into one readable line per problem.

A line names the file, the table, the key and what is allowed, e.g.
``spark.toml: [profiles.testing.cache] mode: must be one of read_write, read_only, replay,
refresh (got "replya")``. Unknown keys get the closest known key suggested (difflib).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from spark.cache.config import CACHE_ALIASES, describe_error, show_value
from spark.config.sources import toml_key

__all__ = ["format_validation_error", "invalid_locations", "problem_message", "show_value"]

# Errors about the document's shape; a value's errors are worded by ``describe_error``.
_TABLE_ERRORS: dict[str, str] = {
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "dict_type": "expected a table",
}
# Names from elsewhere in Spark (CacheConfig's old names, model constructor arguments) -> the
# file's key.
_SYNONYMS: dict[str, str] = {
    **CACHE_ALIASES,
    "cache_ttl_seconds": "ttl_seconds",
    "enable_cache": "enabled",
}


def problem_message(problems: Sequence[str]) -> str:
    """The message of a ``ConfigError``: a count, then every problem on its own line."""
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    return f"invalid Spark configuration ({count}):\n" + "\n".join(f"  {p}" for p in problems)


def format_validation_error(
    exc: ValidationError, where: str, root: type[BaseModel], data: Mapping[str, Any]
) -> list[str]:
    """One line per error of ``exc`` in the order of ``data`` (the document as written).

    ``where`` names the file, ``root`` is the schema ``data`` was validated against. Pydantic
    reports in schema order with unknown keys last; a reader wants the order of the file.
    """
    errors = sorted(exc.errors(), key=lambda error: _position(data, error["loc"]))
    return [_format_one(error, where, root) for error in errors]


def _position(data: Any, loc: Sequence[int | str]) -> tuple[int, ...]:
    """Where ``loc`` is in ``data`` (TOML tables keep the file's order); missing keys go last."""
    position = []
    for part in loc:
        if not isinstance(data, Mapping) or part not in data:
            position.append(len(data) if isinstance(data, Mapping) else 0)
            break
        position.append(list(data).index(part))
        data = data[part]
    return tuple(position)


def invalid_locations(exc: ValidationError) -> list[tuple[str, ...]]:
    """The keys to drop so the rest of the document validates (a missing key drops its table)."""
    locations = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        locations.append(loc[:-1] if error["type"] == "missing" else loc)
    return locations


def _format_one(error: ErrorDetails, where: str, root: type[BaseModel]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    table, key = loc[:-1], loc[-1] if loc else "(document)"
    kind = error["type"]
    if kind == "extra_forbidden":
        message = _unknown_key_message(key, _allowed_keys(root, table))
    elif kind == "missing":
        message = "required"
    elif kind in _TABLE_ERRORS:
        message = f"{_TABLE_ERRORS[kind]} (got {show_value(error['input'])})"
    else:
        message = describe_error(error)
    header = f" [{'.'.join(toml_key(part) for part in table)}]" if table else ""
    return f"{where}:{header} {key}: {message}"


def _unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    close = _closest(key, allowed)
    hint = f' (did you mean "{close}"?)' if close else ""
    return f"unknown key{hint}; allowed keys: {', '.join(allowed)}"


def _closest(key: str, allowed: Sequence[str]) -> str | None:
    """The known key ``key`` was meant to be: a known synonym, a near spelling, a prefix."""
    if _SYNONYMS.get(key) in allowed:
        return _SYNONYMS[key]
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return close[0]
    return next((name for name in allowed if name.startswith(key) or key.startswith(name)), None)


def _allowed_keys(root: type[BaseModel], table: Sequence[str]) -> list[str]:
    """The field names of the schema table at ``table`` (walking models and ``dict`` values)."""
    model: type[BaseModel] | None = root
    parts = iter(table)
    for part in parts:
        if model is None or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        if get_origin(annotation) is dict:
            next(parts, None)  # the dict key: an alias, a profile name, a model id
            annotation = get_args(annotation)[1]
        model = _model_in(annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class of ``annotation`` (``Model`` or ``Model | None``), if there is one."""
    if get_origin(annotation) in (Union, types.UnionType):
        return next((m for a in get_args(annotation) if (m := _model_in(a))), None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
