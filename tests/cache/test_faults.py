"""The cache under faults: damaged or foreign entries, missing keys, broken disks, modes, TTL,
other processes changing entries, and the size limit.

Everything runs against a real directory under ``tmp_path``; monkeypatch only injects faults
(a full disk, a fixed clock).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import spark.cache.bound
import spark.cache.manager
import spark.cache.stores.maintenance
from spark.cache import CacheConfig, CacheManager, generate_key
from spark.cache.bound import BoundCache, CacheRequest
from spark.cache.codec import decode_envelope, open_payload
from spark.cache.crypto import fingerprint
from spark.errors import CacheMissError, DecryptionError, EncryptionKeyError

PROVIDER = "openai"
MODEL = "gpt-4o"
CACHE_OP = Path(__file__).parent / "_procs" / "cache_op.py"
T0 = 1_700_000_000.0


# -- helpers ----------------------------------------------------------------------------------


class Provider:
    """The provider side of ``get_or_call``: counts calls and returns a fixed answer."""

    def __init__(self, answer: str = "fresh answer", **extra: Any) -> None:
        self.calls = 0
        self.response = {"text": answer, "cost_usd": 0.001, **extra}

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return dict(self.response)


class Clock:
    """A fixed ``time.time`` for the cache modules (the fault: time jumps when we say so)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.time_ns = time.time_ns
        self.monotonic = time.monotonic

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(T0)
    for module in (spark.cache.bound, spark.cache.manager, spark.cache.stores.maintenance):
        monkeypatch.setattr(module, "time", fake)
    return fake


def make_config(tmp_path: Path, **changes: Any) -> CacheConfig:
    changes.setdefault("ttl_seconds", 60)
    changes.setdefault("cache_dir", tmp_path / "c")
    changes.setdefault("enabled", True)
    return CacheConfig(**changes)


def ask(bound: BoundCache, prompt: str, model: str = MODEL) -> CacheRequest:
    return bound.chat_request(PROVIDER, model, [{"role": "user", "content": prompt}])


def seed(config: CacheConfig, prompt: str, answer: str, model: str = MODEL) -> str:
    """Write an entry through a manager of its own (as another process would); its path."""
    config = replace(config, enabled=True, mode="read_write")
    manager = CacheManager(config.resolved_dir, config)
    bound = manager.bind(config)
    request = ask(bound, prompt, model)
    assert bound.save(request, {"text": answer, "cost_usd": 0.002})
    return manager.store.location(PROVIDER, model, request.key)


def reader(config: CacheConfig) -> tuple[CacheManager, BoundCache]:
    manager = CacheManager.get_instance(config.resolved_dir, config)
    return manager, manager.bind(config)


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "spark.cache" and r.levelno >= logging.WARNING
    ]


def files_under(root: Path, *, bookkeeping: bool = True) -> list[Path]:
    """Every file under ``root``; without ``bookkeeping``, not the ``.gitignore`` and the counts
    records a writer keeps beside its entries (docs/caching.md, "Statistics")."""
    found = sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
    if bookkeeping:
        return found
    tops = (p.relative_to(root).parts[0] for p in found)
    return [
        p
        for p, top in zip(found, tops, strict=True)
        if top != ".gitignore" and not top.startswith(".spark-")
    ]


def answer_on_disk(path: str | Path, config: CacheConfig) -> str:
    """The answer a cold manager reads from ``path``'s entry."""
    manager = CacheManager(config.resolved_dir, config)
    bound = manager.bind(config)
    envelope = decode_envelope(Path(path).read_bytes())
    meta = envelope.meta
    stored_request = open_payload(envelope, bound.keyring)["request"]
    request = CacheRequest(meta.provider, meta.model_id, meta.key, stored_request)
    payload = bound.lookup(request)
    assert payload is not None
    return str(payload["text"])


def file_state(path: str | Path) -> tuple[bytes, int]:
    return Path(path).read_bytes(), os.stat(path).st_mtime_ns


def tree_state(root: Path) -> dict[Path, tuple[bytes, int]]:
    """Every file under ``root`` (bookkeeping included) with its bytes and modification time."""
    return {path: file_state(path) for path in files_under(root)}


