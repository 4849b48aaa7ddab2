"""The shape a stored payload must have before it is served, and copies a hit can hand out.

A payload read back is ``{"request": {...}, "response": {...}}``. The response's known fields must
have the types a response has (text a string, usage a map of non-negative counts, well-formed tool
calls, a finite non-negative cost or null, vectors of numbers, text chunks); unknown fields are
allowed so newer writers stay readable. Nesting is bounded, so nothing later recurses without end.
A type-confused entry is corrupt here, not a crash further up (docs/caching.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "MAX_CALL_COST_USD",
    "MAX_DEPTH",
    "check_payload",
    "own_copy",
    "valid_amount",
    "valid_count",
]

MAX_DEPTH = 64
#: No single model call costs this much: a larger "cost" is damage, and sums of such amounts
#: could overflow to infinity.
MAX_CALL_COST_USD = 1e6
_COUNT_LIMIT = 2**63


def valid_amount(value: object) -> float | None:
    """``value`` as the dollar cost of one call when it is a number from 0 to
    ``MAX_CALL_COST_USD`` (finite), else None; refused wherever amounts enter."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        amount = float(value)
    except OverflowError:  # an int past 1e308
        return None
    return amount if 0 <= amount <= MAX_CALL_COST_USD else None  # (NaN compares False)


def valid_count(value: object) -> int | None:
    """``value`` as a token count when it is a whole number from 0 to below 2**63 (the counts a
    stored answer may hold), else None; refused wherever counts enter."""
    if type(value) is float and value.is_integer():  # (a JSON ``5.0``; NaN and inf are not)
        value = int(value)
    return value if type(value) is int and _is_count(value) else None


def check_payload(payload: dict[str, Any], *, check_request: bool = True) -> str | None:
    """Why ``payload`` cannot be served, or None when it has the shape of a stored answer.

    ``check_request=False`` when the stored request is already known to equal a request the
    caller built (then its nesting is the caller's own).
    """
    request, response = payload.get("request"), payload.get("response")
    if type(request) is not dict or type(response) is not dict:
        return "payload lacks its request or response object"
    nested: list[Any] = []
    for name, value in response.items():
        check = _FIELDS.get(name)
        if check is not None and value is not None and not check(value):
            return f"response field {name!r} has the wrong shape"
        kind = type(value)
        if kind is dict or kind is list:
            if value and name not in _FLAT:  # (a flat field's check covered its items)
                nested.append(value)
        elif kind is float and not math.isfinite(value):
            return "holds a number that is not finite"
    unsound = _unsound(request) if check_request else ""
    if not unsound and nested:
        unsound = _unsound(nested)
    if unsound:
        return unsound
    if request.get("kind") == "embedding" and type(response.get("embeddings")) is not list:
        return "the answer of an embeddings request holds no vectors"
    return None


def _unsound(value: dict[str, Any] | list[Any]) -> str:
    """Why a parsed JSON value cannot be kept: nested too deep, or holding a number that is
    not finite (JSON's ``1e999`` parses to infinity); "" when it is sound."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        for child in item.values() if type(item) is dict else item:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
            elif type(child) is float and not math.isfinite(child):
                return "holds a number that is not finite"
    return ""


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < _COUNT_LIMIT


def _is_amount(value: Any) -> bool:
    if type(value) is float:
        return 0 <= value <= MAX_CALL_COST_USD  # (NaN compares False)
    return type(value) is int and valid_amount(value) is not None


def _is_text(value: Any) -> bool:
    return type(value) is str


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int


def _usage(value: Any) -> bool:
    return type(value) is dict and all(_is_count(v) for v in value.values())


def _tool_calls(value: Any) -> bool:
    return type(value) is list and all(
        type(call) is dict
        and type(call.get("id")) is str
        and type(call.get("name")) is str
        and type(call.get("arguments", {})) is dict
        and _is_signature(call.get("signature"))
        for call in value
    )


_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _is_signature(value: Any) -> bool:
    """A tool call's signature: none, or base64 text (it goes back on the wire as bytes)."""
    return value is None or (type(value) is str and _BASE64.fullmatch(value) is not None)


def _embeddings(value: Any) -> bool:
    # (json never yields NaN or Infinity here: the parser refuses them; a huge exponent such as
    # 1e999 parses to inf, which isfinite catches)
    return type(value) is list and all(
        type(vector) is list and all(map(_is_number, vector)) and all(map(math.isfinite, vector))
        for vector in value
    )


def _is_report(value: Any) -> bool:
    """A provider's report in its own shape (``citations``, ``reasoning``,
    ``provider_output``): a JSON object or list, or null."""
    return value is None or type(value) in (dict, list)


def _strings(value: Any) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _choices(value: Any) -> bool:
    return type(value) is list and all(
        type(choice) is dict
        and type(choice.get("text", "")) is str
        and type(choice.get("finish_reason", "")) is str
        and type(choice.get("refusal") or "") is str
        and _is_report(choice.get("citations"))
        and _is_report(choice.get("reasoning"))
        and _is_report(choice.get("provider_output"))
        and _tool_calls(choice.get("tool_calls", []))
        for choice in value
    )


_FLAT = frozenset({"usage", "embeddings", "chunks"})
_FIELDS: dict[str, Callable[[Any], bool]] = {
    "text": _is_text,
    "finish_reason": _is_text,
    "refusal": _is_text,
    "response_model": _is_text,
    "citations": _is_report,
    "reasoning": _is_report,
    "provider_output": _is_report,
    "usage": _usage,
    "cost_usd": _is_amount,
    "provider_cache_saved_usd": _is_amount,
    "tool_calls": _tool_calls,
    "embeddings": _embeddings,
    "chunks": _strings,
    "choices": _choices,
}


def own_copy(response: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored response that shares no mutable object with it.

    Strings and numbers are immutable and shared; dicts and lists are copied. Vectors (a list of
    lists of numbers, already checked) are copied a row at a time, at C speed.
    """
    out = dict(response)
    for name, value in out.items():
        if name == "embeddings" and type(value) is list:
            out[name] = [list(vector) for vector in value]
        elif type(value) is dict or type(value) is list:
            out[name] = _deep_copy(value)
    return out


def _deep_copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _deep_copy(v) if type(v) in (dict, list) else v for k, v in value.items()}
    if type(value) is list:
        return [_deep_copy(v) if type(v) in (dict, list) else v for v in value]
    return value
