"""Maintenance under hostile conditions: folders created and removed by another process while
this one cleans up; temp files of writers that died; and every command and admin call on a
directory holding a zoo of hostile files (none aborts; verify names each bad file)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _fuzzlib import (
    DEEP_LIST,
    GPT,
    HUGE,
    FuzzCache,
    ProviderStub,
    Raw,
    Target,
    entry_path,
    injected_answer,
    names_path,
    plant,
    run_cli,
    seed_cache,
    verify_named,
    within,
)

from spark.cache import CacheConfig, CacheManager

Cli = Callable[..., Any]


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process that is still running (a writer that is not gone)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child.pid
    child.kill()
    child.wait()


# -- folders come and go ------------------------------------------------------------------------

_CHURN = textwrap.dedent(
    """
    import os, shutil, sys, time
    from pathlib import Path

    root, source, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    data = source.read_bytes()  # an expired entry: cleanup deletes the copies it finds
    key = source.stem
    end, loops = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for provider in ("openai", "gemini", "bedrock"):
            folder = root / provider / f"churn-{loops % 5}"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for index in range(3):
                    (folder / f"{index:064x}.json").write_bytes(data)
                (folder / f"{key}.json").write_bytes(data)
                (folder / f".{key}.{os.getpid()}.0123abcd.tmp").write_bytes(data[:10])
            except OSError:
                pass  # (our own race with the cleaner)
            if loops % 2:
                shutil.rmtree(folder, ignore_errors=True)
            if loops % 7 == 0:
                shutil.rmtree(root / provider, ignore_errors=True)
        loops += 1
    print(loops)
    """
)


async def test_cleanup_while_another_process_creates_and_removes_folders(
    plain_config: CacheConfig, spark_cli: Cli
) -> None:
    cache = await seed_cache("plain", plain_config, ["churn question"])
    source = cache.entries[0]
    expired = Target(cache, source).with_envelope(expires_at=1.0)
    source_file = plain_config.resolved_dir.parent / f"{source.request.key}.json"
    source_file.write_bytes(expired)
    root = plain_config.resolved_dir
    child = subprocess.Popen(
        [sys.executable, "-c", _CHURN, str(root), str(source_file), "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[str] = []
    runs = 0
    try:
        while child.poll() is None:
            runs += 1
            manager = CacheManager(root, plain_config)
            for name, call in (
                ("cleanup_expired", manager.cleanup_expired),
                ("get_stats", manager.get_stats),
                ("has_entry", lambda m=manager: m.has_entry(source.request.key)),
                ("enforce_size_limit", manager.enforce_size_limit),
            ):
                try:
                    call()
                except Exception as exc:  # the contract: 0 exceptions
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
            for command in (["cleanup"], ["ls", "--json"], ["stats", "--json"]):
                result, problems = run_cli("cache", *command, "--dir", str(root))
                errors += [f"spark cache {' '.join(command)}: {p}" for p in problems]
                if result.exit_code != 0:
                    errors.append(
                        f"spark cache {' '.join(command)} exited {result.exit_code}: {result.output}"
                    )
    finally:
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert int(out.strip()) > 20, "the other process hardly ran"
    assert runs >= 3, "this process hardly ran"
    assert not errors, f"{len(errors)} errors in {runs} runs, e.g.:\n" + "\n".join(errors[:10])


# -- temp files of writers that are gone --------------------------------------------------------


@pytest.mark.parametrize("how", ["spark cache cleanup", "CacheManager.cleanup_expired"])
async def test_no_temp_file_of_a_gone_writer_survives_cleanup(
    how: str, plain_config: CacheConfig, spark_cli: Cli, live_pid: int
) -> None:
    cache = await seed_cache("plain", plain_config, ["temp question 0", "temp question 1"])
    root, folder = cache.root, cache.entries[0].path.parent
    key = cache.entries[0].request.key
    dead = _dead_pid()
    ours_before = {e.path: e.pristine for e in cache.entries}
    gone = [
        folder / f".{key}.{dead}.0a1b2c3d.tmp",
        folder / f".{'e' * 64}.{dead}.ffff0000.tmp",
        root / f".gitignore.{dead}.12ab34cd.tmp",
        root / f".spark-last-run.json.{dead}.9f8e7d6c.tmp",
    ]
    alive = [
        folder / f".{key}.{live_pid}.0a1b2c3d.tmp",
        root / f".gitignore.{live_pid}.12ab34cd.tmp",
        root / f".spark-last-run.json.{live_pid}.9f8e7d6c.tmp",
    ]
    for path in gone + alive:
        path.write_bytes(b'{"format":2,"key":"half-written')

    if how == "spark cache cleanup":
        result = spark_cli("cache", "cleanup", "--dir", str(root))
        assert result.exit_code == 0, result.output
    else:
        CacheManager(root, plain_config).cleanup_expired()

    assert [p.name for p in gone if p.exists()] == []
    assert [p.name for p in alive if not p.exists()] == []  # its writer may still finish
    assert {p: p.read_bytes() for p in ours_before} == ours_before


# -- a zoo of hostile files ---------------------------------------------------------------------

ZOO_SIZE = 19


@pytest.fixture
async def zoo(
    plain_config: CacheConfig, foreign_config: CacheConfig, tmp_path: Path
) -> dict[str, Any]:
    """A plaintext cache: three valid entries, sixteen hostile ones at their own entry paths,
    debris that is not an entry, and a model folder linked to a folder outside."""
    prompts = [f"zoo question {n}" for n in range(ZOO_SIZE)]
    cache = await seed_cache("plain", plain_config, prompts)
    entries = cache.entries
    targets = [Target(cache, e) for e in entries]
    hostile: dict[str, Path] = {}

    def put(index: int, name: str, data: bytes) -> None:
        entries[index].path.write_bytes(data)
        hostile[name] = entries[index].path

    put(3, "truncated", entries[3].pristine[:80])
    put(4, "not JSON", b"\x89PNG\r\n\x1a\n\x00\xff{{not json" * 10)
    put(5, "empty", b"")
    put(6, "invalid UTF-8", entries[6].pristine.replace(b"zoo question", b"zoo \xff\xfeestion"))
    put(7, "2,000 deep", targets[7].with_envelope(created_at=DEEP_LIST))
    put(8, "NaN created_at", targets[8].with_envelope(created_at=Raw(b"NaN")))
    put(9, "401-digit format", targets[9].with_envelope(format=HUGE))
    put(10, 'created_at "1.2.3"', targets[10].with_envelope(created_at="1.2.3"))
    put(11, "list key_fingerprint", targets[11].with_envelope(key_fingerprint=["a", "b"]))
    payload = json.loads(json.dumps(targets[12].payload))
    payload["response"]["usage"] = "x"
    put(12, "usage is a string", targets[12].with_payload(payload))
    entries[13].path.unlink()
    os.mkfifo(entries[13].path)
    hostile["fifo"] = entries[13].path
    entries[14].path.unlink()
    entries[14].path.mkdir()
    hostile["directory"] = entries[14].path
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(entries[15].pristine)
    entries[15].path.unlink()
    entries[15].path.symlink_to(elsewhere)
    hostile["symlink"] = entries[15].path
    with entries[16].path.open("wb") as handle:
        handle.write(entries[16].pristine[:-1])
        handle.truncate(200 * 2**20)
    hostile["200 MB"] = entries[16].path
    foreign = await plant(
        foreign_config, entries[17].request, injected_answer(entries[17].request, "zoo")
    )
    put(17, "key not held", foreign)
    put(18, "another request's entry", entries[1].pristine)

    folder = entries[0].path.parent
    (folder / "README.txt").write_text("not an entry")
    (folder / "notakey.json").write_text("{}")
    (folder / ".hidden.json").write_text("{")
    (folder / f".{'a' * 64}.{_dead_pid()}.deadbeef.tmp").write_bytes(b"{")
    (cache.root / "openai" / "stray.json").write_text("{}")
    (cache.root / "gemini").mkdir()
    (cache.root / "bedrock").write_text("a file where a provider folder goes")
    outside = tmp_path / "outside"
    outside.mkdir()
    linked = entry_path(cache.root, "openai", "gpt-4o", entries[0].request.key)
    (outside / linked.name).write_bytes(entries[0].pristine)
    linked.parent.symlink_to(outside, target_is_directory=True)
    # a recorded run that used the valid entries, for prune --unused
    manager = CacheManager(cache.root, plain_config)
    for entry in entries[:3]:
        await manager.get_or_call(entry.request, ProviderStub(None), plain_config)
    manager.write_usage_record()
    return {
        "cache": cache,
        "hostile": hostile,
        "valid": entries[:3],
        "outside": outside,
        "linked": linked.parent,
        "elsewhere": elsewhere,
    }


def _regular_state(paths: dict[str, Path]) -> dict[str, bytes]:
    """The bytes of the hostile files that are regular files (the 200 MB one by its size)."""
    state = {}
    for name, path in paths.items():
        if path.is_file() and not path.is_symlink():
            state[name] = path.read_bytes()[:4096] + str(path.stat().st_size).encode()
    return state


async def test_every_command_survives_the_zoo_and_verify_names_each_bad_file(
    zoo: dict[str, Any], spark_cli: Cli
) -> None:
    cache: FuzzCache = zoo["cache"]
    hostile: dict[str, Path] = zoo["hostile"]
    where = ["--profile", "plain", "--dir", str(cache.root)]
    outside_before = {p.name: p.read_bytes() for p in zoo["outside"].iterdir()}
    elsewhere_before = zoo["elsewhere"].read_bytes()

    as_json = spark_cli("cache", "verify", *where, "--json")
    as_text = spark_cli("cache", "verify", *where)

    assert as_json.exit_code == as_text.exit_code == 1
    named = verify_named(as_json)
    missing = {name: str(p) for name, p in hostile.items() if p.resolve() not in named}
    assert not missing, f"verify did not name: {missing}\n{as_json.stdout}"
    for entry in zoo["valid"]:
        assert entry.path.resolve() not in named
    for name, path in hostile.items():
        assert names_path(as_text.stdout, path), f"{name} not in the verify listing"
    assert names_path(as_text.stdout, zoo["linked"]), "the symlinked model folder is not reported"

    # the other commands skip what they cannot use and finish
    state = _regular_state(hostile)
    for command in (
        ["ls"],
        ["ls", "--json"],
        ["ls", "--provider", "openai", "--model", GPT],
        ["stats"],
        ["stats", "--json"],
        ["cleanup"],
        ["cleanup", "--json"],
    ):
        result = spark_cli("cache", *command, *where)
        assert result.exit_code == 0, f"spark cache {' '.join(command)}: {result.output}"
    for entry in zoo["valid"]:
        shown = spark_cli("cache", "show", entry.request.key, *where, "--json")
        assert shown.exit_code == 0
    for path in hostile.values():
        spark_cli("cache", "show", path.stem, *where)  # exit 0 or 1, never a crash
        spark_cli("cache", "show", path.stem[:10], *where, "--json")
    request = json.dumps({"provider": "openai", "model_id": GPT, "messages": "zoo question 4"})
    spark_cli("cache", "explain", *where, request)
    spark_cli("cache", "explain", *where, "--json", request)
    assert _regular_state(hostile) == state, "cleanup or show changed a file it cannot read"

    # the admin calls of the engine
    manager = CacheManager(cache.root, cache.config)
    stats = manager.get_stats()
    assert stats["total_entries"] >= 3
    for entry in zoo["valid"]:
        assert manager.has_entry(entry.request.key)
    for path in hostile.values():
        assert manager.has_entry(path.stem) in (False, True)  # (never raises, never hangs)
    assert manager.cleanup_expired() == 0
    assert _regular_state(hostile) == state

    # the writing commands last: rotate-key (encrypts what it can read), prune, clear; each
    # skips what it cannot use (rotate-key reports those and exits 1: a clean failure)
    problems = []
    rotated = spark_cli(
        "cache", "rotate-key", "--profile", "sealed", "--dir", str(cache.root), "--yes"
    )
    for path in hostile.values():
        if not names_path(rotated.stdout + rotated.stderr, path) and path.exists():
            problems.append(f"rotate-key did not report {path.name}")
    for command in (["prune", "--unused", "--yes"], ["clear", "--yes"]):
        result = spark_cli("cache", *command, *where)
        if result.exit_code != 0:
            problems.append(f"spark cache {' '.join(command)} aborted: {result.output.strip()}")
    for name, call in (("prune_unused", manager.prune_unused), ("clear_all", manager.clear_all)):
        try:
            call()
        except Exception as exc:
            problems.append(f"CacheManager.{name}() raised {type(exc).__name__}: {exc}")
    assert {p.name: p.read_bytes() for p in zoo["outside"].iterdir()} == outside_before
    assert zoo["elsewhere"].read_bytes() == elsewhere_before
    assert not problems, "\n".join(problems)


def _installed_spark() -> str:
    candidate = Path(sys.executable).with_name("spark")
    found = str(candidate) if candidate.exists() else shutil.which("spark")
    assert found, "the spark command is not installed"
    return found


async def test_the_installed_spark_command_verifies_the_zoo(
    zoo: dict[str, Any], spark_toml: Path, tmp_path: Path
) -> None:
    cache: FuzzCache = zoo["cache"]
    spark = _installed_spark()
    base = [spark, "--config", str(spark_toml), "cache"]
    where = ["--profile", "plain", "--dir", str(cache.root)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args, *where],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )

    started = time.monotonic()
    verify = run("verify")
    listed = run("ls")
    stats = run("stats", "--json")
    cleanup = run("cleanup")

    assert time.monotonic() - started < 60
    for done in (verify, listed, stats, cleanup):
        assert "Traceback" not in done.stdout + done.stderr
        assert "a bug in Spark" not in done.stdout + done.stderr
    assert verify.returncode == 1
    for name, path in zoo["hostile"].items():
        assert (
            names_path(verify.stdout, path) or str(path.relative_to(tmp_path)) in verify.stdout
        ), name
    assert "failed verification" in verify.stderr
    assert (listed.returncode, stats.returncode, cleanup.returncode) == (0, 0, 0)
    json.loads(stats.stdout)


# -- resources ----------------------------------------------------------------------------------


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_managers_and_commands_do_not_leak_file_descriptors(
    plain_config: CacheConfig,
) -> None:
    """A long-lived tool makes managers (``CacheManager.reset_instances`` is for that) and runs
    commands in-process: neither may keep a descriptor once it is dropped."""
    cache = await seed_cache("plain", plain_config, ["fd question 0", "fd question 1"])
    entry = cache.entries[0]
    for _ in range(3):  # warm up (imports, the ledger's first connection)
        CacheManager(cache.root, plain_config).get_stats()
        run_cli("cache", "verify", "--dir", str(cache.root))
    gc.collect()
    before = _open_descriptors()

    for index in range(150):
        manager = CacheManager(cache.root, plain_config)
        await manager.get_or_call(entry.request, ProviderStub(None), plain_config)
        manager.has_entry(entry.request.key)
        manager.cleanup_expired()
        manager.get_stats()
        del manager
        if index % 5 == 0:
            within(30, lambda: run_cli("cache", "verify", "--dir", str(cache.root)))
            run_cli("cache", "ls", "--dir", str(cache.root))
    gc.collect()

    grown = _open_descriptors() - before
    assert grown < 20, f"{grown} file descriptors more after 150 managers and 60 commands"
