"""Disk maintenance at scale: the expiry hint (an entry file's modification time) that lets
cleanup skip live entries unread, and the folder summary that lets ``get_stats()`` skip folders
unchanged since the last scan. Both must never change an answer.

Real files under ``tmp_path``; other processes are real subprocesses; monkeypatch only counts
reads or injects faults (a clock in the past for writers, an unwritable directory).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import spark.cache.bound
import spark.cache.stores.folder_work as folder_work
import spark.cache.stores.maintenance as maintenance
from spark.cache import CacheConfig, CacheManager, admin, generate_key
from spark.cache.bound import BoundCache, CacheRequest
from spark.cache.codec import decode_envelope
from spark.cache.crypto import KeyRing
from spark.cache.stores.disk import DiskStore, unquote_model_id
from spark.cache.stores.hints import NEVER_NS
from spark.cache.stores.summary import SUMMARY_NAME, load_summary

PROVIDER = "openai"
MODEL = "gpt-4o"
CACHE_OP = Path(__file__).parent / "_procs" / "cache_op.py"
HOUR = 3600.0


class PastClock:
    """``time`` for the writer (``spark.cache.bound``): ``shift`` seconds ago."""

    def __init__(self, shift: float) -> None:
        self.shift = shift
        self.time_ns = time.time_ns
        self.monotonic = time.monotonic

    def time(self) -> float:
        return time.time() - self.shift


def make_config(tmp_path: Path, **changes: Any) -> CacheConfig:
    changes.setdefault("ttl_seconds", HOUR)
    changes.setdefault("cache_dir", tmp_path / "c")
    changes.setdefault("enabled", True)
    return CacheConfig(**changes)


def open_cache(tmp_path: Path, **changes: Any) -> tuple[CacheManager, BoundCache]:
    """A manager of ``make_config``'s directory and a binding of its rules (``bound.config``)."""
    config = make_config(tmp_path, **changes)
    manager = CacheManager(config.resolved_dir, config)
    return manager, manager.bind(config)


def ask(bound: BoundCache, prompt: str, model: str = MODEL) -> CacheRequest:
    return bound.chat_request(PROVIDER, model, [{"role": "user", "content": prompt}])


def save(bound: BoundCache, prompt: str, model: str = MODEL) -> str:
    request = ask(bound, prompt, model)
    assert bound.save(request, {"text": f"answer to {prompt}", "cost_usd": 0.001})
    bound.manager.wait_for_maintenance()  # (its size check may record a summary meanwhile)
    return bound.manager.store.location(PROVIDER, model, request.key)


def save_in_the_past(
    monkeypatch: pytest.MonkeyPatch, bound: BoundCache, prompt: str, ago: float
) -> str:
    """An entry written ``ago`` seconds ago (its ``expires_at`` is ``ago`` earlier too)."""
    with monkeypatch.context() as patch:
        patch.setattr(spark.cache.bound, "time", PastClock(ago))
        return save(bound, prompt)


