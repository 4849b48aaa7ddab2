"""Where and how entries land on disk: path-safe model folders, provider names, atomic writes
that reads never change, and an envelope that keeps prompts and answers inside the payload.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache, CacheRequest, make_request
from spark.cache.codec import decode_envelope
from spark.cache.stores.disk import quote_model_id, unquote_model_id
from spark.errors import ConfigError

PROVIDER = "openai"
LONG_ID = "m" * 1000
LONG_ID_2 = "m" * 999 + "n"
LONG_IDS = (LONG_ID, LONG_ID_2)
MODEL_IDS = [
    "../../etc",
    "/etc/passwd",
    "a/b",
    "a:b",
    "a%3Ab",
    "x\x00y",
    "..",
    ".",
    "%2E",
    ".hidden",
    "模型-✓",
    "émoji-🙂",
    "e\u0301",  # "é" decomposed (NFD) ...
    "\u00e9",  # ... and composed (NFC): two ids, two folders
    "C:\\Windows\\System32",
    "~root",
    "a b",
    "gpt-4o",
    "GPT-4o",
    LONG_ID,
    LONG_ID_2,  # shares its readable prefix with LONG_ID
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "models/gemini-2.0-flash",
]
ENVELOPE_FIELDS = {
    "format",
    "key",
    "digest",
    "provider",
    "model_id",
    "created_at",
    "expires_at",
    "encryption",
    "key_fingerprint",
    "payload",
}


def make_bound(tmp_path: Path, **changes: Any) -> tuple[CacheManager, BoundCache]:
    config = CacheConfig(enabled=True, cache_dir=tmp_path / "c", ttl_seconds=3600, **changes)
    manager = CacheManager.get_instance(config.resolved_dir, config)
    return manager, manager.bind(config)


def ask(bound: BoundCache, prompt: str, model: str = "gpt-4o", **params: Any) -> CacheRequest:
    return bound.chat_request(PROVIDER, model, [{"role": "user", "content": prompt}], **params)


# -- model folders ----------------------------------------------------------------------------


def test_every_model_id_gets_its_own_folder_inside_the_cache(tmp_path: Path) -> None:
    manager, bound = make_bound(tmp_path)
    root = manager.cache_dir.resolve()
    folders: dict[str, str] = {}
    for model_id in MODEL_IDS:
        request = ask(bound, "hello", model_id)
        assert bound.save(request, {"text": f"answer of {model_id}"})
        path = Path(manager.store.location(PROVIDER, model_id, request.key))
        assert path.is_file()
        assert path.resolve().is_relative_to(root)
        assert path.parent.parent == manager.cache_dir / PROVIDER  # exactly one folder level
        name = path.parent.name
        assert name not in (".", "..")
        assert not name.startswith(".")
        assert len(name.encode()) <= 255
        folders[model_id] = name

    assert len(set(folders.values())) == len(MODEL_IDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "home"]  # nothing escaped
    assert list((tmp_path / "home").iterdir()) == []
    bookkeeping = {".gitignore", ".spark-counts"}  # (the counts records: docs/caching.md)
    assert sorted(p.name for p in (tmp_path / "c").iterdir() if p.name not in bookkeeping) == [
        PROVIDER
    ]
    fresh = CacheManager(manager.cache_dir, bound.config).bind(bound.config)
    for model_id in MODEL_IDS:
        payload = fresh.lookup(ask(fresh, "hello", model_id))
        assert payload is not None
        assert payload["text"] == f"answer of {model_id}"


@pytest.mark.parametrize("model_id", MODEL_IDS, ids=range(len(MODEL_IDS)))
def test_model_folder_names_round_trip(model_id: str) -> None:
    name = quote_model_id(model_id)

    assert "/" not in name
    assert "\x00" not in name
    assert "\\" not in name
    assert len(name) <= 160
    if model_id in LONG_IDS:
        assert "+" in name
        assert unquote_model_id(name) is None  # hashed: the full id lives in the metadata
    else:
        assert unquote_model_id(name) == model_id


def test_stats_report_the_original_model_ids(tmp_path: Path) -> None:
    manager, bound = make_bound(tmp_path)
    for model_id in MODEL_IDS:
        assert bound.save(ask(bound, "hello", model_id), {"text": "answer"})
    assert bound.save(ask(bound, "bye", "a/b"), {"text": "answer"})

    by_model = manager.get_stats()["entries_by_model"]

    assert by_model == {PROVIDER: {m: 2 if m == "a/b" else 1 for m in MODEL_IDS}}
    assert manager.clear_model(PROVIDER, "a/b") == 2
    assert manager.clear_model(PROVIDER, LONG_ID) == 1
    remaining = manager.get_stats()["entries_by_model"][PROVIDER]
    assert set(remaining) == set(MODEL_IDS) - {"a/b", LONG_ID}


@pytest.mark.parametrize("provider", ["../x", "OpenAI", "", "open/ai", ".", "..", "a\x00b"])
async def test_unsafe_provider_names_are_refused(tmp_path: Path, provider: str) -> None:
    manager, bound = make_bound(tmp_path)
    with pytest.raises(ConfigError, match="unknown provider"):
        bound.chat_request(provider, "gpt-4o", "hello")
    request = make_request("chat", provider, "gpt-4o", "", {"messages": []})  # (built by hand)
    calls = 0

    async def call() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"text": "answer"}

    with pytest.raises(ConfigError):
        manager.store.location(provider, "gpt-4o", request.key)
    with pytest.raises(ConfigError):
        bound.save(request, {"text": "answer"})
    with pytest.raises(ConfigError):
        await bound.get_or_call(request, call)
    with pytest.raises(ConfigError):
        manager.clear_provider(provider)
    assert calls == 0
    assert not (tmp_path / "c").exists()


# -- atomic writes, reads that do not write ---------------------------------------------------


def test_rewrite_replaces_the_file_by_rename(tmp_path: Path) -> None:
    manager, bound = make_bound(tmp_path)
    request = ask(bound, "hello")
    assert bound.save(request, {"text": "old answer"})
    path = manager.store.location(PROVIDER, "gpt-4o", request.key)
    old_bytes, old_inode = Path(path).read_bytes(), os.stat(path).st_ino

    with open(path, "rb") as reader_handle:  # a reader that opened the old entry
        assert bound.save(request, {"text": "new answer, longer than the old one"})
        assert reader_handle.read() == old_bytes  # still the whole old entry, never a mix

    assert os.stat(path).st_ino != old_inode
    assert b"new answer" in Path(path).read_bytes()
    assert list(manager.store.temp_files()) == []
    assert sorted(os.listdir(os.path.dirname(path))) == [f"{request.key}.json"]


def test_reads_never_change_bytes_or_mtime(tmp_path: Path) -> None:
    manager, bound = make_bound(tmp_path)
    request = ask(bound, "hello")
    assert bound.save(request, {"text": "answer"})
    path = manager.store.location(PROVIDER, "gpt-4o", request.key)
    long_ago = 1_000_000_000 * 10**9
    os.utime(path, ns=(long_ago, os.stat(path).st_mtime_ns))
    before = Path(path).read_bytes(), os.stat(path).st_mtime_ns, os.stat(path).st_ino

    cold = CacheManager(manager.cache_dir, bound.config).bind(bound.config)
    assert cold.lookup(request) is not None  # from disk
    assert bound.lookup(request) is not None  # from the memory tier
    assert manager.has_entry(request.key)

    after = Path(path).read_bytes(), os.stat(path).st_mtime_ns, os.stat(path).st_ino
    assert after == before
    assert os.stat(path).st_atime_ns > long_ago  # the use is recorded for LRU eviction


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="no O_NOATIME on this platform")
def test_an_entry_someone_else_owns_is_read_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_NOATIME is the file owner's: for anyone else the kernel refuses it (EPERM), and the entry
    is read without it (a committed cache checked out by another user)."""
    manager, bound = make_bound(tmp_path)
    request = ask(bound, "hello")
    assert bound.save(request, {"text": "answer"})
    real_open = os.open
    refused: list[str] = []

    def not_the_owner(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_NOATIME:
            refused.append(str(path))
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", not_the_owner)
    cold = CacheManager(manager.cache_dir, bound.config).bind(bound.config)
    assert cold.lookup(request) == {"text": "answer"}
    assert refused == [f"{request.key}.json"]


def test_a_use_is_recorded_once_a_minute_at_most(tmp_path: Path) -> None:
    """A read of an entry used under a minute ago leaves its access time alone (neither Spark nor
    the kernel rewrites it on every read), and one used longer ago records the use."""
    manager, bound = make_bound(tmp_path)
    request = ask(bound, "hello")
    assert bound.save(request, {"text": "answer"})
    path = manager.store.location(PROVIDER, "gpt-4o", request.key)
    mtime = os.stat(path).st_mtime_ns
    lately = os.stat(path).st_atime_ns - 10 * 10**9
    os.utime(path, ns=(lately, mtime))

    for _ in range(3):  # each a first read in a process of its own (no memory tier)
        cold = CacheManager(manager.cache_dir, bound.config).bind(bound.config)
        assert cold.lookup(request) is not None
    assert os.stat(path).st_atime_ns == lately

    os.utime(path, ns=(lately - 60 * 10**9, mtime))
    cold = CacheManager(manager.cache_dir, bound.config).bind(bound.config)
    assert cold.lookup(request) is not None
    assert os.stat(path).st_atime_ns > lately
    assert os.stat(path).st_mtime_ns == mtime


def test_readers_see_old_or_new_bytes_while_a_writer_rewrites(tmp_path: Path) -> None:
    manager, bound = make_bound(tmp_path)
    request = ask(bound, "hello")
    answers = [f"{n}:" + "z" * (n * 997 % 20000) for n in range(150)]
    assert bound.save(request, {"text": answers[0]})
    path = manager.store.location(PROVIDER, "gpt-4o", request.key)
    done = threading.Event()
    problems: list[str] = []

    def read_raw() -> None:
        while not done.is_set():
            try:
                envelope = json.loads(Path(path).read_bytes())
            except (ValueError, FileNotFoundError) as exc:
                problems.append(repr(exc))
                continue
            if envelope["payload"]["response"]["text"] not in answers:
                problems.append("an answer that was never written")

    thread = threading.Thread(target=read_raw)
    thread.start()
    try:
        for answer in answers:
            assert bound.save(request, {"text": answer})
    finally:
        done.set()
        thread.join()

    assert problems == []


# -- the envelope -----------------------------------------------------------------------------

PROMPT = "purple elephant prompt 4711"
ANSWER = "tangerine answer 0815"
SECRET = "sk-live-DO-NOT-STORE-123"


def _entry_bytes(tmp_path: Path, encrypt: bool) -> tuple[bytes, CacheRequest]:
    manager, bound = make_bound(tmp_path, encrypt=encrypt)
    # (a credential in a per-call header is sent, never keyed nor stored)
    request = ask(
        bound, PROMPT, system_prompt="be terse", timeout=30, extra_headers={"x-api-key": SECRET}
    )
    assert bound.save(request, {"text": ANSWER, "cost_usd": 0.01})
    return Path(manager.store.location(PROVIDER, "gpt-4o", request.key)).read_bytes(), request


def test_encrypted_entry_holds_no_prompt_answer_or_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    data, request = _entry_bytes(tmp_path, encrypt=True)
    envelope = json.loads(data)

    assert set(envelope) == ENVELOPE_FIELDS
    assert envelope["encryption"] == "fernet"
    assert isinstance(envelope["payload"], str)
    for text in (PROMPT, ANSWER, SECRET, "be terse", "tangerine", "elephant"):
        assert text.encode() not in data
    assert envelope["key"] == request.key
    assert data.index(b'"expires_at"') < data.index(b'"payload"')  # metadata first


def test_plaintext_entry_holds_prompt_and_answer_only_in_the_payload(tmp_path: Path) -> None:
    data, request = _entry_bytes(tmp_path, encrypt=False)
    envelope = json.loads(data)

    assert set(envelope) == ENVELOPE_FIELDS
    assert (envelope["encryption"], envelope["key_fingerprint"]) == ("none", "")
    metadata = json.dumps({k: v for k, v in envelope.items() if k != "payload"})
    payload = json.dumps(envelope["payload"], ensure_ascii=False)
    for text in (PROMPT, ANSWER, "be terse"):
        assert text not in metadata
        assert text in payload
        assert data.count(text.encode()) == payload.count(text)
    assert SECRET.encode() not in data  # credentials never reach the file
    assert envelope["payload"]["request"] == request.normalized
    assert envelope["payload"]["response"]["text"] == ANSWER
    meta = decode_envelope(data).meta
    assert (meta.provider, meta.model_id, meta.key) == (PROVIDER, "gpt-4o", request.key)
    assert data.index(b'"expires_at"') < data.index(b'"payload"')
