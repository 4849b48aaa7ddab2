"""A cache committed under the previous key schema: replay says so, ``spark cache migrate``
re-keys it, and the same calls are hits again (plaintext and encrypted).

``data/schema1`` was recorded by Spark before the wire rule (key schema 1) with the calls in its
``calls.json`` (``recorded_by.py.txt`` is the script that recorded it); ``TEST-ONLY.key`` is the
key of its sealed copy, made for this fixture only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spark.cache import CacheConfig
from spark.cache.codec import EntryMeta, encode_entry
from spark.cache.crypto import KeyRing
from spark.cli import cli
from spark.errors import CacheMissError
from spark.testing import ProviderServer

DATA = Path(__file__).with_name("data") / "schema1"
CALLS: list[list[Any]] = json.loads((DATA / "calls.json").read_text())
KEY = (DATA / "TEST-ONLY.key").read_text().strip()


def spark(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(params=["plain", "sealed"])
def committed(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the schema-1 cache (the key in SPARK_CACHE_KEY for both)."""
    monkeypatch.setenv("SPARK_CACHE_KEY", KEY)
    root = tmp_path / "llm-cache"
    shutil.copytree(DATA / request.param, root)
    return root, request.param == "sealed"


async def replay_all(root: Path, encrypt: bool, server: ProviderServer) -> None:
    config = CacheConfig(enabled=True, cache_dir=root, encrypt=encrypt, mode="replay")
    for provider, model_id, kind, argument, kwargs in CALLS:
        model = server.model(provider, model_id, cache_config=config)
        if kind == "embed":
            assert (await model.embed(argument)).cached
        else:
            assert await model.get_text(argument, **kwargs)
        await model.aclose()


async def test_replay_of_an_old_schema_names_it_and_the_command(
    committed: tuple[Path, bool], server: ProviderServer
) -> None:
    root, encrypt = committed
    config = CacheConfig(enabled=True, cache_dir=root, encrypt=encrypt, mode="replay")
    provider, model_id, _, messages, kwargs = CALLS[0]
    model = server.model(provider, model_id, cache_config=config)
    with pytest.raises(CacheMissError) as caught:
        await model.get_text(messages, **kwargs)
    message = str(caught.value)
    assert "key schema v1" in message
    assert "spark cache migrate" in message
    assert server.count() == 0


