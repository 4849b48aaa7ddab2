"""An interrupted ``spark cache rotate-key``, resumed by doing exactly what it printed.

A real ``python -m spark`` process rotates a few thousand entries and gets a real SIGINT half-way;
it must finish the entry in hand, say how far it got, print the key list and the exact command,
and exit 130. Resuming with only the old key names the missing key instead of failing entry by
entry; resuming as printed leaves every entry sealed under the new key, none lost.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from spark.cache import KeyRing, admin, generate_key
from spark.cache.codec import decode_envelope, open_payload
from spark.cache.crypto import fingerprint, read_key_file
from spark.cache.stores.base import EntryRef, EntryStore

Invoke = Callable[..., Result]
Fill = Callable[..., list[str]]

ENTRIES = 4000


def _spark(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``spark ARGS`` as a real process (``spark`` is ``python -m spark``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "spark", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(words: list[str], cwd: Path, env: dict[str, str], stdin: str = "") -> tuple[int, str, str]:
    """Run a printed ``spark ...`` command line as it is and wait for it."""
    assert words[0] == "spark", words
    process = _spark(words[1:], cwd, env)
    out, err = process.communicate(stdin, timeout=120)
    return process.returncode, out, err


def _sealed_by(cache_dir: Path) -> dict[str, tuple[float, float | None, str]]:
    """key -> (created_at, expires_at, sealing key fingerprint) of every entry file."""
    found = {}
    for path in cache_dir.rglob("*.json"):
        meta = decode_envelope(path.read_bytes()).meta
        found[meta.key] = (meta.created_at, meta.expires_at, meta.key_fingerprint)
    return found


def _answers(cache_dir: Path, key: str) -> list[str]:
    """Every entry's answer, opened with ``key`` alone."""
    ring = KeyRing.from_keys([key])
    return sorted(
        open_payload(decode_envelope(path.read_bytes()), ring)["response"]["text"]
        for path in cache_dir.rglob("*.json")
    )


def _new_key_printed(process: subprocess.Popen[str]) -> str:
    """The new key of a running rotation: the first key of the list it prints (before the first
    entry changes)."""
    assert process.stdout is not None
    secret = ""
    while not secret.startswith("SPARK_CACHE_KEY="):
        secret = process.stdout.readline()
        assert secret, process.communicate()
    return secret.strip().removeprefix("SPARK_CACHE_KEY=").split(",")[0]


def _wait_for_first_rewrite(cache_dir: Path, new_fp: str, process: subprocess.Popen[str]) -> None:
    """Block until the first entry (the rotation goes in order) is sealed with ``new_fp``."""
    first = min(cache_dir.rglob("*.json"))
    deadline = time.monotonic() + 60
    while decode_envelope(first.read_bytes()).meta.key_fingerprint != new_fp:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the rotation never started"
        time.sleep(0.002)