class CountingReads:
    """Wraps maintenance's ``read_entry``: which locations cleanup read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: list[str] = []
        self._real = maintenance.read_entry
        monkeypatch.setattr(maintenance, "read_entry", self)

    def __call__(self, store: Any, location: str, *args: Any, **kwargs: Any) -> Any:
        self.read.append(location)
        return self._real(store, location, *args, **kwargs)


def recount(root: Path) -> dict[str, Any]:
    """Entries and bytes by provider and model, counted from the files themselves."""
    entries: dict[str, Counter[str]] = {}
    sizes: dict[str, Counter[str]] = {}
    for path in root.glob("*/*/*.json"):
        if path.name.startswith(".") or path.is_symlink():
            continue
        provider, model = path.parent.parent.name, unquote_model_id(path.parent.name)
        assert model is not None
        entries.setdefault(provider, Counter())[model] += 1
        sizes.setdefault(provider, Counter())[model] += path.lstat().st_size
    return {
        "total_entries": sum(sum(c.values()) for c in entries.values()),
        "total_size_bytes": sum(sum(c.values()) for c in sizes.values()),
        "entries_by_model": {p: dict(c) for p, c in entries.items()},
        "bytes_by_model": {p: dict(c) for p, c in sizes.items()},
    }


def stats_of(manager: CacheManager) -> dict[str, Any]:
    stats = manager.get_stats()
    return {name: stats[name] for name in recount(manager.cache_dir)}


def age_folders(root: Path, seconds: float = HOUR) -> None:
    """Make every model folder look last changed ``seconds`` ago (as one nobody wrote to
    lately), so that a scan may record it in the summary."""
    past = time.time_ns() - int(seconds * 1e9)
    for folder in root.glob("*/*/"):
        os.utime(folder, ns=(past, past))


def run_cache_op(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(CACHE_OP), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


# -- the expiry hint ------------------------------------------------------------------------


def test_a_written_entry_carries_its_expiry_as_modification_time(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    manager = CacheManager(config.resolved_dir, config)
    path = save(manager.bind(config), "q")

    expires_at = decode_envelope(Path(path).read_bytes()).meta.expires_at
    assert expires_at is not None
    mtime_ns = os.stat(path).st_mtime_ns
    assert expires_at * 1e9 - 10**6 < mtime_ns <= expires_at * 1e9  # (never later)


def test_cleanup_removes_exactly_the_expired_and_reads_no_live_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, bound = open_cache(tmp_path, ttl_seconds=60)
    config = bound.config
    expired = [save_in_the_past(monkeypatch, bound, f"old {i}", HOUR) for i in range(5)]
    live = [save(bound, f"new {i}") for i in range(5)]
    forever_bound = manager.bind(replace(config, ttl_seconds=0))
    forever = [save(forever_bound, f"forever {i}") for i in range(3)]
    reads = CountingReads(monkeypatch)

    assert manager.cleanup_expired() == 5

    assert sorted(reads.read) == sorted(expired)  # live ones were not even opened
    assert not any(os.path.exists(p) for p in expired)
    assert all(os.path.exists(p) for p in live + forever)
    assert manager.cleanup_expired() == 0


def test_a_passed_expiry_stamp_is_removed_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's stamp (a modification time set later than the status change) has passed:
    the entry it was stamped on has expired, and is removed without reading it."""
    manager, bound = open_cache(tmp_path, ttl_seconds=60)
    config = bound.config
    short = save(bound, "short")
    long = save(manager.bind(replace(config, ttl_seconds=HOUR)), "long")
    reads = CountingReads(monkeypatch)

    assert manager.store.cleanup_expired(now=time.time() + 120) == 1
    assert not os.path.exists(short)
    assert os.path.exists(long)
    assert manager.store.cleanup_expired(now=time.time() + 2 * HOUR) == 1
    assert reads.read == []


def test_a_file_whose_modification_time_is_before_its_status_change_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sure stamp (as after a copy, a checkout, or a use once the stamp had passed, which
    moves the status-change time past it): the metadata decides."""
    manager, bound = open_cache(tmp_path, ttl_seconds=60)
    paths = [save(bound, "a"), save(bound, "b")]
    for path in paths:
        os.utime(path, ns=(time.time_ns(), time.time_ns() - 10**9))  # (status change: now)
    reads = CountingReads(monkeypatch)

    assert manager.store.cleanup_expired(now=time.time() + 30) == 0  # live by the metadata
    assert manager.store.cleanup_expired(now=time.time() + 120) == 2
    assert sorted(reads.read) == sorted(paths + paths)


@pytest.mark.parametrize("live", [True, False])
def test_an_entry_whose_modification_time_was_reset_is_still_judged_by_its_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live: bool
) -> None:
    """A ``git checkout`` or ``cp`` gives a file the time it was made: cleanup reads it."""
    manager, bound = open_cache(tmp_path, ttl_seconds=60)
    path = save(bound, "q") if live else save_in_the_past(monkeypatch, bound, "q", HOUR)
    copy = tmp_path / "copy.json"
    shutil.copyfile(path, copy)  # (no metadata copied: the modification time is now)
    os.replace(copy, path)
    reads = CountingReads(monkeypatch)

    assert manager.cleanup_expired() == (0 if live else 1)
    assert reads.read == [path]
    assert os.path.exists(path) == live


async def test_a_future_hint_on_an_expired_entry_never_makes_it_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone sets an expired entry's modification time into the future: the hit path judges
    by the metadata (a miss), and cleanup keeps the file until that time has passed."""
    manager, bound = open_cache(tmp_path, ttl_seconds=60)
    config = bound.config
    path = save_in_the_past(monkeypatch, bound, "q", HOUR)
    future = time.time_ns() + int(1e9 * 2 * HOUR)
    os.utime(path, ns=(future, future))
    calls = []

    async def provider() -> dict[str, Any]:
        calls.append(1)
        return {"text": "fresh answer"}

    result = (
        await CacheManager(config.resolved_dir, config)
        .bind(config)
        .get_or_call(ask(bound, "q"), provider)
    )

    assert (result.response["text"], result.cached, calls) == ("fresh answer", False, [1])
    # (that miss wrote a fresh entry over it; put the tampered one back to see what cleanup does)
    manager.store.write(path, Path(path).read_bytes())  # a live entry again: kept
    assert manager.cleanup_expired() == 0
    stale = save_in_the_past(monkeypatch, bound, "q", HOUR)
    os.utime(stale, ns=(future, future))
    assert manager.store.cleanup_expired(now=time.time()) == 0  # the hint says "not yet"
    assert manager.store.cleanup_expired(now=future / 1e9 + 1) == 1  # then it is read


