"""Any text a provider can send is cached and comes back exactly: a lone UTF-16 surrogate
(valid in JSON as an escape, not in UTF-8) is stored as its escape, plaintext and encrypted, on
the hit and from disk (it could not be stored, so the call was paid every time)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from spark.cache import CacheConfig
from spark.testing import ProviderServer

ODD = "half a pair \ud83d, then NUL \x00 and U+2028 \u2028 end"


@pytest.mark.parametrize("encrypt", [False, True], ids=["plaintext", "encrypted"])
async def test_a_lone_surrogate_is_cached_and_comes_back_exactly(
    three_answers: Callable[..., Any],
    server: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encrypt: bool,
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", Fernet.generate_key().decode())
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "cache", encrypt=encrypt)
    server.queue_text(ODD)

    miss, hit, from_disk = await three_answers(
        "openai",
        "gpt-4o-mini",
        "Say something odd.",
        streamed=False,
        options={"cache_config": config},
    )

    assert miss.text == hit.text == from_disk.text == ODD
    assert server.count(provider="openai") == 1