async def test_migrate_rekeys_every_entry_and_the_calls_hit_again(
    committed: tuple[Path, bool], server: ProviderServer
) -> None:
    root, encrypt = committed
    before = sorted(p.name for p in root.rglob("*.json"))
    dry = spark("cache", "migrate", "--dir", str(root), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"Would re-key {len(CALLS)} entries" in dry.output
    assert sorted(p.name for p in root.rglob("*.json")) == before, "a dry run changes nothing"

    result = spark("cache", "migrate", "--dir", str(root))
    assert result.exit_code == 0, result.output
    assert f"Re-keyed {len(CALLS)} entries to key schema v3" in result.output
    after = sorted(p.name for p in root.rglob("*.json"))
    assert len(after) == len(before)
    assert not set(after) & set(before)
    if encrypt:  # sealed as before: no answer text in any file
        assert all('"text"' not in p.read_text() for p in root.rglob("*.json"))
    await replay_all(root, encrypt, server)
    assert server.count() == 0, "every call of the committed suite is a hit again"

    again = spark("cache", "migrate", "--dir", str(root), "--json")
    assert json.loads(again.output) | {"cannot": []} == {
        "key_schema": 3,
        "checked": len(CALLS),
        "rekeyed": 0,
        "current": len(CALLS),
        "dry_run": False,
        "cannot": [],
    }


def test_an_entry_that_cannot_be_rederived_is_reported_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "llm-cache"
    shutil.copytree(DATA / "plain", root)
    request = {
        "v": 1, "kind": "chat", "provider": "openai", "model": "gpt-4o", "namespace": "",
        "system": [], "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "params": {"frobnicate": 3},
    }  # fmt: skip
    key = "f" * 64
    meta = EntryMeta(key, "openai", "gpt-4o", 1.0, None)
    odd = root / "openai" / "gpt-4o" / f"{key}.json"
    odd.write_bytes(encode_entry(meta, {"request": request, "response": {"text": "x"}}, None))

    result = spark("cache", "migrate", "--dir", str(root))
    assert result.exit_code == 1
    assert f"{odd}: its request (key schema v1) cannot be re-derived" in result.output
    assert "frobnicate" in result.output
    assert f"Re-keyed {len(CALLS)} entries" in result.output
    assert "1 of 9 cache entries could not be re-keyed" in result.output
    assert odd.exists()


def test_a_sealed_entry_that_cannot_be_rederived_keeps_its_text_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The translation's error quotes the request (a tool without a name, whole); migrate
    reports a sealed entry's failure without it, in text and JSON."""
    root = tmp_path / "llm-cache"
    shutil.copytree(DATA / "sealed", root)
    secret = "SECRET-TOOL-DESCRIPTION"
    request = {
        "v": 1, "kind": "chat", "provider": "openai", "model": "gpt-4o", "namespace": "",
        "system": [], "messages": [{"role": "user", "content": "Hi"}], "params": {},
        "tools": [{"description": secret, "parameters": {"type": "object"}}],
    }  # fmt: skip
    key = "e" * 64
    meta = EntryMeta(key, "openai", "gpt-4o", 1.0, None)
    odd = root / "openai" / "gpt-4o" / f"{key}.json"
    payload = {"request": request, "response": {"text": "x"}}
    odd.write_bytes(encode_entry(meta, payload, KeyRing.from_keys([KEY])))
    monkeypatch.setenv("SPARK_CACHE_KEY", KEY)

    for args in ([], ["--json"]):
        result = spark("cache", "migrate", "--dir", str(root), "--dry-run", *args)
        assert result.exit_code == 1
        assert "cannot be re-derived: ConfigError (its text stays sealed" in result.output
        assert f"`spark cache show {key[:12]}`" in result.output
        assert secret not in result.output


def test_migrate_refuses_plaintext_in_a_cache_that_encrypts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spark.toml").write_text(
        '[cache]\nenabled = true\nencrypt = true\ndir = "llm-cache"\n'
    )
    root = tmp_path / "llm-cache"
    shutil.copytree(DATA / "sealed", root)
    plain = sorted((DATA / "plain").rglob("*.json"))[0]  # swapped in by whoever can push
    swapped = root / plain.relative_to(DATA / "plain")
    shutil.copy(plain, swapped)
    answer = json.loads(plain.read_bytes())["payload"]["response"]["text"]

    result = spark("cache", "migrate")

    assert result.exit_code == 1
    assert f"{swapped}: a plaintext entry in a cache that encrypts is refused" in result.output
    assert "`spark cache rotate-key` seals it" in result.output
    assert f"Re-keyed {len(CALLS) - 1} entries" in result.output
    assert swapped.exists()  # left as it was, still refused by every read
    rewritten = [p for p in root.rglob("*.json") if p != swapped]
    assert all(answer not in p.read_text() and '"text"' not in p.read_text() for p in rewritten)


def test_migrate_without_the_key_says_to_set_it_not_to_re_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every entry is fine but sealed with a key not held: the fix is the key, not paying for
    a new recording."""
    monkeypatch.delenv("SPARK_CACHE_KEY", raising=False)
    root = tmp_path / "llm-cache"
    shutil.copytree(DATA / "sealed", root)

    result = spark("cache", "migrate", "--dir", str(root), "--dry-run")

    assert result.exit_code == 1
    assert "could not be re-keyed" in result.output
    assert "Set SPARK_CACHE_KEY to that key" in result.output
    assert "Re-record" not in result.output