async def test_entries_that_never_expire_are_never_read_by_cleanup_and_keep_their_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, bound = open_cache(tmp_path, ttl_seconds=0)
    path = save(bound, "q")
    first = os.stat(path).st_mtime_ns
    assert first > NEVER_NS
    reads = CountingReads(monkeypatch)

    assert manager.store.cleanup_expired(now=time.time() + 100 * 365 * 86400) == 0
    assert reads.read == []
    manager.memory.clear()
    assert bound.lookup(ask(bound, "q")) is not None  # a read (a use: atime), mtime kept
    assert os.stat(path).st_mtime_ns == first
    save(bound, "q")  # a rewrite of the same entry: a new modification time
    assert os.stat(path).st_mtime_ns not in (first, 0)
    assert os.stat(path).st_mtime_ns > NEVER_NS


def test_a_filesystem_that_cannot_hold_the_hint_leaves_the_write_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, ttl_seconds=60)
    manager = CacheManager(config.resolved_dir, config)
    real = os.utime

    def refusing(target: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(target, int):
            raise OSError(1, "Operation not permitted")
        real(target, *args, **kwargs)

    monkeypatch.setattr(os, "utime", refusing)
    before = time.time_ns()
    path = save(manager.bind(config), "q")
    monkeypatch.undo()

    assert before - 10**9 <= os.stat(path).st_mtime_ns <= time.time_ns()
    assert manager.store.cleanup_expired(now=time.time() + 120) == 1  # read, and removed


def test_rotate_key_keeps_the_hint_and_the_access_time(tmp_path: Path) -> None:
    config = make_config(tmp_path, ttl_seconds=60)
    manager = CacheManager(config.resolved_dir, config)
    path = save(manager.bind(config), "q")
    used = time.time_ns() - 10**12
    os.utime(path, ns=(used, os.stat(path).st_mtime_ns))
    hint = os.stat(path).st_mtime_ns
    (entry,) = manager.store.walk()

    target = KeyRing.from_keys([generate_key()])
    outcome = admin.reencrypt_entry(manager.store, entry, target, None, encrypt_plaintext=True)

    assert outcome is admin.RotationOutcome.ENCRYPTED
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_atime_ns) == (hint, used)
    # (checked before reading it: with relatime, a read sets the access time of a file whose
    # modification time is later, which an expiry hint is)
    assert decode_envelope(Path(path).read_bytes()).meta.sealed
    assert manager.store.cleanup_expired(now=time.time()) == 0
    assert manager.store.cleanup_expired(now=time.time() + 120) == 1


