"""The one way Spark shows an amount of dollars, on the command line and in the HTML report.

Four decimals at every size (``$0.0062``, ``$12.3400``, ``$1,234.5000``): one call of a small
model costs fractions of a cent, so two decimals would show most amounts as ``$0.00``, and a
precision that changes with the amount (``$0.006168`` beside ``$0.01``) makes a column
unreadable. Rejected: significant digits (``$0.0000123``) — the same column then has many widths.
A non-zero amount below the precision is ``<$0.0001``, never ``$0.0000``.
"""

from __future__ import annotations

import math

__all__ = ["USD_DECIMALS", "USD_STEP", "format_usd"]

USD_DECIMALS = 4
USD_STEP = 10.0**-USD_DECIMALS  # the smallest amount shown apart from zero: $0.0001


def format_usd(amount: float | None) -> str:
    """``0.006168`` -> ``$0.0062``; ``0`` -> ``$0.0000``; ``0.00002`` -> ``<$0.0001``;
    ``None`` or NaN (unknown) -> ``-``."""
    if amount is None or math.isnan(amount):
        return "-"
    if 0 < amount < USD_STEP / 2:
        return f"<${USD_STEP:.{USD_DECIMALS}f}"
    sign = "-" if amount <= -USD_STEP / 2 else ""
    return f"{sign}${abs(amount):,.{USD_DECIMALS}f}"
