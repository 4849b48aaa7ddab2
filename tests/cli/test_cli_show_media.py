"""``spark cache show`` and ``explain --show-values`` are for reading: media a model made (an
image, audio) is summed up in one line, not printed as megabytes of base64 (``--json`` gives it
whole); and a plaintext entry in a cache that encrypts is shown with a warning (docs/cli.md)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from spark.cache import CacheConfig, CacheManager, generate_key

Invoke = Callable[..., Result]  # the ``spark`` fixture of conftest.py

PICTURE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1000).decode()  # ~340 KB


def save_picture(cache_dir: Path, encrypt: bool = False) -> str:
    config = CacheConfig(enabled=True, cache_dir=cache_dir, encrypt=encrypt)
    bound = CacheManager(cache_dir, config).bind(config)
    request = bound.chat_request("gemini", "gemini-2.5-flash-image", "Draw a lighthouse.")
    image = {"inline_data": {"mime_type": "image/png", "data": PICTURE}}
    assert bound.save(request, {"text": "", "provider_output": [image], "cost_usd": 0.04})
    return request.key


def test_show_sums_up_media_and_json_gives_it_whole(spark: Invoke, cache_dir: Path) -> None:
    key = save_picture(cache_dir)

    shown = spark("cache", "show", key[:12])
    whole = spark("cache", "show", key[:12], "--json")

    assert shown.exit_code == 0, shown.output
    assert len(shown.stdout) < 5_000
    assert "<base64: about 256," in shown.stdout  # (the bytes behind 340 KB of text)
    assert "image/png" in shown.stdout
    response = json.loads(whole.stdout)["payload"]["response"]
    assert response["provider_output"][0]["inline_data"]["data"] == PICTURE


def test_explain_show_values_sums_up_media(spark: Invoke, cache_dir: Path) -> None:
    save_picture(cache_dir)
    request = json.dumps(
        {
            "provider": "gemini",
            "model_id": "gemini-2.5-flash-image",
            "messages": "Draw a lighthouse.",
        }
    )

    shown = spark("cache", "explain", "--show-values", request)

    assert shown.exit_code == 0, shown.output
    assert len(shown.stdout) < 5_000
    assert "<base64: about" in shown.stdout


def test_show_warns_of_a_plaintext_entry_in_a_cache_that_encrypts(
    spark: Invoke, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    key = save_picture(cache_dir)  # written plaintext, as by whoever can push to the repository

    shown = spark("cache", "show", key[:12], "--profile", "vault")

    assert shown.exit_code == 0, shown.output
    assert "encryption  none" in shown.stdout
    assert "a plaintext entry in a cache that encrypts: every read refuses it" in shown.stderr