def test_a_temp_file_with_a_future_hint_left_by_a_dead_writer_is_removed(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    manager = CacheManager(config.resolved_dir, config)
    path = save(manager.bind(config), "q")
    folder, name = os.path.split(path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    future = time.time_ns() + int(HOUR * 1e9)
    stray = Path(folder, f".{name[:-5]}.{int(dead.stdout)}.0badc0de.tmp")
    ours = Path(folder, f".{name[:-5]}.{os.getpid()}.0badc0de.tmp")  # a writer still running
    for temp in (stray, ours):
        temp.write_bytes(Path(path).read_bytes())
        os.utime(temp, ns=(future, future))

    manager.cleanup_expired()

    assert not stray.exists()
    assert ours.exists()
    assert os.path.exists(path)


# -- get_stats and the folder summary -------------------------------------------------------


def test_get_stats_reuses_unchanged_folders_and_rescans_changed_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, bound = open_cache(tmp_path)
    for model in ("gpt-4o", "gpt-4o-mini", "o1/preview"):
        for i in range(4):
            save(bound, f"{model} {i}", model)
    age_folders(manager.cache_dir)
    assert stats_of(manager) == recount(manager.cache_dir)
    assert len(load_summary(manager.cache_dir)) == 3
    listed: list[str] = []
    real_count = folder_work.count_folder

    def counting(folder: str) -> tuple[int, int]:
        listed.append(os.path.basename(folder))
        return real_count(folder)

    monkeypatch.setattr(folder_work, "count_folder", counting)
    assert stats_of(manager) == recount(manager.cache_dir)
    assert listed == []  # every folder unchanged: none listed again
    save(bound, "one more", "gpt-4o-mini")  # a write: its folder's counts record follows it
    assert stats_of(manager) == recount(manager.cache_dir)
    assert listed == []
    mini = manager.cache_dir / PROVIDER / "gpt-4o-mini"
    copied = next(mini.glob("*.json"))
    shutil.copy(copied, mini / f"{'0' * 64}.json")  # a change made by hand
    assert stats_of(manager) == recount(manager.cache_dir)
    assert listed == ["gpt-4o-mini"]


def test_a_folder_changed_moments_ago_is_not_recorded(tmp_path: Path) -> None:
    """Racy timestamps: a folder changed within two seconds of the scan might change again
    without its modification time moving, so its figures are not kept."""
    config = make_config(tmp_path)
    manager = CacheManager(config.resolved_dir, config)
    save(manager.bind(config), "q")
    assert stats_of(manager) == recount(manager.cache_dir)
    assert load_summary(manager.cache_dir) == {}


def other_process(action: str, cache_dir: Path, prompt: str = "") -> None:
    extra = ["--prompt", prompt, "--answer", f"from elsewhere {prompt}"] if prompt else []
    run_cache_op(action, str(cache_dir), *extra)


def test_get_stats_equals_a_recount_through_every_change(tmp_path: Path) -> None:
    manager, bound = open_cache(tmp_path)
    root = manager.cache_dir

    def check() -> None:
        assert stats_of(manager) == recount(root)
        age_folders(root)  # (so that the next scan records what it saw)
        assert stats_of(manager) == recount(root)
        assert stats_of(manager) == recount(root)  # (from the summary)

    for i in range(6):
        save(bound, f"q{i}")
    save(bound, "m", "gpt-4o-mini")
    check()
    save(bound, "q7")  # a write
    check()
    manager.remove_entry(ask(bound, "q0").key)  # a removal
    check()
    request = ask(bound, "q1")
    assert bound.save(request, {"text": "a much longer answer than before " * 20})  # overwrite
    check()
    other_process("save", root, "from another process")  # another process writes
    check()
    other_process("remove", root, "from another process")  # ... and removes
    check()
    manager.clear_model(PROVIDER, "gpt-4o-mini")  # a clear (its folder goes)
    check()
    other_process("clear", root)
    check()
    assert stats_of(manager)["total_entries"] == 0


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"format": 1, "digest": "x", "folders": []}',
        b'{"format": 1, "folders": {"openai/gpt-4o": {"entries": "many"}}}',
        "hostile",  # right digest, a negative count
        "relabelled",  # right digest and identity, another model's name
        "lying",  # right digest and identity, wrong counts, but the folder changed since
        "symlink",
    ],
)
def test_a_damaged_or_hostile_summary_never_changes_an_answer(
    tmp_path: Path, damage: bytes | str
) -> None:
    manager, bound = open_cache(tmp_path)
    for i in range(3):
        save(bound, f"q{i}")
    age_folders(manager.cache_dir)
    assert stats_of(manager) == recount(manager.cache_dir)
    summary = manager.cache_dir / SUMMARY_NAME
    body = json.loads(summary.read_text())
    if isinstance(damage, bytes):
        summary.write_bytes(damage)
    elif damage == "symlink":
        outside = tmp_path / "elsewhere.json"
        outside.write_text(summary.read_text())
        summary.unlink()
        summary.symlink_to(outside)
    else:
        (record,) = body["folders"].values()
        if damage == "relabelled":
            record["model_id"] = "gpt-5-ultra"
        else:
            record["entries"] = -5 if damage == "hostile" else 10**6
        summary.write_text(json.dumps(_signed(body)))
        if damage == "lying":
            save(bound, "q3")  # the folder changes: the record no longer describes it

    assert stats_of(manager) == recount(manager.cache_dir)
    assert manager.cleanup_expired() == 0


