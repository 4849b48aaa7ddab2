"""Output helpers of the command line: JSON for machines, rich tables for people, progress bars.

Data goes to stdout; progress bars, warnings and errors go to stderr, so ``--json`` output can
always be piped. Everything printed goes through ``say``, ``print_table`` or ``echo_json``, which
show a character that could act on a terminal (from a hostile file name or entry) as its escape
(``spark._printable``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import PurePath
from typing import IO, Any, Literal, TypeVar

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from spark._printable import printable, printable_lines
from spark.reporting.money import format_usd

__all__ = [
    "echo_json",
    "entries",
    "format_expiry",
    "format_latency",
    "format_rate",
    "format_size",
    "format_time",
    "format_usd",
    "json_option",
    "print_table",
    "progress",
    "say",
    "shorten_middle",
    "show_library_warnings",
    "stdout",
    "warn",
]

T = TypeVar("T")
_PIPE_WIDTH = 160  # rich's 80 columns would truncate tables that are piped or captured
_MIN_SHORTENED = 12  # a shortened model id keeps at least this many characters

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")


def stdout() -> Console:
    """A console on the current stdout (looked up now, so tests' captured streams work)."""
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(highlight=False, width=_PIPE_WIDTH)
    return console


def say(message: str = "", *, err: bool = False, file: IO[Any] | None = None, **style: Any) -> None:
    """Print ``message`` (its lines, ``click.secho``'s ``style``), every character of it that could
    act on a terminal shown as its escape: the messages hold file names and entry data."""
    text = printable_lines(message)
    if style and not os.environ.get("NO_COLOR"):  # (https://no-color.org: any value)
        text = click.style(text, **style)
    click.echo(text, err=err, file=file)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (paths as strings; acting characters escaped, which JSON
    reads back as the same text)."""
    say(json.dumps(data, indent=2, default=_plain, ensure_ascii=False))


#: Base64 text this long (an image, audio) is summed up in readable output, not printed.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{400,}={0,2}")


def readable_json(value: Any) -> str:
    """``value`` as indented JSON for reading: long base64 text (media a model made, a
    signature) as a one-line summary, since a terminal full of it helps nobody; ``--json``
    prints it whole."""
    return json.dumps(_summed_up(value), indent=2, ensure_ascii=False)


def _summed_up(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _summed_up(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_summed_up(item) for item in value]
    if isinstance(value, str) and _BASE64_RUN.fullmatch(value):
        digest = hashlib.sha256(value.encode()).hexdigest()[:12]
        size = len(value) * 3 // 4
        return f"<base64: about {size:,} bytes, sha256 of the text {digest}; --json prints it>"
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def warn(message: str) -> None:
    """A ``warning: ...`` line on stderr."""
    say(f"warning: {message}", err=True, fg="yellow")


class _WarningLines(logging.Handler):
    """The library's warnings (``spark.*`` loggers) as the command line's own ``warning:``
    lines on stderr (the stream of the moment: a test runner's capture too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # (a library message that cannot be formatted: never a crash)
            message = str(record.msg)
        if record.levelno >= logging.ERROR:
            say(f"error: {message}", err=True, fg="red")
        else:
            warn(message)


_LINES = _WarningLines(logging.WARNING)


def show_library_warnings() -> None:
    """Print the library's warnings as ``warning:`` lines (once per process)."""
    logger = logging.getLogger("spark")
    if _LINES not in logger.handlers:
        logger.addHandler(_LINES)


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any] | None],
    *,
    fold: Sequence[str] = ("Value", "Source"),
    shorten: Sequence[str] = ("Model",),
) -> None:
    """A rich table on stdout that fits the terminal; a None row starts a new section.

    Every column stays: on a narrow terminal (80 columns) the gaps between columns shrink,
    then the ``shorten`` columns (model ids) lose characters in their middle — the end of an
    id (its date, its version) tells models apart — and only the ``fold`` columns (paths,
    values) wrap. Every other cell stays whole, so keys, sizes, dates and dollars are never cut.
    Rejected: letting rich squeeze columns, which hid the model column at 80 columns.
    """
    console = stdout()
    cells = [None if row is None else [printable(str(cell)) for cell in row] for row in rows]
    gap, widths = _layout(columns, cells, console.width, shorten)
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
        show_edge=False,
        padding=(0, 1, 0, 0) if gap == 2 else 0,
    )
    for name in columns:
        justify: Literal["left", "right"] = "right" if name.lower() in _NUMERIC else "left"
        if name in fold:
            table.add_column(name, justify=justify, overflow="fold")
        else:
            table.add_column(name, justify=justify, no_wrap=True, min_width=len(name))
    for row in cells:
        if row is None:
            table.add_section()
            continue
        shown = [
            shorten_middle(cell, widths[name]) if name in widths else cell
            for name, cell in zip(columns, row, strict=True)
        ]
        table.add_row(*(Text(cell) for cell in shown))  # no markup: `[cache]` is data
    console.print(table)


def _layout(
    columns: Sequence[str], rows: Sequence[Sequence[str] | None], width: int, shorten: Sequence[str]
) -> tuple[int, dict[str, int]]:
    """The gap between columns and the width of each ``shorten`` column: two spaces and every
    cell whole when that fits, else one space, then shortened columns (down to
    ``_MIN_SHORTENED`` characters; a table wider still is left to wrap)."""
    natural = [
        max([len(name)] + [len(row[i]) for row in rows if row is not None])
        for i, name in enumerate(columns)
    ]
    widths = {name: natural[i] for i, name in enumerate(columns) if name in shorten}
    for gap in (2, 1):
        if sum(natural) + gap * (len(columns) - 1) <= width:
            return gap, widths
    excess = sum(natural) + len(columns) - 1 - width
    for name, natural_width in widths.items():
        cut = min(excess, natural_width - max(len(name), min(_MIN_SHORTENED, natural_width)))
        widths[name] -= max(cut, 0)
        excess -= max(cut, 0)
    return 1, widths


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, an ellipsis in its middle: the start (the
    family) and a longer end (the date and version) stay —
    ``anthropic.claude-3-5-sonnet-20240620-v1:0`` in 24: ``anthropic…-20240620-v1:0``."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) * 2 // 5
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


_NUMERIC = frozenset({"entries", "size", "hits", "misses", "hit rate", "saved", "spent"})


def progress(items: Sequence[T], description: str) -> Iterator[T]:
    """Yield ``items`` while showing a progress bar on stderr (only on a terminal)."""
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def format_size(size: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_time(epoch: float | None, *, never: str = "never") -> str:
    """Local time of an epoch, to the minute; ``never`` for None."""
    if epoch is None:
        return never
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def format_rate(hits: int, misses: int) -> str:
    """``75.0%``, or ``-`` when there were no lookups."""
    lookups = hits + misses
    return f"{100 * hits / lookups:.1f}%" if lookups else "-"


def format_latency(seconds: float) -> str:
    """``0.00004`` -> ``40 µs``; ``0.0012`` -> ``1.2 ms``; ``0.41`` -> ``410 ms``; ``2.50 s``."""
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_expiry(expires_at: float | None, now: float | None = None) -> str:
    """How long until an entry expires, compactly: ``in 23 h``, ``in 29 d``, ``expired``."""
    if expires_at is None:
        return "never"
    left = expires_at - (time.time() if now is None else now)
    if left <= 0:
        return "expired"
    for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
        if left >= seconds:
            return f"in {left // seconds:.0f} {unit}"
    return f"in {left:.0f} s"


def entries(count: int) -> str:
    """``1 entry``, ``2 entries``."""
    return f"{count} {'entry' if count == 1 else 'entries'}"
