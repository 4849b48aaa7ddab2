"""Read a tool's description and its parameters' descriptions from a docstring.

Google style (``Args:`` with ``name (type): text`` lines) and Sphinx style (``:param name:
text``) are understood; the first paragraph is the description. Anything else is ignored, so an
unusual docstring costs only its parameter descriptions, never an error.
"""

from __future__ import annotations

import inspect
import re

__all__ = ["parse_docstring"]

_ARGS_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:\s*$"
)
_ANY_HEADER = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")  # Returns:, Raises:, Example:, Note: ...
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]+\s+)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {parameter: description})`` of a docstring (``("", {})`` for none)."""
    if not doc or not doc.strip():
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    return _first_paragraph(lines), {**_sphinx_params(lines), **_google_args(lines)}


def _first_paragraph(lines: list[str]) -> str:
    words: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or _ANY_HEADER.match(stripped) or stripped.startswith(":"):
            break
        words.append(stripped)
    return " ".join(words)


def _google_args(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    inside = False
    indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        depth = len(line) - len(line.lstrip())
        if depth == 0 and stripped:
            inside, indent, current = bool(_ARGS_HEADER.match(stripped)), None, None
            continue
        if not inside or not stripped:
            continue
        indent = depth if indent is None else indent
        match = _ARG_LINE.match(stripped) if depth == indent else None
        if match is not None:
            current = match.group(1)
            found[current] = match.group(2).strip()
        elif current is not None and depth > indent:
            found[current] = f"{found[current]} {stripped}".strip()
    return found


def _sphinx_params(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        match = _SPHINX_PARAM.match(stripped)
        if match is not None:
            current = match.group(1)
            found[current] = match.group(2).strip()
        elif stripped.startswith(":") or not stripped:
            current = None
        elif current is not None and line[:1].isspace():
            found[current] = f"{found[current]} {stripped}"
    return found