def _signed(body: dict[str, Any]) -> dict[str, Any]:
    from spark.cache.stores import summary as module

    return body | {"digest": module._digest(body["folders"])}


def test_a_cache_that_only_reads_keeps_no_summary(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    writer = CacheManager(config.resolved_dir, config)
    save(writer.bind(config), "q")
    writer.wait_for_maintenance()  # (the writer's own size check may keep a summary)
    age_folders(writer.cache_dir)
    before = sorted(p.name for p in writer.cache_dir.iterdir())
    for mode in ("replay", "read_only"):
        replay = replace(config, mode=mode)
        manager = CacheManager(replay.resolved_dir, replay)
        assert stats_of(manager) == recount(manager.cache_dir)
        manager.bind(replay)
        assert stats_of(manager) == recount(manager.cache_dir)
    assert sorted(p.name for p in writer.cache_dir.iterdir()) == before


def test_an_unwritable_directory_gives_the_same_stats_without_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(CI runs as root, where permissions do not stop a write: the fault is injected.)"""
    config = make_config(tmp_path)
    manager = CacheManager(config.resolved_dir, config)
    for i in range(3):
        save(manager.bind(config), f"q{i}")
    age_folders(manager.cache_dir)
    real_replace = os.replace

    def read_only(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(dst).endswith(SUMMARY_NAME):
            raise OSError(30, "Read-only file system")
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", read_only)
    assert stats_of(manager) == recount(manager.cache_dir)
    assert stats_of(manager) == recount(manager.cache_dir)
    assert not (manager.cache_dir / SUMMARY_NAME).exists()
    assert [p.name for p in manager.cache_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_cleanup_records_the_folders_it_left_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, bound = open_cache(tmp_path, ttl_seconds=60)
    save(bound, "kept", "gpt-4o")
    with monkeypatch.context() as patch:
        patch.setattr(spark.cache.bound, "time", PastClock(HOUR))
        save(bound, "expired", "gpt-4o-mini")
    age_folders(manager.cache_dir)

    assert manager.cleanup_expired() == 1

    assert set(load_summary(manager.cache_dir)) == {"openai/gpt-4o"}  # the other one changed
    assert stats_of(manager) == recount(manager.cache_dir)


# -- the two-tier store's local copies ------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Any:
    """A real ``redis-server`` (skipped without one, failed under ``CI``)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "redis"))
    from _redis_support import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not on PATH (CI must run the tiered test)")
        pytest.skip("redis-server is not on PATH")
    server = RedisServer(binary).start()
    yield server.url
    server.stop()


