"""The counts record of each model folder (``stores/counts.py``): kept by every change Spark makes
to the folder, so that ``get_stats()`` in a fresh process lists no folder whose chain of changes
is unbroken, and never gives a figure a recount would not.

Real files under ``tmp_path``; fresh processes and concurrent writers are real subprocesses
(``_procs/counts_child.py``); monkeypatch only injects faults or counts listings.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_maintenance_scale import PastClock, recount

import spark.cache.bound
from spark.cache import CacheConfig, CacheManager
from spark.cache.bound import BoundCache, CacheRequest
from spark.cache.stores import count_files, counts

PROVIDER = "openai"
MODEL = "gpt-4o"
HOUR = 3600.0
CHILD = Path(__file__).parent / "_procs" / "counts_child.py"
HAMMER = (sys.executable, str(CHILD), "hammer")
BLOCKED = (sys.executable, str(Path(__file__).parent / "_procs" / "cache_op.py"), "blocked-save")
FIGURES = ("total_entries", "total_size_bytes", "entries_by_model", "bytes_by_model")


def open_cache(root: Path, **changes: Any) -> tuple[CacheManager, BoundCache]:
    changes.setdefault("ttl_seconds", HOUR)
    config = CacheConfig(enabled=True, cache_dir=root, **changes)
    manager = CacheManager(config.resolved_dir, config)
    return manager, manager.bind(config)


def ask(bound: BoundCache, prompt: str, model: str = MODEL) -> CacheRequest:
    return bound.chat_request(PROVIDER, model, [{"role": "user", "content": prompt}])


def save(bound: BoundCache, prompt: str, model: str = MODEL, text: str = "") -> Path:
    request = ask(bound, prompt, model)
    assert bound.save(request, {"text": text or f"answer to {prompt}"})
    bound.manager.wait_for_maintenance()  # (its size check may re-base the record meanwhile)
    return Path(bound.manager.store.location(PROVIDER, model, request.key))


def stats_of(manager: CacheManager) -> dict[str, Any]:
    found = manager.get_stats()
    return {name: found[name] for name in FIGURES}


def child(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), *args], capture_output=True, text=True, timeout=timeout
    )


def fresh_stats(root: Path) -> tuple[dict[str, Any], list[str]]:
    """``get_stats()`` in a fresh process: its figures and the model folders it listed."""
    done = child("stats", str(root))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return report["stats"], report["listed"]


def record_of(root: Path, model: str = MODEL) -> count_files.Record | None:
    path = root / count_files.COUNTS_DIR / PROVIDER / model
    return count_files.decode(path.read_bytes()) if path.is_file() else None


def assert_exact_and_unlisted(manager: CacheManager) -> None:
    """Stats equal a recount, here and in a fresh process that lists no model folder."""
    root = manager.cache_dir
    manager.wait_for_maintenance()  # (a size check in the background may evict meanwhile)
    expected = recount(root)
    assert stats_of(manager) == expected
    figures, listed = fresh_stats(root)
    assert figures == expected
    assert listed == []


# -- the chain: every Spark change keeps the record -----------------------------------------


def test_every_change_keeps_the_counts_exact_and_unlisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    for i in range(8):
        save(bound, f"q{i}")
    save(bound, "m", "gpt-4o-mini")
    assert_exact_and_unlisted(manager)  # writes, and a folder made by Spark

    save(bound, "q1", text="a much longer answer than before " * 40)  # an overwrite
    save(bound, "q2", text="short")
    assert_exact_and_unlisted(manager)

    assert manager.remove_entry(ask(bound, "q0").key)  # a removal
    assert not manager.remove_entry(ask(bound, "q0").key)  # (already gone)
    assert_exact_and_unlisted(manager)

    with monkeypatch.context() as patch:  # entries that expired an hour ago
        patch.setattr(spark.cache.bound, "time", PastClock(2 * HOUR))
        for i in range(3):
            save(bound, f"old {i}")
    assert manager.cleanup_expired() == 3
    assert_exact_and_unlisted(manager)

    limit, manager.max_bytes = manager.max_bytes, stats_of(manager)["total_size_bytes"] // 2
    assert manager.enforce_size_limit() > 0  # eviction
    manager.max_bytes = limit
    assert_exact_and_unlisted(manager)

    save(bound, "m", "gpt-4o-mini")  # (eviction may have taken it)
    assert manager.clear_model(PROVIDER, "gpt-4o-mini") == 1  # a clear (its folder goes)
    assert not (root / PROVIDER / "gpt-4o-mini").exists()
    save(bound, "m again", "gpt-4o-mini")  # (made again by Spark)
    assert_exact_and_unlisted(manager)

    manager.clear_all()
    save(bound, "after the clear")
    assert_exact_and_unlisted(manager)
    assert stats_of(manager)["total_entries"] == 1


def test_the_record_holds_the_folder_counts(tmp_path: Path) -> None:
    root = tmp_path / "c"
    _, bound = open_cache(root)
    paths = [save(bound, f"q{i}") for i in range(5)]
    record = record_of(root)
    assert record is not None
    folder = paths[0].parent.lstat()
    assert (record.dev, record.ino, record.mtime_ns) == (
        folder.st_dev,
        folder.st_ino,
        folder.st_mtime_ns,
    )
    assert (record.entries, record.size) == (5, sum(p.lstat().st_size for p in paths))
    assert ".spark-*" in (root / ".gitignore").read_text().splitlines()  # (out of git)


def test_a_cache_made_by_an_older_spark_is_scanned_then_rebased(tmp_path: Path) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    for i in range(4):
        save(bound, f"q{i}")
    manager.wait_for_maintenance()
    shutil.rmtree(root / count_files.COUNTS_DIR)  # (no record: as before this version)
    figures, listed = fresh_stats(root)
    assert figures == recount(root)
    assert listed == [f"{PROVIDER}/{MODEL}"]
    age_folders(root)
    assert stats_of(manager) == recount(root)  # a settled scan re-bases the record
    (root / ".spark-summary.json").unlink()  # (so the record alone must answer)
    save(bound, "one more")
    assert_exact_and_unlisted(manager)


def age_folders(root: Path, seconds: float = HOUR) -> None:
    """Model folders last changed ``seconds`` ago, so that a scan may record them (a change by
    hand: it breaks the chain)."""
    past = time.time_ns() - int(seconds * 1e9)
    for folder in root.glob("[!.]*/*/"):
        os.utime(folder, ns=(past, past))


# -- several processes ---------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_writers_and_removers_keep_it_exact(tmp_path: Path) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    save(bound, "seed")  # (the folder exists, with its record)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    writers = 5
    procs = [
        subprocess.Popen(
            [
                *HAMMER,
                str(root),
                "--writer",
                str(n),
                "--barrier",
                str(barrier),
                "--duration",
                "1.5",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    deadline = time.monotonic() + 60
    while len(list(barrier.glob("ready-*"))) < writers and time.monotonic() < deadline:
        time.sleep(0.01)
    (barrier / "go").write_text(str(time.time() + 0.2))
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    assert all(r["saved"] > 0 for r in reports)
    assert sum(r["removed"] for r in reports) > 0
    assert list(manager.store.temp_files()) == []
    assert_exact_and_unlisted(manager)


def test_a_forked_child_locks_for_itself(tmp_path: Path) -> None:
    """A child inherits the parent's open record (and would share its lock): it opens its own."""
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    save(bound, "parent 0")
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 0
        try:
            _, child_bound = open_cache(root)
            for i in range(40):
                save(child_bound, f"child {i}")
        except BaseException:
            code = 1
        os._exit(code)
    for i in range(1, 40):
        save(bound, f"parent {i}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert_exact_and_unlisted(manager)
    assert stats_of(manager)["total_entries"] == 80


# -- changes Spark did not make --------------------------------------------------------------


@pytest.mark.parametrize("change", ["unlinked", "copied in", "folder replaced", "touched"])
def test_a_change_by_hand_is_counted_by_a_scan_that_rebases(tmp_path: Path, change: str) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    paths = [save(bound, f"q{i}") for i in range(4)]
    folder = paths[0].parent
    if change == "unlinked":
        paths[0].unlink()
    elif change == "copied in":
        shutil.copy(paths[1], folder / f"{'0' * 64}.json")
    elif change == "folder replaced":
        shutil.copytree(folder, tmp_path / "copy")
        shutil.rmtree(folder)
        (tmp_path / "copy").rename(folder)  # (the same files, another folder)
        (folder / paths[2].name).unlink()
    else:
        os.utime(folder)
    expected = recount(root)
    assert stats_of(manager) == expected
    figures, listed = fresh_stats(root)
    assert (figures, listed) == (expected, [f"{PROVIDER}/{MODEL}"])  # scanned, not trusted

    age_folders(root)  # a settled folder: the next scan re-bases its record
    assert stats_of(manager) == recount(root)
    record = record_of(root)
    assert record is not None
    assert record.describes(folder.lstat())
    (root / ".spark-summary.json").unlink()
    save(bound, "after")
    assert_exact_and_unlisted(manager)


def test_a_folder_changed_moments_ago_is_not_rebased(tmp_path: Path) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    paths = [save(bound, f"q{i}") for i in range(3)]
    paths[0].unlink()  # (by hand, just now: a second change could hide in the same tick)
    assert stats_of(manager) == recount(root)
    record = record_of(root)
    assert record is None or not record.describes(paths[0].parent.lstat())


# -- writers killed --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["die-between", "die-within"])
def test_a_writer_killed_leaves_the_counts_exact(tmp_path: Path, where: str) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    for i in range(3):
        save(bound, f"q{i}")
    done = child(where, str(root))
    assert done.returncode == -signal.SIGKILL, done.stderr
    temps = list(manager.store.temp_files())
    assert len(temps) == 1  # its temp file, never renamed
    expected = recount(root)
    assert stats_of(manager) == expected
    figures, listed = fresh_stats(root)
    assert figures == expected
    if where == "die-between":
        assert listed == []  # the temp's creation was recorded: the chain holds
    else:
        assert listed == [f"{PROVIDER}/{MODEL}"]  # killed mid-section: the record was let go
    assert manager.cleanup_expired() == 0  # (its writer is dead: the temp goes)
    assert list(manager.store.temp_files()) == []
    assert stats_of(manager) == recount(root)
    if where == "die-between":
        assert_exact_and_unlisted(manager)


def test_a_writer_stuck_in_its_section_does_not_stop_the_others(tmp_path: Path) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    save(bound, "q0")
    stuck = subprocess.Popen(
        [*BLOCKED, str(root), "--prompt", "stuck", "--answer", "never"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not list(manager.store.temp_files()) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # (inside os.replace, holding the lock)
        start = time.monotonic()
        for i in range(1, 20):
            save(bound, f"q{i}")
        assert time.monotonic() - start < 5  # one wait for the lock, then no more
        assert stats_of(manager) == recount(root)
    finally:
        stuck.kill()
        stuck.communicate(timeout=10)
    figures, _ = fresh_stats(root)
    assert figures == recount(root)


# -- hostile or unusable records -------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    ["garbage", "bad checksum", "torn", "huge", "symlink", "directory", "fifo", "dir symlink"],
)
def test_a_hostile_record_is_ignored_never_followed_nor_written_through(
    tmp_path: Path, damage: str
) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    for i in range(3):
        save(bound, f"q{i}")
    record = root / count_files.COUNTS_DIR / PROVIDER / MODEL
    outside = tmp_path / "elsewhere"
    good = record.read_bytes()
    if damage == "garbage":
        record.write_bytes(os.urandom(count_files.SIZE))
    elif damage == "bad checksum":
        lying = count_files.decode(good)
        assert lying is not None
        forged = bytearray(count_files.encode(lying._replace(entries=10**6)))
        forged[-4:] = good[-4:]
        record.write_bytes(bytes(forged))
    elif damage == "torn":
        record.write_bytes(good[:20])
    elif damage == "huge":
        with record.open("wb") as handle:
            handle.truncate(64 * 2**20)
    elif damage == "symlink":
        outside.write_bytes(count_files.encode(count_files.Record(1, 2, 3, 4, 5)))
        record.unlink()
        record.symlink_to(outside)
    elif damage == "directory":
        record.unlink()
        record.mkdir()
    elif damage == "fifo":
        record.unlink()
        os.mkfifo(record)
    else:
        (outside / PROVIDER).mkdir(parents=True)
        shutil.move(str(record.parent.parent), str(tmp_path / "moved"))
        (root / count_files.COUNTS_DIR).symlink_to(outside)
    before = _state(outside)

    manager, bound = open_cache(root)  # (a new process's store)
    for i in range(3, 6):
        save(bound, f"q{i}")
    assert manager.remove_entry(ask(bound, "q0").key)
    expected = recount(root)
    assert stats_of(manager) == expected
    figures, _ = fresh_stats(root)
    assert figures == expected
    assert _state(outside) == before  # nothing written through a link
    if damage == "huge":
        assert record.stat().st_size == 64 * 2**20  # (not Spark's record: left alone)
    if damage in ("directory", "fifo"):
        assert record.is_dir() if damage == "directory" else record.is_fifo()


def _state(path: Path) -> Any:
    if path.is_file():
        return path.read_bytes()
    if path.is_dir():
        return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
    return None


def test_a_counts_directory_that_cannot_be_made_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(CI runs as root, where permissions do not stop a write: the fault is injected.)"""
    real_mkdir = os.mkdir

    def read_only(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path) == count_files.COUNTS_DIR:
            raise OSError(errno.EROFS, "Read-only file system")
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    for i in range(4):
        save(bound, f"q{i}")
    assert manager.remove_entry(ask(bound, "q0").key)
    assert not (root / count_files.COUNTS_DIR).exists()
    assert stats_of(manager) == recount(root)


@pytest.mark.parametrize("fault", ["pwrite", "flock", "ftruncate and pwrite"])
def test_a_record_that_cannot_be_locked_or_written_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    root = tmp_path / "c"
    manager, bound = open_cache(root)
    save(bound, "q0")
    with monkeypatch.context() as patch:
        if fault == "flock":

            def no_locks(fd: int, operation: int) -> None:
                raise OSError(errno.ENOLCK, "No locks available")

            patch.setattr(count_files.fcntl, "flock", no_locks)
        else:

            def full(*args: Any) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            patch.setattr(counts.os, "pwrite", full)
            if fault != "pwrite":
                patch.setattr(counts.os, "ftruncate", full)
        for i in range(1, 5):
            save(bound, f"q{i}")
        assert manager.remove_entry(ask(bound, "q1").key)
        assert stats_of(manager) == recount(root)
    figures, _ = fresh_stats(root)
    assert figures == recount(root)
    assert stats_of(manager)["total_entries"] == 4


def test_a_cache_that_only_reads_makes_no_record(tmp_path: Path) -> None:
    root = tmp_path / "c"
    writer, bound = open_cache(root)
    save(bound, "q")
    writer.wait_for_maintenance()  # (the writer's own size check may re-base its record)
    shutil.rmtree(root / count_files.COUNTS_DIR)
    age_folders(root)
    for mode in ("replay", "read_only"):
        reader, _ = open_cache(root, mode=mode)
        assert stats_of(reader) == recount(root)
    assert not (root / count_files.COUNTS_DIR).exists()
