"""``spark cache report``: writes the page and exposes the same data as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from spark.cache import CacheConfig, CacheManager
from spark.cache.ledger import Ledger


async def test_report_writes_a_page_with_the_ledger_data(
    spark: Callable[..., Result], fill: Callable[..., list[str]], cache_dir: Path, tmp_path: Path
) -> None:
    fill(2)
    config = CacheConfig(enabled=True, cache_dir=cache_dir)
    bound = CacheManager.get_instance(cache_dir, config).bind(config)
    request = bound.chat_request("openai", "gpt-4o-mini", "question 0")

    async def never() -> dict[str, str]:
        raise AssertionError

    for _ in range(3):
        await bound.get_or_call(request, never)
    bound.manager.counters.ledger.flush()
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    result = spark("cache", "report", "--html", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    data = json.loads(
        re.search(r'<script type="application/json" id="spark-data">(.*?)</script>', page, re.S)[1]  # type: ignore[index]
    )
    as_json = json.loads(spark("cache", "report", "--json").stdout)
    # (the two runs may fall either side of a second: generated_at is a time, to the second)
    assert data.pop("generated_at")[:13] == as_json.pop("generated_at")[:13]
    assert data == as_json
    text = json.dumps(data)
    assert request.key in text, "the repeated request is listed"
    assert '"hits": 3' in text


def test_report_of_a_missing_directory_is_one_line(
    spark: Callable[..., Result], tmp_path: Path
) -> None:
    result = spark("cache", "report", "--dir", str(tmp_path / "nope"), "--html", "x.html")
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_report_of_an_encrypting_profile_shows_no_request_text(
    spark: Callable[..., Result], fill: Callable[..., list[str]], cache_dir: Path, tmp_path: Path
) -> None:
    (key,) = fill(1)  # plaintext "question 0", in the cache of the `vault` profile (encrypt)
    ledger = Ledger(cache_dir)
    ledger.record("openai", "gpt-4o-mini", hit=True, cost=0.002, key=key)
    ledger.flush()
    plain = json.loads(spark("cache", "report", "--json").stdout)["top_requests"]
    assert [(r["preview"], r["sealed"]) for r in plain] == [("question 0", False)]
    out = tmp_path / "vault.html"
    result = spark("cache", "report", "--profile", "vault", "--html", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "question 0" not in page
    assert "(text not shown: the cache encrypts)" in page
    assert "openai</td><td>gpt-4o-mini</td>" in page
    assert "$0.0020" in page