def test_the_local_copies_of_a_tiered_store_carry_the_hint(redis_url: str, tmp_path: Path) -> None:
    def machine(local: Path, ttl: float) -> BoundCache:
        config = CacheConfig(
            enabled=True,
            backend="redis",
            url=redis_url,
            prefix=f"hint-{tmp_path.name}",
            local_tier=True,
            cache_dir=local,
            ttl_seconds=ttl,
        )
        return CacheManager(config.resolved_dir, config).bind(config)

    writer = machine(tmp_path / "a", 60)
    written = save(writer, "q")
    forever = save(machine(tmp_path / "a", 0), "forever")
    reader = machine(tmp_path / "b", 60)
    assert reader.lookup(ask(reader, "q")) is not None  # a remote hit: copied to b
    assert reader.lookup(ask(reader, "forever")) is not None
    local = reader.manager.store.location(PROVIDER, MODEL, ask(reader, "q").key)

    expires_at = decode_envelope(Path(local).read_bytes()).meta.expires_at
    assert expires_at is not None
    assert os.stat(local).st_mtime_ns == os.stat(written).st_mtime_ns
    assert expires_at * 1e9 - 10**6 < os.stat(local).st_mtime_ns <= expires_at * 1e9
    assert (
        os.stat(
            reader.manager.store.location(PROVIDER, MODEL, ask(reader, "forever").key)
        ).st_mtime_ns
        > NEVER_NS
    )
    assert os.stat(forever).st_mtime_ns > NEVER_NS
    store = reader.manager.store
    assert isinstance(store.local, DiskStore)  # type: ignore[attr-defined]
    assert store.local.cleanup_expired(now=time.time()) == 0  # type: ignore[attr-defined]
    assert store.local.cleanup_expired(now=time.time() + 120) == 1  # type: ignore[attr-defined]


def test_get_stats_names_a_long_model_id_in_full_from_the_summary_or_an_entry(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    manager = CacheManager(config.resolved_dir, config)
    long_id = "org/" + "m" * 300
    save(manager.bind(config), "q", long_id)
    save(manager.bind(config), "q2", long_id)
    age_folders(manager.cache_dir)
    for _ in range(3):  # (a scan that records, then the summary, then the summary again)
        stats = manager.get_stats()
        assert stats["entries_by_model"] == {PROVIDER: {long_id: 2}}
    (record,) = load_summary(manager.cache_dir).values()
    assert record.model_id == long_id


# -- LRU eviction in bounded memory ---------------------------------------------------------


def test_eviction_removes_exactly_the_least_recently_used_that_cover_the_excess(
    tmp_path: Path,
) -> None:
    """The size check keeps only the oldest entries that cover the excess (no list of every
    entry), and removes exactly what sorting every entry by last use would have removed."""
    rng = random.Random(7)
    store = DiskStore(tmp_path / "c")
    used: dict[str, tuple[int, int]] = {}
    for model in ("m-1", "m-2", "m-3"):
        folder = tmp_path / "c" / PROVIDER / model
        folder.mkdir(parents=True)
        for _ in range(60):
            path = folder / f"{rng.getrandbits(256):064x}.json"
            size = rng.randint(100, 3000)
            path.write_bytes(b"x" * size)
            atime = 10**18 + rng.randrange(10**15)  # distinct times of last use
            os.utime(path, ns=(atime, time.time_ns()))
            used[str(path)] = (atime, size)
    total = sum(size for _, size in used.values())
    limit = int(total * 0.7)
    expected, left = set(), total
    for path, (_, size) in sorted(used.items(), key=lambda item: item[1]):
        if left <= int(limit * 0.9):
            break
        expected.add(path)
        left -= size

    evicted, remaining = store.evict(limit)

    gone = {path for path in used if not os.path.exists(path)}
    assert gone == expected
    assert (evicted, remaining) == (len(expected), left)
    assert store.evict(limit) == (0, left)  # under the limit now: nothing more goes


def test_a_summary_planted_as_a_symlink_is_neither_read_nor_written_through(
    tmp_path: Path,
) -> None:
    """An attacker's symlink where the summary belongs: the target outside the cache is never
    read (the figures are recounted) nor written (the summary replaces the link itself)."""
    manager, bound = open_cache(tmp_path)
    for i in range(3):
        save(bound, f"q{i}")
    age_folders(manager.cache_dir)
    outside = tmp_path / "outside.json"
    outside.write_text('{"format": 1, "folders": {}, "digest": "x"}')
    before = outside.read_bytes()
    (manager.cache_dir / SUMMARY_NAME).symlink_to(outside)

    assert stats_of(manager) == recount(manager.cache_dir)
    assert outside.read_bytes() == before
    assert not (manager.cache_dir / SUMMARY_NAME).is_symlink()  # replaced, not followed
    assert stats_of(manager) == recount(manager.cache_dir)