# -- damaged entries --------------------------------------------------------------------------


def _damage(path: Path, kind: str, other: Path) -> None:
    data = path.read_bytes()
    if kind == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff{{not json" * 20)
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "flipped_token":
        envelope = json.loads(data)
        token = envelope["payload"]
        middle = len(token) // 2
        flipped = "A" if token[middle] != "A" else "B"
        envelope["payload"] = token[:middle] + flipped + token[middle + 1 :]
        path.write_bytes(json.dumps(envelope, separators=(",", ":")).encode())
    elif kind == "key_edited":
        envelope = json.loads(data)
        envelope["key"] = "0" * 64
        path.write_bytes(json.dumps(envelope, separators=(",", ":")).encode())
    elif kind == "other_entry":  # another request's entry, copied under this request's name
        shutil.copyfile(other, path)


DAMAGES = [
    ("garbage", False),
    ("garbage", True),
    ("truncated", False),
    ("truncated", True),
    ("empty", False),
    ("empty", True),
    ("flipped_token", True),
    ("key_edited", False),
    ("key_edited", True),
    ("other_entry", False),
    ("other_entry", True),
]


@pytest.mark.parametrize(("kind", "encrypt"), DAMAGES)
async def test_damaged_entry_is_a_counted_miss_then_replaced(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    encrypt: bool,
) -> None:
    if encrypt:
        monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = make_config(tmp_path, encrypt=encrypt)
    path = Path(seed(config, "what is 2+2?", "stored answer"))
    other = Path(seed(config, "some other question", "WRONG: another request's answer"))
    _damage(path, kind, other)
    manager, bound = reader(config)
    request = ask(bound, "what is 2+2?")
    provider = Provider("fresh answer")
    caplog.set_level(logging.WARNING, logger="spark.cache")

    assert bound.lookup(request) is None
    if kind in ("garbage", "truncated", "empty"):
        assert not manager.has_entry(request.key)
    result = await bound.get_or_call(request, provider)

    assert (result.response["text"], result.cached, provider.calls) == ("fresh answer", False, 1)
    stats = manager.get_stats()
    assert (stats["hits"], stats["misses"]) == (0, 1)
    assert stats["corrupt_entries_seen"] >= 1
    assert len(cache_warnings(caplog)) == 1
    # the bad file was replaced by a good entry that a cold reader (and this one) hits
    assert decode_envelope(path.read_bytes()).meta.key == request.key
    assert answer_on_disk(path, config) == "fresh answer"
    manager.memory.clear()
    again = await bound.get_or_call(request, Provider("must not be called"))
    assert (again.response["text"], again.cached) == ("fresh answer", True)
    assert len(cache_warnings(caplog)) == 1


@pytest.mark.parametrize("payload", [{"request": {}}, {"request": {}, "response": "text only"}])
async def test_entry_without_response_object_is_a_miss(
    tmp_path: Path, payload: dict[str, Any]
) -> None:
    config = make_config(tmp_path)
    path = Path(seed(config, "q", "stored"))
    envelope = json.loads(path.read_bytes())
    envelope["payload"] = payload
    path.write_text(json.dumps(envelope))
    manager, bound = reader(config)

    result = await bound.get_or_call(ask(bound, "q"), Provider("fresh answer"))

    assert (result.response["text"], result.cached) == ("fresh answer", False)
    assert manager.get_stats()["corrupt_entries_seen"] >= 1


async def test_encrypted_entry_moved_to_another_key_is_never_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    config = make_config(tmp_path, encrypt=True)
    source = Path(seed(config, "may I deploy on friday?", "WRONG: yes"))
    manager, bound = reader(config)
    target = ask(bound, "what is 2+2?")
    source_key = decode_envelope(source.read_bytes()).meta.key
    forged = source.read_bytes().replace(source_key.encode(), target.key.encode())
    Path(manager.store.location(PROVIDER, MODEL, target.key)).write_bytes(forged)

    result = await bound.get_or_call(target, Provider("4"))

    assert result.response["text"] == "4"


# -- keys -------------------------------------------------------------------------------------


async def test_entry_under_a_key_we_do_not_hold_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old_key = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", old_key)
    config = make_config(tmp_path, encrypt=True)
    first = seed(config, "first", "sealed with the old key")
    seed(config, "second", "also sealed with the old key")
    before = file_state(first)
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    manager, bound = reader(config)
    caplog.set_level(logging.WARNING, logger="spark.cache")

    for _ in range(3):
        assert bound.lookup(ask(bound, "first")) is None
    assert bound.lookup(ask(bound, "second")) is None
    read_only = manager.bind(replace(config, mode="read_only"))
    provider = Provider()
    result = await read_only.get_or_call(ask(bound, "first"), provider)

    assert (result.response["text"], result.cached, provider.calls) == ("fresh answer", False, 1)
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1
    assert fingerprint(old_key) in warnings[0]
    stats = manager.get_stats()
    assert (stats["hits"], stats["misses"]) == (0, 1)
    assert stats["corrupt_entries_seen"] >= 5
    assert file_state(first) == before


async def test_replay_with_a_key_we_do_not_hold_raises_decryption_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", old_key)
    config = make_config(tmp_path, encrypt=True)
    seed(config, "first", "sealed with the old key")
    monkeypatch.setenv("SPARK_CACHE_KEY", generate_key())
    _, bound = reader(replace(config, mode="replay"))
    provider = Provider()

    with pytest.raises(DecryptionError) as raised:
        await bound.get_or_call(ask(bound, "first"), provider)

    assert provider.calls == 0
    assert raised.value.fingerprint == fingerprint(old_key)
    assert "SPARK_CACHE_KEY" in str(raised.value)


async def test_key_rotation_reads_old_entries_and_writes_with_the_new_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_a, key_b = generate_key(), generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", key_a)
    config = make_config(tmp_path, encrypt=True)
    old_path = seed(config, "old question", "old answer")
    monkeypatch.setenv("SPARK_CACHE_KEY", f"{key_b},{key_a}")
    manager, bound = reader(config)

    hit = await bound.get_or_call(ask(bound, "old question"), Provider("must not be called"))
    new = await bound.get_or_call(ask(bound, "new question"), Provider("new answer"))

    assert (hit.response["text"], hit.cached) == ("old answer", True)
    assert (new.response["text"], new.cached) == ("new answer", False)
    new_path = manager.store.location(PROVIDER, MODEL, new.key)
    new_meta = decode_envelope(Path(new_path).read_bytes()).meta
    old_meta = decode_envelope(Path(old_path).read_bytes()).meta
    assert (new_meta.encryption, new_meta.key_fingerprint) == ("fernet", fingerprint(key_b))
    assert old_meta.key_fingerprint == fingerprint(key_a)  # a read never re-encrypts
    # the new entry really is sealed with B: a reader holding only A cannot open it
    monkeypatch.setenv("SPARK_CACHE_KEY", key_a)
    only_a = CacheManager(config.resolved_dir, config).bind(config)
    assert only_a.lookup(ask(only_a, "new question")) is None
    assert only_a.lookup(ask(only_a, "old question")) is not None


def test_encryption_without_a_key_names_the_variable_and_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "cache.key"
    config = make_config(tmp_path, encrypt=True, key_file=key_file)
    manager = CacheManager.get_instance(config.resolved_dir, config)

    with pytest.raises(EncryptionKeyError) as raised:
        manager.bind(config)

    assert "SPARK_CACHE_KEY" in str(raised.value)
    assert str(key_file) in str(raised.value)
    assert not key_file.exists()  # never a silently generated key
    with pytest.raises(EncryptionKeyError, match="TEAM_CACHE_KEY"):
        manager.bind(replace(config, key_env="TEAM_CACHE_KEY"))


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "cache.key"
    key_file.write_text(generate_key() + "\n")
    key_file.chmod(0o644)
    config = make_config(tmp_path, encrypt=True, key_file=key_file)

    with pytest.raises(EncryptionKeyError) as raised:
        CacheManager.get_instance(config.resolved_dir, config).bind(config)

    assert f"chmod 600 {key_file}" in str(raised.value)


async def test_private_key_file_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    primary, older = generate_key(), generate_key()
    key_file = tmp_path / "cache.key"
    key_file.write_text(f"# spark cache keys\n{primary}\n\n{older}\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("SPARK_CACHE_KEY", older)
    seed(make_config(tmp_path, encrypt=True), "older question", "older answer")
    monkeypatch.delenv("SPARK_CACHE_KEY")
    config = make_config(tmp_path, encrypt=True, key_file=key_file)
    manager, bound = reader(config)

    old = await bound.get_or_call(ask(bound, "older question"), Provider("must not be called"))
    new = await bound.get_or_call(ask(bound, "new question"), Provider("new answer"))

    assert (old.response["text"], old.cached) == ("older answer", True)
    envelope = decode_envelope(Path(manager.store.location(PROVIDER, MODEL, new.key)).read_bytes())
    assert envelope.meta.key_fingerprint == fingerprint(primary)
    assert b"new answer" not in envelope.body


# -- broken disks -----------------------------------------------------------------------------


@pytest.mark.parametrize("blocked", ["cache_dir_is_a_file", "parent_is_a_file"])
async def test_unusable_cache_directory_still_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, blocked: str
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    cache_dir = blocker if blocked == "cache_dir_is_a_file" else blocker / "cache"
    config = make_config(tmp_path, cache_dir=cache_dir)
    manager, bound = reader(config)
    provider = Provider()
    caplog.set_level(logging.WARNING, logger="spark.cache")

    first = await bound.get_or_call(ask(bound, "q"), provider)
    second = await bound.get_or_call(ask(bound, "q"), provider)

    assert (first.response["text"], first.cached) == ("fresh answer", False)
    assert (second.response["text"], second.cached) == ("fresh answer", False)
    assert provider.calls == 2
    (warning,) = cache_warnings(caplog)
    if blocked == "cache_dir_is_a_file":
        assert f"the cache directory is a file, not a directory: '{blocker}'" in warning
    assert blocker.read_text() == "a file, not a directory"
    assert manager.get_stats()["total_entries"] == 0


class _FullDiskFile:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __enter__(self) -> _FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def _fill_disk(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    if where == "replace":

        def full_replace(src: str, dst: str, **_dir_fds: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "replace", full_replace)
    else:
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FullDiskFile(real_fdopen(*a, **k)))


@pytest.mark.parametrize("where", ["write", "replace"])
async def test_disk_full_answers_warns_once_and_leaves_no_temp_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    where: str,
) -> None:
    config = make_config(tmp_path)
    manager, bound = reader(config)
    caplog.set_level(logging.WARNING, logger="spark.cache")

    with monkeypatch.context() as faults:
        _fill_disk(faults, where)
        first = await bound.get_or_call(ask(bound, "q1"), Provider("one"))
        second = await bound.get_or_call(ask(bound, "q2"), Provider("two"))

    assert (first.response["text"], second.response["text"]) == ("one", "two")
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1
    assert "No space left on device" in warnings[0]
    assert files_under(config.resolved_dir, bookkeeping=False) == []  # no entry, no stray temp file
    # space is back: the next miss is stored again
    third = await bound.get_or_call(ask(bound, "q1"), Provider("one again"))
    assert third.cached is False
    assert answer_on_disk(manager.store.location(PROVIDER, MODEL, third.key), config) == (
        "one again"
    )


async def test_missing_cache_directory_is_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, cache_dir=tmp_path / "not" / "there" / "yet")
    _, bound = reader(config)
    caplog.set_level(logging.WARNING, logger="spark.cache")

    first = await bound.get_or_call(ask(bound, "q"), Provider())
    second = await bound.get_or_call(ask(bound, "q"), Provider("must not be called"))

    assert (first.cached, second.cached) == (False, True)
    assert second.response["text"] == "fresh answer"
    assert len(files_under(config.resolved_dir, bookkeeping=False)) == 1
    assert cache_warnings(caplog) == []


async def test_cache_directory_deleted_under_a_running_manager(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path)
    _, bound = reader(config)
    caplog.set_level(logging.WARNING, logger="spark.cache")
    await bound.get_or_call(ask(bound, "q"), Provider("before"))
    shutil.rmtree(config.resolved_dir)

    assert bound.lookup(ask(bound, "q")) is None  # not the remembered answer
    result = await bound.get_or_call(ask(bound, "q"), Provider("after"))

    assert (result.response["text"], result.cached) == ("after", False)
    assert answer_on_disk(files_under(config.resolved_dir, bookkeeping=False)[0], config) == "after"
    assert cache_warnings(caplog) == []


# -- modes ------------------------------------------------------------------------------------


async def test_read_only_reads_but_never_writes(tmp_path: Path) -> None:
    config = make_config(tmp_path, mode="read_only")
    stored = seed(config, "known", "stored answer")
    before = file_state(stored)
    seeded = tree_state(config.resolved_dir)
    _, bound = reader(config)

    hit = await bound.get_or_call(ask(bound, "known"), Provider("must not be called"))
    provider = Provider()
    miss = await bound.get_or_call(ask(bound, "unknown"), provider)

    assert (hit.response["text"], hit.cached) == ("stored answer", True)
    assert (miss.response["text"], miss.cached, provider.calls) == ("fresh answer", False, 1)
    assert files_under(config.resolved_dir, bookkeeping=False) == [Path(stored)]
    assert file_state(stored) == before
    assert tree_state(config.resolved_dir) == seeded  # nor any bookkeeping file
    assert bound.save(ask(bound, "unknown"), {"text": "x"}) is False


async def test_refresh_never_reads_and_overwrites(tmp_path: Path) -> None:
    config = make_config(tmp_path, mode="refresh")
    stored = seed(config, "known", "old answer")
    _, bound = reader(config)
    provider = Provider("new answer")

    result = await bound.get_or_call(ask(bound, "known"), provider)

    assert (result.response["text"], result.cached, provider.calls) == ("new answer", False, 1)
    assert answer_on_disk(stored, replace(config, mode="read_write")) == "new answer"
    again = await bound.get_or_call(ask(bound, "known"), provider)
    assert (again.cached, provider.calls) == (False, 2)


async def test_replay_never_calls_the_provider(tmp_path: Path) -> None:
    config = make_config(tmp_path, mode="replay")
    seed(config, "known", "recorded answer")
    manager, bound = reader(config)
    provider = Provider()

    hit = await bound.get_or_call(ask(bound, "known"), provider)
    with pytest.raises(CacheMissError) as raised:
        await bound.get_or_call(ask(bound, "unknown"), provider)

    assert (hit.response["text"], hit.cached) == ("recorded answer", True)
    assert provider.calls == 0
    assert raised.value.key == ask(bound, "unknown").key
    assert f"{PROVIDER}/{MODEL}" in str(raised.value)
    assert len(files_under(config.resolved_dir, bookkeeping=False)) == 1
    stats = manager.get_stats()
    assert (stats["hits"], stats["misses"]) == (1, 1)


async def test_disabled_cache_neither_reads_nor_writes(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    stored = seed(config, "known", "stored answer")
    before = file_state(stored)
    seeded = tree_state(config.resolved_dir)
    _, bound = reader(replace(config, enabled=False))
    provider = Provider()

    known = await bound.get_or_call(ask(bound, "known"), provider)
    unknown = await bound.get_or_call(ask(bound, "unknown"), provider)

    assert (known.response["text"], known.cached) == ("fresh answer", False)
    assert unknown.cached is False
    assert provider.calls == 2
    assert files_under(config.resolved_dir, bookkeeping=False) == [Path(stored)]
    assert file_state(stored) == before
    assert tree_state(config.resolved_dir) == seeded  # nor any bookkeeping file


async def test_disabled_cache_does_not_create_its_directory(tmp_path: Path) -> None:
    config = make_config(tmp_path, enabled=False)
    bound = CacheManager.get_instance(config.resolved_dir, config).bind(config)

    await bound.get_or_call(ask(bound, "q"), Provider())

    assert not config.resolved_dir.exists()


async def test_provider_errors_reach_the_caller_and_are_not_cached(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    _, bound = reader(config)
    calls = 0

    async def failing() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        raise TimeoutError("provider timed out")

    with pytest.raises(TimeoutError, match="provider timed out"):
        await bound.get_or_call(ask(bound, "q"), failing)
    with pytest.raises(TimeoutError):
        await bound.get_or_call(ask(bound, "q"), failing)

    assert calls == 2
    assert files_under(config.resolved_dir) == []
    result = await bound.get_or_call(ask(bound, "q"), Provider())
    assert result.response["text"] == "fresh answer"


@pytest.mark.parametrize("empty", [{"text": ""}, {"text": "", "tool_calls": []}, {}])
async def test_empty_answers_are_not_cached(tmp_path: Path, empty: dict[str, Any]) -> None:
    config = make_config(tmp_path)
    _, bound = reader(config)
    calls = 0

    async def answer_nothing() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return dict(empty)

    first = await bound.get_or_call(ask(bound, "q"), answer_nothing)
    second = await bound.get_or_call(ask(bound, "q"), answer_nothing)

    assert (dict(first.response), first.cached, second.cached) == (empty, False, False)
    assert calls == 2
    assert files_under(config.resolved_dir) == []


# -- TTL --------------------------------------------------------------------------------------


async def test_writer_ttl_stamps_expires_at_and_the_entry_expires(
    tmp_path: Path, clock: Clock
) -> None:
    config = make_config(tmp_path, ttl_seconds=60)
    manager, bound = reader(config)
    request = ask(bound, "q")
    await bound.get_or_call(request, Provider("first"))
    path = manager.store.location(PROVIDER, MODEL, request.key)
    meta = decode_envelope(Path(path).read_bytes()).meta
    assert (meta.created_at, meta.expires_at) == (T0, T0 + 60)

    clock.now = T0 + 59.9
    assert bound.lookup(request) is not None
    assert manager.has_entry(request.key)
    clock.now = T0 + 60
    assert bound.lookup(request) is None  # from the memory tier
    assert CacheManager(config.resolved_dir, config).bind(config).lookup(request) is None
    assert not manager.has_entry(request.key)
    provider = Provider("second")
    result = await bound.get_or_call(request, provider)
    assert (result.response["text"], provider.calls) == ("second", 1)
    assert decode_envelope(Path(path).read_bytes()).meta.expires_at == T0 + 120


async def test_each_reader_applies_its_own_ttl(tmp_path: Path, clock: Clock) -> None:
    long_config = make_config(tmp_path, ttl_seconds=3600)
    short_config = replace(long_config, ttl_seconds=60)
    manager = CacheManager.get_instance(long_config.resolved_dir, long_config)
    long_reader, short_reader = manager.bind(long_config), manager.bind(short_config)
    never = manager.bind(replace(long_config, ttl_seconds=0))
    request = ask(long_reader, "q")
    assert long_reader.save(request, {"text": "written at T0"})

    clock.now = T0 + 120
    assert short_reader.lookup(request) is None
    assert long_reader.lookup(request) is not None
    assert short_reader.lookup(request) is None  # also when the memory tier holds it
    assert never.lookup(request) is not None
    manager.memory.clear()
    assert short_reader.lookup(request) is None  # and from disk
    assert long_reader.lookup(request) is not None
    clock.now = T0 + 3600  # the writer's expires_at binds every reader, even ttl 0
    assert never.lookup(request) is None
    short = await short_reader.get_or_call(request, Provider("refetched"))
    assert short.cached is False


async def test_ttl_zero_never_expires(tmp_path: Path, clock: Clock) -> None:
    config = make_config(tmp_path, ttl_seconds=0)
    manager, bound = reader(config)
    request = ask(bound, "q")
    await bound.get_or_call(request, Provider("kept forever"))
    path = manager.store.location(PROVIDER, MODEL, request.key)
    assert decode_envelope(Path(path).read_bytes()).meta.expires_at is None

    clock.now = T0 + 10 * 365 * 86400
    manager.memory.clear()
    hit = await bound.get_or_call(request, Provider("must not be called"))
    assert (hit.response["text"], hit.cached) == ("kept forever", True)
    assert manager.has_entry(request.key)
    assert manager.cleanup_expired() == 0
    assert Path(path).exists()


async def test_cleanup_expired_removes_and_counts_expired_entries(
    tmp_path: Path, clock: Clock
) -> None:
    short = make_config(tmp_path, ttl_seconds=60)
    manager = CacheManager.get_instance(short.resolved_dir, short)
    for ttl, prompts in ((60, ["a", "b", "c"]), (3600, ["d"]), (0, ["e"])):
        bound = manager.bind(replace(short, ttl_seconds=ttl))
        for prompt in prompts:
            assert bound.save(ask(bound, prompt), {"text": f"answer {prompt}"})

    clock.now = T0 + 120
    removed = manager.cleanup_expired()

    assert removed == 3
    assert manager.get_stats()["total_entries"] == 2
    assert manager.cleanup_expired() == 0
    long_reader = manager.bind(replace(short, ttl_seconds=0))
    assert long_reader.lookup(ask(long_reader, "d")) is not None
    assert long_reader.lookup(ask(long_reader, "a")) is None


def test_cleanup_expired_removes_entries_of_long_model_ids(tmp_path: Path, clock: Clock) -> None:
    config = make_config(tmp_path, ttl_seconds=60)
    manager, bound = reader(config)
    request = ask(bound, "q", model="m" * 1000)
    assert bound.save(request, {"text": "answer"})
    clock.now = T0 + 120
    assert not manager.has_entry(request.key)

    assert manager.cleanup_expired() == 1
    assert manager.get_stats()["total_entries"] == 0


# -- other processes --------------------------------------------------------------------------


def run_cache_op(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(CACHE_OP), *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("action", ["clear", "remove", "rewrite"])
async def test_memory_tier_sees_changes_made_by_another_process(
    tmp_path: Path, action: str
) -> None:
    config = make_config(tmp_path, ttl_seconds=3600)
    manager, bound = reader(config)
    request = ask(bound, "shared question")
    await bound.get_or_call(request, Provider("answer-one"))
    remembered = bound.lookup(request)
    assert remembered is not None
    assert remembered["text"] == "answer-one"
    assert len(manager.memory) == 1

    cache_dir = str(config.resolved_dir)
    if action == "rewrite":  # same length, so only the file identity tells them apart
        run_cache_op("save", cache_dir, "--prompt", "shared question", "--answer", "answer-two")
    else:
        run_cache_op(action, cache_dir, "--prompt", "shared question")

    seen = bound.lookup(request)
    if action == "rewrite":
        assert seen is not None
        assert seen["text"] == "answer-two"
        return
    assert seen is None
    provider = Provider("answer-three")
    result = await bound.get_or_call(request, provider)
    assert (result.response["text"], result.cached, provider.calls) == ("answer-three", False, 1)
    assert answer_on_disk(manager.store.location(PROVIDER, MODEL, request.key), config) == (
        "answer-three"
    )


# -- size limit -------------------------------------------------------------------------------

_BIG = "x" * 1500  # about 1.7 KB per entry on disk


async def test_an_entry_another_process_wrote_is_remembered_on_its_second_read(
    tmp_path: Path,
) -> None:
    """A key read once costs no copy in memory (a pass over many keys keeps the hot ones); read
    again, it is served from memory. Either way each hit's objects are the caller's own."""
    config = make_config(tmp_path, ttl_seconds=3600)
    seed(config, "read twice", "stored answer")
    manager, bound = reader(config)
    request = ask(bound, "read twice")

    first = await bound.get_or_call(request, Provider("never called"))
    assert first.cached
    assert first.response["text"] == "stored answer"
    assert len(manager.memory) == 0
    first.response["text"] = "changed by the caller"  # type: ignore[index]

    second = await bound.get_or_call(request, Provider("never called"))
    assert second.cached
    assert second.response["text"] == "stored answer"
    assert len(manager.memory) == 1
    second.response["usage"] = {"input_tokens": -1}  # type: ignore[index]

    third = bound.lookup(request)
    assert third == {"text": "stored answer", "cost_usd": 0.002}
    assert manager.counters.hits == 2
    assert manager.counters.misses == 0


def _write_many(bound: BoundCache, prompts: list[str]) -> None:
    for prompt in prompts:
        assert bound.save(ask(bound, prompt), {"text": f"{prompt}:{_BIG}"})


def _present(manager: CacheManager, bound: BoundCache, prompts: list[str]) -> set[str]:
    return {
        p
        for p in prompts
        if os.path.exists(manager.store.location(PROVIDER, MODEL, ask(bound, p).key))
    }


async def test_background_size_check_evicts_least_recently_used(tmp_path: Path) -> None:
    config = make_config(tmp_path, max_cache_size_mb=0.05)  # 52,428 bytes
    manager, bound = reader(config)
    first = [f"first {i}" for i in range(20)]
    _write_many(bound, first)
    manager.wait_for_maintenance()
    assert _present(manager, bound, first) == set(first)  # under the limit: nothing evicted
    recent = first[:5]
    manager.memory.clear()
    probe = manager.store.location(PROVIDER, MODEL, ask(bound, recent[0]).key)
    before = file_state(probe)
    an_hour_ago = time.time_ns() - 3600 * 10**9  # (a use is recorded once a minute at most)
    for prompt in first:
        path = manager.store.location(PROVIDER, MODEL, ask(bound, prompt).key)
        os.utime(path, ns=(an_hour_ago, os.stat(path).st_mtime_ns))
    atime_before = os.stat(probe).st_atime_ns
    for prompt in recent:
        assert bound.lookup(ask(bound, prompt)) is not None
    assert file_state(probe) == before  # a read never rewrites bytes or mtime
    assert os.stat(probe).st_atime_ns > atime_before
    time.sleep(0.02)

    later = [f"later {i}" for i in range(15)]
    _write_many(bound, later)
    manager.wait_for_maintenance()

    survivors = _present(manager, bound, first + later)
    assert len(survivors) < len(first) + len(later)
    assert set(recent) <= survivors
    assert set(later) <= survivors
    manager.enforce_size_limit()
    assert manager.get_stats()["total_size_bytes"] <= manager.max_bytes
    assert set(recent) <= _present(manager, bound, first + later)


async def test_size_limit_holds_when_writes_race_the_background_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, max_cache_size_mb=0.05)
    manager, bound = reader(config)
    scanned, resume = threading.Event(), threading.Event()
    real_scan = spark.cache.stores.maintenance.scan_stats

    def slow_scan(*args: Any, **kwargs: Any) -> Any:  # fault: the size scan stalls at its end
        found = real_scan(*args, **kwargs)
        if not scanned.is_set():
            scanned.set()
            resume.wait(5)
        return found

    monkeypatch.setattr(spark.cache.stores.maintenance, "scan_stats", slow_scan)
    _write_many(bound, ["first"])  # starts the background size check
    assert scanned.wait(5)
    _write_many(bound, [f"during {i}" for i in range(40)])  # about 78 KB, over the limit
    resume.set()
    manager.wait_for_maintenance()
    _write_many(bound, ["after"])
    manager.wait_for_maintenance()

    assert manager.get_stats()["total_size_bytes"] <= manager.max_bytes


async def test_enforce_size_limit_keeps_recently_read_entries(tmp_path: Path) -> None:
    roomy = make_config(tmp_path)
    writer = CacheManager(roomy.resolved_dir, roomy)
    writer_bound = writer.bind(roomy)
    prompts = [f"prompt {i}" for i in range(40)]
    _write_many(writer_bound, prompts)
    # a use history one second apart, oldest first (kernel write times may tie)
    long_ago = time.time_ns() - 10**12
    for age, prompt in enumerate(prompts):
        path = writer.store.location(PROVIDER, MODEL, ask(writer_bound, prompt).key)
        os.utime(path, ns=(long_ago + age * 10**9, os.stat(path).st_mtime_ns))
    tight = replace(roomy, max_cache_size_mb=0.05)
    manager = CacheManager(tight.resolved_dir, tight)
    bound = manager.bind(tight)
    recent = prompts[::8]  # spread over the write order: age alone would evict some of them
    for prompt in recent:
        hit = await bound.get_or_call(ask(bound, prompt), Provider("must not be called"))
        assert hit.cached

    evicted = manager.enforce_size_limit()

    survivors = _present(manager, bound, prompts)
    assert evicted == len(prompts) - len(survivors) > 0
    assert manager.get_stats()["total_size_bytes"] <= 0.9 * manager.max_bytes
    assert set(recent) <= survivors
    # the oldest unread entries went first
    unread = [p for p in prompts if p not in recent]
    gone = [p for p in unread if p not in survivors]
    assert gone == unread[: len(gone)]
