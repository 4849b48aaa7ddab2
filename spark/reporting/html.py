"""The cache report as one self-contained HTML page: inline CSS, inline SVG, no script to run.

``render_html(data)`` is pure (data in, page out); ``render_report`` gathers the data of a cache
directory first, and ``write_report`` saves the page atomically — what ``spark cache report
--html out.html`` calls. The data is embedded as JSON in ``<script type="application/json"
id="spark-data">`` so anyone can read the figures back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from spark.cache.manager import CacheManager
from spark.reporting.charts import Series, bar_chart, column_chart, line_chart
from spark.reporting.data import collect_report_data
from spark.reporting.money import USD_STEP, format_usd
from spark.types import Price

__all__ = ["CHART_DAYS", "embed_json", "render_html", "render_report", "write_report"]

CHART_DAYS = 90  # the charts show the last 90 days; the embedded JSON keeps every day
_GREEN, _GREY, _BLUE = "#2f9e44", "#868e96", "#1c7ed6"
_UNKNOWN_USD = "?"
_CSS = """
:root{color-scheme:light dark;--fg:#1f2328;--muted:#656d76;--bg:#fff;--card:#f6f8fa;--line:#d0d7de}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#8d96a0;--bg:#0d1117;
--card:#161b22;--line:#30363d}}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:960px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:32px 0 8px}
.muted{color:var(--muted);fill:var(--muted)}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px;
min-width:130px}.card b{display:block;font-size:20px}
.chart{width:100%;height:auto;margin:4px 0 12px}.chart .grid{stroke:var(--line)}
.chart .axis{font-size:11px;fill:var(--muted)}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{padding:4px 8px;
border-bottom:1px solid var(--line);text-align:left}td.n,th.n{text-align:right;
font-variant-numeric:tabular-nums}code{font-size:12px;word-break:break-all}
"""


def render_report(
    cache_dir: str | Path | CacheManager,
    *,
    top: int = 20,
    encrypted: bool = False,
    pricing: Mapping[str, Price] | None = None,
) -> str:
    """The HTML report of ``cache_dir`` or a manager's cache (``ConfigError`` when there is no
    such directory); ``encrypted``: its rules encrypt, so no text of a request is shown;
    ``pricing``: spark.toml's price overrides (which models' dollars are known)."""
    data = collect_report_data(cache_dir, top=top, encrypted=encrypted, pricing=pricing)
    return render_html(data)


def write_report(
    cache_dir: str | Path | CacheManager,
    out_path: str | Path,
    *,
    top: int = 20,
    encrypted: bool = False,
    pricing: Mapping[str, Price] | None = None,
) -> Path:
    """Write the HTML report of ``cache_dir`` (or a manager's cache) to ``out_path``
    (atomically); returns its path."""
    page = render_report(cache_dir, top=top, encrypted=encrypted, pricing=pricing)
    target = Path(out_path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(page)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def embed_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` can end or open a tag."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(data: Mapping[str, Any]) -> str:
    """The page for report data as ``collect_report_data`` returns it."""
    totals = data["totals"]
    sections = [
        f"<h1>Spark cache report</h1><p class=muted>{escape(str(data['cache_dir']))} · "
        f"generated {escape(str(data['generated_at']))}</p>",
        _cards(totals),
        "<h2>Over time</h2>",
        *_time_charts(data["days"]),
        "<h2>What is stored</h2>",
        *_storage(data["providers"], data["models"]),
        *_unknown_prices(data["models"]),
        "<h2>Top repeated requests</h2>",
        _top_requests(data["top_requests"]),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Spark cache report</title><style>{_CSS}</style></head><body>"
        + "\n".join(sections)
        + f'\n<script type="application/json" id="spark-data">{embed_json(data)}</script>'
        + "\n</body></html>\n"
    )


def _cards(totals: Mapping[str, Any]) -> str:
    cards = [
        ("Hit rate", _percent(totals["hit_rate"])),
        ("Saved", format_usd(totals["saved_usd"])),
        ("Spent", format_usd(totals["spent_usd"])),
        ("Prompt cache saved", format_usd(totals["provider_cache_saved_usd"])),
        ("Hits / misses", f"{totals['hits']:,} / {totals['misses']:,}"),
        ("Entries", f"{totals['entries']:,}"),
        ("On disk", _bytes(totals["size_bytes"])),
    ]
    body = "".join(f"<div class=card>{escape(k)}<b>{escape(v)}</b></div>" for k, v in cards)
    return f"<div class=cards>{body}</div>"


def _time_charts(days: Sequence[Mapping[str, Any]]) -> list[str]:
    labels, rows = _day_series(days)
    short = [label[5:] for label in labels]  # MM-DD; the tooltips carry the full date
    rates = [None if row is None else row["hit_rate"] for row in rows]
    saved = [0.0 if row is None else row["saved_usd"] for row in rows]
    spent = [0.0 if row is None else row["spent_usd"] for row in rows]
    rate_series = Series("hit rate", _BLUE, rates)
    money = [Series("saved", _GREEN, saved), Series("spent", _GREY, spent)]
    rate_tips = [
        f"{label}: no lookups"
        if row is None
        else f"{label}: {_percent(row['hit_rate'])} ({row['hits']:,} hits, {row['misses']:,} misses)"
        for label, row in zip(labels, rows, strict=True)
    ]
    money_tips = [
        f"{label}: saved {format_usd(a)}, spent {format_usd(b)}"
        for label, a, b in zip(labels, saved, spent, strict=True)
    ]
    return [
        "<p class=muted>Hit rate per day (hits over lookups, every model).</p>",
        line_chart(
            "hit rate per day", short, rate_series, _percent, 1.0, resolution=0.001, tips=rate_tips
        ),
        "<p class=muted>Dollars saved by hits and spent on misses, per day.</p>",
        column_chart(
            "dollars per day", short, money, format_usd, resolution=USD_STEP, tips=money_tips
        ),
        "<p class=muted>Saved: what Spark's cache hits saved. Spent: what the provider calls"
        " cost. Prompt cache: what the providers' own prompt caching took off those paid"
        " calls (already out of Spent).</p>",
        _table(
            ["Day", "Hits", "Misses", "Hit rate", "Saved", "Spent", "Prompt cache"],
            [_day_row(d) for d in reversed(days)],
            1,
            summary=f"Every day ({len(days)})",
        ),
    ]


def _day_series(
    days: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[Mapping[str, Any] | None]]:
    """The last ``CHART_DAYS`` calendar days up to the latest one; days without a row are None."""
    known = {str(day["day"]): day for day in days}
    if not known:
        return [], []
    try:
        last = dt.date.fromisoformat(max(known))
        first = max(dt.date.fromisoformat(min(known)), last - dt.timedelta(days=CHART_DAYS - 1))
    except ValueError:  # not ISO dates: show the rows as they are
        labels = sorted(known)[-CHART_DAYS:]
        return labels, [known[label] for label in labels]
    labels = [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return labels, [known.get(label) for label in labels]


def _storage(
    providers: Sequence[Mapping[str, Any]], models: Sequence[Mapping[str, Any]]
) -> list[str]:
    entries = [(str(p["provider"]), float(p["entries"])) for p in providers]
    sizes = [(str(p["provider"]), float(p["size_bytes"])) for p in providers]
    return [
        "<p class=muted>Entries by provider.</p>",
        bar_chart("entries by provider", entries, lambda v: f"{v:,.0f}", _BLUE),
        "<p class=muted>Bytes on disk by provider.</p>",
        bar_chart("bytes by provider", sizes, _bytes, _GREY),
        _table(
            [
                *("Provider", "Model", "Entries", "On disk", "Hits", "Misses", "Hit rate"),
                *("Saved", "Spent", "Prompt cache"),
            ],
            [_model_row(m) for m in models],
            2,
        ),
    ]


def _day_row(d: Mapping[str, Any]) -> list[Any]:
    rate, saved, spent = (
        _percent(d["hit_rate"]),
        format_usd(d["saved_usd"]),
        format_usd(d["spent_usd"]),
    )
    prompt = format_usd(d["provider_cache_saved_usd"])
    return [d["day"], d["hits"], d["misses"], rate, saved, spent, prompt]


def _model_row(m: Mapping[str, Any]) -> list[Any]:
    size, rate = _bytes(m["size_bytes"]), _percent(m["hit_rate"])
    sums = (m["saved_usd"], m["spent_usd"], m["provider_cache_saved_usd"])
    money = [_usd_of(amount, m.get("price_known", True)) for amount in sums]
    return [m["provider"], m["model_id"], m["entries"], size, m["hits"], m["misses"], rate, *money]


def _unknown_prices(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """The legend of "?": which models' calls have no known cost (not in the sums above)."""
    names = [f"{m['provider']}/{m['model_id']}" for m in models if not m.get("price_known", True)]
    if not names:
        return []
    return [
        f"<p class=muted>{_UNKNOWN_USD}: price unknown for {escape(', '.join(names))} (no price "
        'for the model, or calls without token counts: add [pricing."&lt;id&gt;"] to '
        "spark.toml); their calls are not in the dollar sums.</p>"
    ]


def _usd_of(amount: float, known: bool) -> str:
    """An amount, or "?" for a model whose calls have no known cost (never $0)."""
    return format_usd(amount) if known else _UNKNOWN_USD


def _top_requests(rows: Sequence[Mapping[str, Any]]) -> str:
    """Which request each is: what it asked (a preview only from a cache that does not
    encrypt) and its short key, provider, model, when it was recorded; then its hits."""
    if not rows:
        return "<p class=muted>No request has been served from the cache yet.</p>"
    return _table(
        ["Request", "Provider", "Model", "Recorded", "Hits", "Saved", "Last hit"],
        [
            [
                _Request(_asked(r), str(r["key"])),
                r["provider"],
                r["model_id"],
                _when(r.get("recorded_at")),
                r["hits"],
                _usd_of(r["saved_usd"], r.get("price_known", True)),
                _when(r["last_hit"]),
            ]
            for r in rows
        ],
        4,
    )


def _asked(row: Mapping[str, Any]) -> str:
    if row.get("preview"):
        return f"“{row['preview']}”"
    if row.get("sealed") is None:
        return "(entry no longer in the cache)"
    return "(encrypted)" if row["sealed"] else "(text not shown: the cache encrypts)"


class _Request(str):
    """A request cell: what it asked, then its short key as ``<code>``, the full key as its
    tooltip (everything escaped)."""

    key: str

    def __new__(cls, asked: str, key: str) -> _Request:
        cell = super().__new__(cls, asked)
        cell.key = key
        return cell


def _table(
    headers: list[str], rows: list[list[Any]], first_number: int, summary: str | None = None
) -> str:
    """A table whose columns from ``first_number`` on hold figures (right-aligned)."""
    head = "".join(
        f"<th{' class=n' if i >= first_number else ''}>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(_cell(cell, i >= first_number) for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if summary is None:
        return table
    return f"<details><summary>{escape(summary)}</summary>{table}</details>"


def _cell(value: Any, number: bool) -> str:
    if isinstance(value, _Request):
        key = escape(value.key)
        return f'<td>{escape(value)} <code title="{key}">{escape(value.key[:12])}</code></td>'
    text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"<td class=n>{escape(text)}</td>" if number else f"<td>{escape(text)}</td>"


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _bytes(value: float) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")
