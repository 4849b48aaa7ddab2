"""Text from files, shown without letting it act on a terminal.

A cache directory may come from someone else (a pull request, a shared disk): its file names,
an entry's metadata and its answers are data. Printed as they are, an escape sequence in one
could retitle the terminal, write the clipboard, or erase the line that reports the file
(``spark cache verify`` would seem clean). ``printable`` shows every character that could act
(controls, bidirectional and other format characters, line and paragraph separators) as its
``\\uXXXX`` escape, which is also valid inside a JSON string; every other character is unchanged
(docs/cli.md, "Output").
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["printable", "printable_lines"]

_ACTING = frozenset({"Cc", "Cf", "Zl", "Zp"})  # controls, format characters, separators
_ASCII_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")  # (all ASCII acts but newline)


def printable(text: str) -> str:
    """``text`` with every character that acts on a terminal (newlines too) escaped."""
    if text.isprintable():
        return text
    return "".join(_escape(ch) if unicodedata.category(ch) in _ACTING else ch for ch in text)


def printable_lines(text: str) -> str:
    """``text`` line by line as ``printable`` shows it: its newlines kept."""
    if text.isascii() and not _ASCII_CONTROL.search(text):
        return text  # (the common case, at C speed: a long JSON listing)
    return "\n".join(printable(line) for line in text.split("\n"))


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)  # (as a JSON string spells it: a surrogate pair)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
