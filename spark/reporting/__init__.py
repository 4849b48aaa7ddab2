"""Reports on a cache directory: hit rate and dollars over time, what is stored, top requests.

``write_report(cache_dir, "report.html")`` writes one self-contained HTML page;
``collect_report_data(cache_dir)`` returns the same figures as JSON-ready data.
"""

from __future__ import annotations

from spark.reporting.data import collect_report_data
from spark.reporting.html import render_html, render_report, write_report

__all__ = ["collect_report_data", "render_html", "render_report", "write_report"]