def test_sigint_half_way_then_resume_exactly_as_printed(
    project: Path, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", old)
    fill(ENTRIES, encrypt=True)
    before = _sealed_by(cache_dir)
    env = {**os.environ, "SPARK_CACHE_KEY": old}
    env.pop("ENVIRONMENT", None)

    process = _spark(["cache", "rotate-key", "--profile", "vault", "--yes"], project, env)
    new = _new_key_printed(process)
    _wait_for_first_rewrite(cache_dir, fingerprint(new), process)
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Aborted!" not in err
    stopped = re.search(rf"interrupted \(SIGINT\) after (\d+) of {ENTRIES} entries", err)
    assert stopped, err
    done = int(stopped.group(1))
    assert 0 < done < ENTRIES
    assert f"{ENTRIES - done} still to do" in err
    # The entry in hand was finished: exactly `done` entries are under the new key, no stray
    # temp file, and every entry is still there.
    half = _sealed_by(cache_dir)
    assert set(half) == set(before)
    assert sum(fp == fingerprint(new) for *_, fp in half.values()) == done
    assert not list(cache_dir.rglob("*.tmp"))
    # The exact key list is printed again next to the way to resume, which keeps it off the
    # command line.
    lists = [line for line in rest.splitlines() if line.startswith("SPARK_CACHE_KEY=")]
    assert lists[-1:] == [f"SPARK_CACHE_KEY={new},{old}"]
    assert f"keys {fingerprint(new)}, {fingerprint(old)}, new key first" in err
    assert "`read -rs SPARK_CACHE_KEY && export SPARK_CACHE_KEY`, then paste it" in err
    command = err.split("Then finish with:\n", 1)[1].splitlines()[0].strip()
    assert command == "spark cache rotate-key --resume --profile vault"
    assert new not in err

    # Resuming with only the old key (the variable not updated): one line naming the key that
    # is missing, not an error per entry; nothing changes.
    code, out, err = _run(shlex.split(command), project, env, stdin="y\n")
    assert code == 1
    assert err.startswith(
        f"error: --resume: {done} of {ENTRIES} entries are sealed with key {fingerprint(new)}, "
        f"which SPARK_CACHE_KEY does not hold (it holds {fingerprint(old)}); nothing was changed"
    )
    assert len(err.splitlines()) <= 3
    assert "the new key of the interrupted rotation" in err
    assert _sealed_by(cache_dir) == half

    # Following what was printed: the list in SPARK_CACHE_KEY, then the command (confirmed).
    env["SPARK_CACHE_KEY"] = lists[-1].removeprefix("SPARK_CACHE_KEY=")
    code, out, err = _run(shlex.split(command), project, env, stdin="y\n")
    assert code == 0, err
    assert f"Key {fingerprint(new)}: {ENTRIES - done} re-encrypted, {done} already under" in out
    after = _sealed_by(cache_dir)
    assert set(after) == set(before)
    for key, (created, expires, fp) in after.items():
        assert fp == fingerprint(new)
        assert (created, expires) == before[key][:2]
    assert _answers(cache_dir, new) == sorted(f"answer {i}" for i in range(ENTRIES))


def test_sigterm_with_a_key_file_resumes_with_the_printed_command(
    spark: Invoke,
    project: Path,
    cache_dir: Path,
    fill: Fill,
    key_file: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = key_file()
    path = project / "secrets" / "cache.key"
    fill(8, encrypt=True, key_file=path)
    new = generate_key()
    monkeypatch.setenv("NEW_KEY", new)

    # The fault: a SIGTERM arrives while the 3rd entry is being rewritten.
    real = admin.reencrypt_entry
    calls = {"count": 0}

    def signalled(store: EntryStore, entry: EntryRef, *args: object, **kw: bool) -> object:
        calls["count"] += 1
        if calls["count"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(store, entry, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(admin, "reencrypt_entry", signalled)
    handler = signal.getsignal(signal.SIGTERM)
    stopped = spark("cache", "rotate-key", "--profile", "ci", "--new-key-env", "NEW_KEY", "-y")
    assert stopped.exit_code == 128 + signal.SIGTERM
    assert "interrupted (SIGTERM) after 3 of 8 entries (3 sealed anew); 5 still to do" in (
        stopped.stderr
    )
    assert f"The key list (new key first) is saved in {path}." in stopped.stderr
    assert stopped.stderr.rstrip().endswith(
        "Then finish with:\n  spark cache rotate-key --resume --profile ci"
    )
    assert new not in stopped.output
    assert read_key_file(path) == [new, old]
    assert sum(fp == fingerprint(new) for *_, fp in _sealed_by(cache_dir).values()) == 3
    assert signal.getsignal(signal.SIGTERM) is handler  # the handler is put back

    monkeypatch.setattr(admin, "reencrypt_entry", real)
    resumed = spark("cache", "rotate-key", "--resume", "--profile", "ci", input="y\n")
    assert resumed.exit_code == 0, resumed.output
    assert "5 re-encrypted, 3 already under the new key" in resumed.stdout
    assert _answers(cache_dir, new) == sorted(f"answer {i}" for i in range(8))


def test_a_second_rotation_while_one_runs_is_refused_and_changes_nothing(
    project: Path, cache_dir: Path, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = generate_key()
    monkeypatch.setenv("SPARK_CACHE_KEY", old)
    fill(ENTRIES, encrypt=True)
    env = {**os.environ, "SPARK_CACHE_KEY": old, "OTHER_NEW_KEY": generate_key()}
    env.pop("ENVIRONMENT", None)

    first = _spark(["cache", "rotate-key", "--profile", "vault", "--yes"], project, env)
    new = _new_key_printed(first)
    _wait_for_first_rewrite(cache_dir, fingerprint(new), first)
    second = ["spark", "cache", "rotate-key", "--profile", "vault", "--yes"]
    code, out, err = _run([*second, "--new-key-env", "OTHER_NEW_KEY"], project, env)
    first.communicate(timeout=120)

    assert code == 1
    assert err.startswith("error: another `spark cache rotate-key` is running on "), err
    assert "SPARK_CACHE_KEY=" not in out  # (no second key list to store)
    assert first.returncode == 0
    assert {fp for *_, fp in _sealed_by(cache_dir).values()} == {fingerprint(new)}
    assert _answers(cache_dir, new) == sorted(f"answer {i}" for i in range(ENTRIES))
